/*
 * The relay of server messages to the linked client.
 *
 * It walks message headers: bodies of DataRow and other bulk messages
 * stream through as they arrive; the few messages that drive the state
 * machine (ReadyForQuery, ErrorResponse, ParameterStatus, COPY starts) are
 * inspected whole, up to a bounded size. Replies to the proxy's own queries
 * (reset, session parameters) are hidden from the client; in transaction
 * mode a server is handed back to the pool when its client's transaction
 * is over.
 */
#include "proxy/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool must_inspect(uint8_t type)
{
	switch (type) {
	case 'Z': /* ReadyForQuery */
	case 'E': /* ErrorResponse */
	case 'S': /* ParameterStatus */
	case 'G': /* CopyInResponse */
	case 'H': /* CopyOutResponse */
	case 'W': /* CopyBothResponse */
	case 'c': /* CopyDone */
	case 'C': /* CommandComplete: its tag counts the rows */
		return true;
	default:
		return false;
	}
}

/* The link's session-parameter batch (relay.c) ended: record what was
 * set, unless the server refused something (then the server closes). */
static void vars_batch_done(struct proxy_server *s)
{
	s->vars_batch = false;
	for (int v = 0; v < PROXY_NVARS; v++) {
		if (!s->vars_pending[v])
			continue;
		if (!s->vars_refused) {
			proxy_str_put(s->ctx, s->vars[v]);
			s->vars[v] = s->vars_pending[v];
		} else {
			proxy_str_put(s->ctx, s->vars_pending[v]);
		}
		s->vars_pending[v] = NULL;
	}
}

/* The server refused a parameter of the batch: keep its message for the
 * client; proxy_server_process closes the server (vars_refused). */
static void vars_refused_note(struct proxy_server *s, const struct proto_msg *m)
{
	struct proto_error e;

	if (s->vars_refused)
		return;
	s->vars_refused = true;
	if (proto_parse_error(m, &e) == 0)
		s->vars_error = strdup(e.message);
}

/* The server refused a session parameter of its client: that client cannot
 * go on with the settings it asked for, and the server's own settings are
 * unknown now. Close both, telling the client why. */
static void vars_refused(struct proxy_server *s)
{
	struct proxy_client *c = s->client;

	if (c) {
		c->server = NULL;
		s->client = NULL;
		c->stalled = false;
		proxy_client_fail(c, PROXY_ERR_PARAM_REFUSED,
		                  "the server refused a session parameter of this client: %s",
		                  s->vars_error ? s->vars_error : "unknown error");
	}
	proxy_server_close(s, "the server refused a session parameter");
}

/* Replies that end one query of several in flight (a pipeline, or a
 * string of statements): the next one's time starts there. */
static bool ends_query(uint8_t type)
{
	switch (type) {
	case 'C': /* CommandComplete */
	case 'E': /* ErrorResponse */
	case 'I': /* EmptyQueryResponse */
	case 's': /* PortalSuspended */
	case 'Z': /* ReadyForQuery */
		return true;
	default:
		return false;
	}
}

/* Act on one inspected message. Returns true to hide it from the client. */
static bool inspect(struct proxy_server *s, uint8_t type, const uint8_t *body, size_t len)
{
	struct proxy_client *c = s->client;

	switch (type) {
	case 'Z':
		s->status = len >= 1 ? (char)body[0] : 'I';
		s->last_rfq = proxy_now(s->ctx);
		s->in_copy_out = false;
		if (c)
			c->in_copy = c->copy_in_open = false;
		if (s->internal > 0) {
			s->internal--;
			if (s->rs_zs > 0 && --s->rs_zs == 0)
				s->rs_fcs =
				        0; /* the restores after a RESET are done (vars_reset.c) */
			if (s->pin.probe_zs)
				proxy_pin_probe_reply(s, 'Z', body, len); /* pin.c's question */
			if (s->internal == 0)
				s->reset_check = false;
			if (s->internal == 0 && s->vars_batch)
				vars_batch_done(s);
			return true;
		}
		if (s->outstanding > 0)
			s->outstanding--;
		if (s->outstanding == 0)
			s->inflight = 0; /* also Executes an error made the server skip */
		if (s->efd_pend && s->outstanding == 0)
			proxy_pin_efd_done(s); /* may pin: before the pin settles */
		if (s->pin.held)
			proxy_pin_reply(s, 'Z'); /* what ended the session state counts now */
		if (s->status == 'I' && s->xact_start > 0 && s->state == PROXY_SV_ACTIVE) {
			/* a transaction of its client ended (SHOW STATS) */
			double now = proxy_now(s->ctx);

			s->pool->st.xact_count++;
			s->pool->st.xact_time += (uint64_t)((now - s->xact_start) * 1e6);
			s->xact_start = s->outstanding > 0 ? now : 0;
		}
		return s->state != PROXY_SV_ACTIVE;
	case 'E': {
		struct proto_msg m = {.type = 'E', .body = body, .body_len = len};
		struct proto_error e;

		if (proto_parse_error(&m, &e) == 0 &&
		    (strcmp(e.severity, "FATAL") == 0 || strcmp(e.severity, "PANIC") == 0))
			s->saw_fatal = true;
		if (s->pin.held && s->internal == 0)
			proxy_pin_reply(s, 'E'); /* an end sent may not have happened */
		if (s->internal == 0)
			s->efd_bad = true;
		if (s->state == PROXY_SV_RESET)
			s->stale_session = true; /* a reset that failed: never reuse */
		if (s->internal > 0 || s->state != PROXY_SV_ACTIVE) {
			char who[256], msg[256];

			proxy_server_describe(s, who, sizeof(who));
			log_warn("%s: error from an internal query: %s", who,
			         log_escape(msg, sizeof(msg),
			                    proto_parse_error(&m, &e) == 0 ? e.message : "?"));
			/* a session parameter of the client's was refused: the link's
			 * batch, or setting a startup value again after a RESET */
			if (s->internal > 0 &&
			    (s->vars_batch || (s->rs_zs > 0 && s->rs_zs <= s->rs_fcs)))
				vars_refused_note(s, &m);
			return true;
		}
		return false;
	}
	case 'S': {
		struct proto_reader r;
		const char *name, *value;

		proto_reader_init(&r, body, len);
		name = proto_get_str(&r);
		value = proto_get_str(&r);
		if (name && value) {
			int v = proxy_var_index(name);

			proxy_server_set_var(s, name, value);
			/* the client changed a parameter itself: it follows the client,
			 * unless a RESET may have set it to the server's default,
			 * which the client is not told (proxy_vars_settle tells it
			 * what it is owed at the ReadyForQuery) */
			if (c && v >= 0 && s->internal == 0 && s->state == PROXY_SV_ACTIVE) {
				if (proxy_vars_hide(s, v))
					return true;
				proxy_str_put(s->ctx, c->vars[v]);
				c->vars[v] = proxy_str_get(s->ctx, value);
			}
		}
		return s->internal > 0 || s->state != PROXY_SV_ACTIVE;
	}
	case 'G':
		if (c) {
			c->in_copy = true;
			c->copy_in_open = true;
			/*
			 * An extended-protocol COPY FROM STDIN: libpq sends the Sync
			 * right behind the Execute, before the data, and another after
			 * CopyDone. PostgreSQL, in copy-in mode when the first comes,
			 * ignores it and answers only the second: the first gets no
			 * ReadyForQuery, and the batch stays open until the second.
			 */
			if (c->syncs_after_exec > 0) {
				unsigned k = c->syncs_after_exec;

				s->outstanding =
				        s->outstanding > (int)k ? s->outstanding - (int)k : 0;
				proxy_reply_copy_in(s, k);
				c->unsynced = true;
				c->syncs_after_exec = 0;
			}
		}
		break;
	case 'H':
	case 'W':
		s->in_copy_out = true;
		break;
	case 'c':
		s->in_copy_out = false;
		break;
	case 'D': /* inspected only for the pin's question */
		proxy_pin_probe_reply(s, type, body, len);
		break;
	case 'C':
		if (s->efd_pend && s->internal == 0) {
			s->efd_ccs++;
			if (!(len >= 4 && memcmp(body, "SET", 4) == 0) &&
			    !(len >= 6 && memcmp(body, "RESET", 6) == 0) &&
			    !(len >= 12 && memcmp(body, "DISCARD ALL", 12) == 0))
				s->efd_bad = true;
		}
		/* the fresh-session check (server.c) is the last query of the
		 * reset: one row means the session kept state */
		if (s->state == PROXY_SV_RESET && s->reset_check && s->internal == 1 && len >= 9 &&
		    memcmp(body, "SELECT 1", 9) == 0)
			s->stale_session = true;
		break;
	default:
		break;
	}
	return s->internal > 0 || s->state != PROXY_SV_ACTIVE;
}

/* In place of a hidden server error: "cached plan must not change result
 * type" (see prepared.c). */
static int send_stale_error(struct proxy_client *c, struct proxy_server *s)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proxy_ps_put_stale_error(s, &b);
	if (rc == 0)
		rc = proxy_io_send(c->ctx, &c->io, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	return rc;
}

bool proxy_server_reusable(const struct proxy_server *s, const struct proxy_client *c)
{
	if (s->status != 'I' || s->outstanding > 0 || s->internal > 0 || s->in_copy_out ||
	    s->pass_left > 0 || s->pq.n > 0 || s->saw_fatal || proto_buf_avail(&s->io.in) > 0 ||
	    proto_buf_avail(&s->io.out) > 0)
		return false;
	return !c || (!c->in_copy && !c->unsynced && c->pass_left == 0);
}

/* Transaction pooling: give the server back once the client's transaction
 * is over and nothing more is in flight. */
static void maybe_release(struct proxy_server *s)
{
	struct proxy_client *c = s->client;

	if (!c || s->state != PROXY_SV_ACTIVE || s->mode == CONF_POOL_SESSION)
		return;
	/* more of the client's requests buffered: they go to this server too */
	if (proto_buf_avail(&c->io.in) > 0 || !proxy_server_reusable(s, c))
		return;
	if (s->pin.held) {
		/* pinned (pin.c): the server holds session state its client made,
		 * so it stays; what a new link would refresh is refreshed here */
		if (proxy_ps_refresh(s) < 0)
			proxy_server_close(s, "write to server failed");
		return;
	}
	c->server = NULL;
	s->client = NULL;
	proxy_client_set_state(c, PROXY_CL_IDLE);
	proxy_io_start_read(s->ctx, &c->io);
	proxy_pool_server_ready(s);
}

/*
 * Statement mode hands the server on after every statement, so a statement
 * that opened a transaction block is rolled back (hidden from the client)
 * and the client gets an error in place of its ReadyForQuery.
 */
static int statement_abort(struct proxy_server *s)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proxy_put_err(&b, PROXY_ERR_TX_IN_STATEMENT_MODE,
	                   "transaction blocks are not allowed in statement pooling mode", NULL);
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	if (rc == 0)
		rc = proxy_io_send(s->ctx, &s->client->io, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	if (rc < 0)
		return -1;
	proto_buf_init(&b);
	if (proto_put_query(&b, "ROLLBACK") < 0) {
		proto_buf_free(&b);
		proxy_server_close(s, "cannot send ROLLBACK");
		return 0;
	}
	if (proxy_server_send_buf(s, &b) < 0) {
		proxy_server_close(s, "cannot send ROLLBACK");
		return 0;
	}
	s->internal++;
	return 0;
}

void proxy_server_process(struct proxy_server *s)
{
	struct proxy_ctx *ctx = s->ctx;
	const uint8_t *p, *fwd;
	size_t n;
	bool reset_done = false;
	bool stmt_abort = false;

	if (s->state == PROXY_SV_LOGIN) {
		proxy_server_login_step(s);
		return;
	}
	p = fwd = proto_buf_head(&s->io.in);
	n = proto_buf_avail(&s->io.in);
	while (n > 0 || (s->track && s->pass_left == 0 && s->pq.n > 0)) {
		struct proxy_client *c = s->client;
		uint32_t len;
		uint8_t type;
		bool hide;

		if (s->track && s->pass_left == 0 && c && s->internal == 0) {
			uint8_t fake[PROXY_FAKE_MAX];
			size_t flen;
			bool any = false;

			while (proxy_reply_take_fake(s, fake, &flen)) {
				if (!any && p > fwd &&
				    proxy_io_send(ctx, &c->io, fwd, (size_t)(p - fwd)) < 0)
					goto client_failed;
				any = true;
				fwd = p;
				if (proxy_io_send(ctx, &c->io, fake, flen) < 0)
					goto client_failed;
			}
		}
		if (n == 0)
			break;
		if (s->pass_left > 0) {
			size_t take = n < s->pass_left ? n : s->pass_left;

			if (s->pass_hide) {
				if (p > fwd && c &&
				    proxy_io_send(ctx, &c->io, fwd, (size_t)(p - fwd)) < 0)
					goto client_failed;
				fwd = p + take;
			} else if (c && proxy_cache_capturing(s)) {
				proxy_cache_reply_part(s, p, take); /* a big row of a miss */
			}
			p += take;
			n -= take;
			s->pass_left -= (uint32_t)take;
			continue;
		}
		if (n < 5 || !p) /* !p: no buffer, so nothing read (n is 0 then) */
			break;
		type = p[0];
		len = get_be32(p + 1);
		if (len < 4 || len > PROTO_MAX_MSG_LEN) {
			proxy_server_close(s, "invalid message length from server");
			return;
		}
		if (ends_query(type)) {
			double now = proxy_now(ctx);

			if (type != 'Z' && s->internal == 0 && s->inflight > 0) {
				s->inflight--;
				/* a client's Query or Execute closed (SHOW STATS) */
				s->pool->st.query_count++;
				s->pool->st.query_time += (uint64_t)((now - s->busy_since) * 1e6);
			}
			/* query_timeout times each query: the next one starts now */
			s->busy_since = now;
		}
		if ((must_inspect(type) ||
		     (type == 'T' && s->internal == 0 && proxy_reply_wants_body(s)) ||
		     (type == 'D' && s->pin.probe_zs == 1 && s->internal > 0) ||
		     proxy_cache_capturing(s)) &&
		    len <= PROXY_INSPECT_MAX) {
			int tr = 0;

			if (n < (size_t)len + 1) {
				/* wait for the whole message; make room for it */
				break;
			}
			if (s->internal == 0)
				tr = proxy_reply_track(s, type, p + 5, len - 4);
			hide = inspect(s, type, p + 5, len - 4) || tr != 0;
			if (type == 'Z' && !hide && c && (s->rs_pend | s->rs_redo | s->rs_tx)) {
				/* a RESET's ReadyForQuery: the startup values go back
				 * first, and what the client is owed goes before it */
				struct proto_buf t;
				int vr;

				proto_buf_init(&t);
				vr = proxy_vars_settle(s, &t);
				if (vr == 0 && proto_buf_avail(&t) > 0) {
					if ((p > fwd && proxy_io_send(ctx, &c->io, fwd,
					                              (size_t)(p - fwd)) < 0) ||
					    proxy_io_send(ctx, &c->io, proto_buf_head(&t),
					                  proto_buf_avail(&t)) < 0) {
						proto_buf_free(&t);
						goto client_failed;
					}
					fwd = p;
				}
				proto_buf_free(&t);
				if (vr < 0) {
					proxy_server_close(s,
					                   "cannot set startup parameters again");
					return;
				}
			}
			if (type == 'Z' && !hide && c && s->mode == CONF_POOL_STATEMENT &&
			    s->status != 'I' && s->outstanding == 0) {
				/* a transaction block: refused, see statement_abort() */
				hide = true;
				stmt_abort = true;
			}
			if (type == 'Z' && s->state == PROXY_SV_RESET && s->internal == 0)
				reset_done = true;
			if (hide) {
				if (p > fwd && c &&
				    proxy_io_send(ctx, &c->io, fwd, (size_t)(p - fwd)) < 0)
					goto client_failed;
				fwd = p + len + 1;
				if (tr == PROXY_PS_STALE_ERROR && c && send_stale_error(c, s) < 0)
					goto client_failed;
			} else if (c) {
				s->pool->st.bytes_sent += (uint64_t)len + 1;
				if (c->cache)
					proxy_cache_reply(s, p, len + 1); /* capture, commit */
			}
			p += len + 1;
			n -= len + 1;
			continue;
		}
		hide = s->internal > 0 || s->state != PROXY_SV_ACTIVE;
		if (s->internal == 0 && proxy_reply_track(s, type, NULL, 0))
			hide = true;
		if (hide) {
			if (p > fwd && c && proxy_io_send(ctx, &c->io, fwd, (size_t)(p - fwd)) < 0)
				goto client_failed;
		}
		if (!hide && c && proxy_cache_capturing(s))
			proxy_cache_reply(s, p, len + 1); /* too big to hold: announced */
		s->pass_left = len + 1;
		s->pass_hide = hide;
		if (!hide && c)
			s->pool->st.bytes_sent += (uint64_t)len + 1;
		if (hide)
			fwd = p; /* advanced past the hidden bytes as they are skipped */
	}
	if (p > fwd && s->client && proxy_io_send(ctx, &s->client->io, fwd, (size_t)(p - fwd)) < 0)
		goto client_failed;
	proto_buf_consume(&s->io.in, (size_t)(p - proto_buf_head(&s->io.in)));
	proto_buf_shrink(&s->io.in, PROXY_BUF_KEEP);
	if (s->vars_refused) {
		vars_refused(s);
		return;
	}
	if (s->saw_fatal && !s->client) {
		proxy_server_close(s, "server sent a fatal error");
		return;
	}
	if (reset_done) {
		proxy_pool_server_ready(s);
		return;
	}
	if (stmt_abort && s->client && statement_abort(s) < 0)
		goto client_failed;
	if (s->client) {
		/* what this read produced leaves when the loop iteration ends,
		 * with the replies to other clients (proxy_io_flush_dirty) */
		if (proto_buf_avail(&s->client->io.out) > PROXY_HIGH_WATER)
			proxy_io_stop_read(ctx, &s->io); /* backpressure: client is slow */
	}
	if (s->client && s->client->stalled && s->internal == 0 && !proxy_ps_checking(s)) {
		/* the shape check is answered: go on with the client's messages */
		struct proxy_client *c = s->client;

		c->stalled = false;
		s->await_parse = 0;
		c->skip_to_sync = s->pq.check_failed; /* the server skips to Sync too */
		s->pq.check_failed = false;
		proxy_client_resume(c);
		return;
	}
	maybe_release(s);
	return;
client_failed:
	proxy_client_close(s->client); /* releases (and closes, if dirty) the server */
}

void proxy_server_emit_fakes(struct proxy_server *s)
{
	struct proxy_client *c = s->client;
	uint8_t fake[PROXY_FAKE_MAX];
	size_t flen;
	bool any = false;

	/* only when nothing of the server's is waiting to be relayed first */
	if (!c || s->internal > 0 || s->pass_left > 0 || proto_buf_avail(&s->io.in) > 0)
		return;
	while (proxy_reply_take_fake(s, fake, &flen)) {
		any = true;
		if (proxy_io_send(s->ctx, &c->io, fake, flen) < 0) {
			proxy_client_close(c);
			return;
		}
	}
	if (any)
		maybe_release(s);
}

void proxy_server_resume(struct proxy_server *s)
{
	proxy_io_start_read(s->ctx, &s->io);
	if (proto_buf_avail(&s->io.in) > 0)
		proxy_server_process(s);
}
