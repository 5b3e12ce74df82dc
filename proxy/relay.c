/*
 * The relay of client messages to the linked server, and linking a client
 * to a server.
 *
 * The relay walks message headers only: it counts the messages that the
 * server answers with ReadyForQuery (Query, Sync, FunctionCall) so the
 * server side knows when a transaction-pooled server may be released,
 * queues every request that gets a reply on the tracker (reply.c), and
 * stops at Terminate. Message bodies stream through untouched, whatever
 * their size: only a bounded prefix is read before a message is passed on.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool tracked_type(uint8_t type)
{
	switch (type) {
	case 'Q':
	case 'F':
	case 'P':
	case 'B':
	case 'D':
	case 'C':
	case 'E':
	case 'S':
		return true;
	default:
		return false;
	}
}

/* The session-state bits of all the statements of the message relayed
 * (most messages: none, or one statement's). */
static inline uint32_t note_bits(const struct proxy_note *nt)
{
	uint32_t any = 0;

	for (uint16_t i = 0; i < nt->n; i++)
		any |= nt->ss[i];
	return any;
}

/* Count the requests the server answers with ReadyForQuery, the queries in
 * flight (for query_timeout), and whether an extended-protocol batch is open
 * (the server must stay until its Sync). */
static void count_request(struct proxy_client *c, struct proxy_server *s, uint8_t type)
{
	bool query = type == 'Q' || type == 'F' || type == 'E';

	if ((query || type == 'S') && s->inflight == 0 && s->outstanding == 0)
		s->busy_since = proxy_now(c->ctx); /* the first query in flight starts */
	if ((query || type == 'S') && s->xact_start == 0)
		s->xact_start = proxy_now(c->ctx); /* a transaction of its client starts */
	if (query)
		s->inflight++;
	switch (type) {
	case 'S':
		c->unsynced = false;
		if (c->syncs_after_exec < UINT16_MAX)
			c->syncs_after_exec++; /* see backrelay.c's CopyInResponse */
		s->outstanding++;
		break;
	case 'Q':
		c->syncs_after_exec = 0;
		/* fall through */
	case 'F':
		s->outstanding++;
		break;
	case 'E':
		c->syncs_after_exec = 0;
		/* fall through */
	case 'P':
	case 'B':
	case 'D':
	case 'C':
	case 'H':
		c->unsynced = true;
		break;
	default:
		break;
	}
}

/*
 * Forward what is framed of the client's input to its server. Every message
 * streams: in transaction mode only its first PROXY_PREFIX_MAX bytes (names,
 * the start of a query) are read before prepared.c decides what to do, and
 * a rewrite replaces the message or just its names, the rest passing
 * through. A malformed message goes to PostgreSQL as it came, and its
 * answer to the client (a Query without its final NUL gets ERROR 08P01
 * "invalid string in message", and the session goes on). Returns false if
 * the client was closed or unlinked.
 */
static bool relay_to_server(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_server *s = c->server;
	const uint8_t *start = proto_buf_head(&c->io.in);
	const uint8_t *p = start;
	size_t n = proto_buf_avail(&c->io.in);
	bool terminate = false;

	while (n > 0) {
		uint32_t len;
		uint8_t type;

		if (c->drop_left > 0) {
			/* a message replaced, or skipped after a failed shape check */
			size_t take = n < c->drop_left ? n : c->drop_left;

			proto_buf_consume(&c->io.in, take);
			p += take;
			n -= take;
			start = p;
			c->drop_left -= (uint32_t)take;
			continue;
		}
		if (c->pass_left > 0) {
			size_t take = n < c->pass_left ? n : c->pass_left;

			if (c->fill)
				proxy_ps_fill(c, p, take);
			p += take;
			n -= take;
			c->pass_left -= (uint32_t)take;
			if (c->pass_left == 0 && c->fill)
				proxy_ps_fill_done(c);
			continue;
		}
		if (n < 5 || !p) /* !p: no buffer, so nothing read (n is 0 then) */
			break;
		type = p[0];
		len = get_be32(p + 1);
		if (len < 4) {
			proxy_client_fail(c, PROXY_ERR_PROTOCOL,
			                  "invalid message length %u (type '%c')", len,
			                  type >= 32 && type < 127 ? type : '?');
			return false;
		}
		if (len > PROTO_MAX_MSG_LEN) {
			proxy_client_fail(c, PROXY_ERR_TOO_BIG,
			                  "message of %u bytes exceeds the limit of %u bytes", len,
			                  PROTO_MAX_MSG_LEN);
			return false;
		}
		if (type == 'X') {
			terminate = true;
			break;
		}
		if (c->skip_to_sync) {
			if (type != 'S') {
				if (p > start) {
					if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) <
					    0)
						goto server_failed;
					proto_buf_consume(&c->io.in, (size_t)(p - start));
					start = p;
				}
				c->drop_left = len + 1;
				continue;
			}
			c->skip_to_sync = false;
		}
		if ((type == 'Q' || type == 'P' || type == 'B' ||
		     ((type == 'D' || type == 'C') && c->cache)) &&
		    ctx->cache) {
			int cr;

			if (p > start) {
				if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) < 0)
					goto server_failed;
				proto_buf_consume(&c->io.in, (size_t)(p - start));
			}
			/* a Query, or an extended-protocol group from its Parse or
			 * Bind to its Sync: a hit is answered here, no server */
			cr = proxy_cache_query(c, s);
			if (cr == PROXY_CACHE_CLOSED)
				return false;
			start = p = proto_buf_head(&c->io.in);
			n = proto_buf_avail(&c->io.in);
			if (cr == PROXY_CACHE_DONE)
				continue;
			if (cr == PROXY_CACHE_WAIT)
				break;
		}
		if (c->copy_in_open) {
			if (type == 'S' || type == 'H') {
				/* PostgreSQL ignores it in copy-in mode: no reply to wait for */
				s->pool->st.bytes_recv += (uint64_t)len + 1;
				c->pass_left = len + 1;
				continue;
			}
			if (type == 'c' || type == 'f')
				c->copy_in_open = false;
		}
		if (tracked_type(type)) {
			struct proto_buf rew;
			struct proxy_ps_msg pm;
			size_t blen = len - 4, avail = n - 5 < blen ? n - 5 : blen;
			uint32_t nb; /* the session-state bits of its statements */
			int act;

			if (avail < blen && avail < PROXY_PREFIX_MAX)
				break; /* the start of the message decides */
			if (type == 'P' && avail < blen && blen <= PROXY_INSPECT_MAX && p[5] != 0)
				break; /* a named Parse is read whole: its text is kept or scanned
				        */
			pm.type = type;
			pm.len = len;
			pm.body = p + 5;
			pm.avail = avail;
			pm.skip = 0;
			if (p > start) {
				if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) < 0)
					goto server_failed;
				proto_buf_consume(&c->io.in, (size_t)(p - start));
				start = p;
			}
			proto_buf_init(&rew);
			/* the tracker queues what it expects, in every pool mode;
			 * transaction mode may rewrite it (prepared.c) */
			proxy_reply_note(c, s, &pm);
			nb = s->track ? note_bits(&ctx->note) : 0; /* prepared.c leaves the note */
			if ((nb & (STATS_SS_SEQ_READ | STATS_SS_SEQ_SET)) &&
			    proxy_pin_before(c, s, type, nb) < 0) {
				proto_buf_free(&rew);
				goto server_failed;
			}
			act = s->track ? proxy_ps_client_message(c, s, &pm, &rew)
			               : proxy_reply_request(c, s, &pm);
			if (s->track) {
				proxy_pin_sent(c, s, type, act); /* session state it makes */
				/* a RESET (vars_reset.c): only a client with startup
				 * values and a statement that sets or resets one */
				if (c->start_mask &&
				    (nb & (PROXY_SS_VAR_RESET | STATS_SS_SET | STATS_SS_ROLLBACK)))
					proxy_vars_sent(c, s, type, act);
			}
			if (ctx->cache)
				proxy_cache_sent(c, &pm); /* the tables it may write */
			ctx->note.n = 0;
			if (act == PROXY_PS_MORE) {
				/* a named Parse of at most PROXY_INSPECT_MAX: wait for all */
				proto_buf_free(&rew);
				break;
			}
			if (act < 0) {
				proto_buf_free(&rew);
				proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
				return false;
			}
			if (act != PROXY_PS_FORWARD &&
			    proxy_io_send(ctx, &s->io, proto_buf_head(&rew),
			                  proto_buf_avail(&rew)) < 0) {
				proto_buf_free(&rew);
				goto server_failed;
			}
			proto_buf_free(&rew);
			if (act == PROXY_PS_STALL) {
				/* the message stays buffered until the server has answered */
				c->stalled = true;
				/* the injected batch waits for the client's Sync */
				c->unsynced = true;
				proxy_io_stop_read(ctx, &c->io);
				break;
			}
			if (act != PROXY_PS_DROP)
				count_request(c, s, type);
			else if (type != 'Q')
				c->unsynced = true;
			/* SHOW STATS: bytes and Parse/Bind messages of clients, and
			 * those that reach the server as they came (prepared.c counts
			 * the Parses it makes) */
			s->pool->st.bytes_recv += (uint64_t)len + 1;
			if (type == 'P') {
				s->pool->st.client_parses++;
				s->pool->st.server_parses += act == PROXY_PS_FORWARD;
			} else if (type == 'B') {
				s->pool->st.client_binds++;
				s->pool->st.server_binds += act != PROXY_PS_DROP;
			}
			switch (act) {
			case PROXY_PS_FORWARD:
				c->pass_left = len + 1;
				break;
			case PROXY_PS_REPLACE_HEAD:
				/* the names were rewritten; the rest follows as it came */
				c->drop_left = (uint32_t)pm.skip;
				c->pass_left = len + 1 - (uint32_t)pm.skip;
				break;
			default: /* REPLACE, DROP */
				c->drop_left = len + 1;
				break;
			}
			continue;
		}
		count_request(c, s, type);
		s->pool->st.bytes_recv += (uint64_t)len + 1;
		c->pass_left = len + 1;
	}
	if (p > start) {
		if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) < 0)
			goto server_failed;
		proto_buf_consume(&c->io.in, (size_t)(p - start));
	}
	proto_buf_shrink(&c->io.in, PROXY_BUF_KEEP);
	if (terminate) {
		log_debug("C-%llu: terminate", (unsigned long long)c->id);
		proxy_client_close(c);
		return false;
	}
	if (s->track)
		proxy_server_emit_fakes(s); /* replies made here may be due now */
	/* what was relayed leaves when the loop iteration ends (proxy_io_flush_dirty) */
	if (c->state != PROXY_CL_ACTIVE)
		return false;
	if (proto_buf_avail(&s->io.out) > PROXY_HIGH_WATER)
		proxy_io_stop_read(ctx, &c->io);
	return true;
server_failed:
	proxy_server_close(s, "write to server failed");
	return false;
}

void proxy_relay_drained(struct proxy_ctx *ctx, struct proxy_io *io)
{
	/* io->late is set for server connections only (see proxy_server_open) */
	if (io->late) {
		struct proxy_server *s =
		        (struct proxy_server *)((char *)io - offsetof(struct proxy_server, io));
		struct proxy_client *c = s->client;

		proto_buf_shrink(&io->out, PROXY_BUF_KEEP);
		if (s->state == PROXY_SV_ACTIVE && c && c->server == s &&
		    c->state == PROXY_CL_ACTIVE && !c->stalled && !proxy_cache_waiting(c))
			proxy_io_start_read(ctx, &c->io);
	} else {
		struct proxy_client *c =
		        (struct proxy_client *)((char *)io - offsetof(struct proxy_client, io));
		struct proxy_server *s = c->server;

		proto_buf_shrink(&io->out, PROXY_BUF_KEEP);
		if (c->state == PROXY_CL_ACTIVE && s && s->client == c &&
		    s->state == PROXY_SV_ACTIVE)
			proxy_io_start_read(ctx, &s->io);
	}
}

void proxy_client_resume(struct proxy_client *c)
{
	if (c->state != PROXY_CL_ACTIVE || c->stalled)
		return;
	if (proto_buf_avail(&c->io.in) > 0 && !relay_to_server(c))
		return;
	if (c->state == PROXY_CL_ACTIVE && c->server && !c->stalled && !proxy_cache_waiting(c) &&
	    proto_buf_avail(&c->server->io.out) <= PROXY_HIGH_WATER)
		proxy_io_start_read(c->ctx, &c->io);
}

/* Append a message: <type>, then the length patched in once the body is
 * written by the caller between begin and end. */
static size_t msg_begin(struct proto_buf *b, uint8_t type, int *rc)
{
	size_t at = b->len;

	if (*rc == 0)
		*rc = proto_put_u8(b, type);
	if (*rc == 0)
		*rc = proto_put_u32(b, 0);
	return at;
}

static void msg_end(struct proto_buf *b, size_t at, int rc)
{
	uint32_t len = (uint32_t)(b->len - at - 1);

	if (rc != 0)
		return;
	b->data[at + 1] = (uint8_t)(len >> 24);
	b->data[at + 2] = (uint8_t)(len >> 16);
	b->data[at + 3] = (uint8_t)(len >> 8);
	b->data[at + 4] = (uint8_t)len;
}

/* Parse of <sql> as the unnamed statement, no parameter types given. */
static int put_parse(struct proto_buf *b, const char *sql)
{
	int rc = 0;
	size_t at = msg_begin(b, 'P', &rc);

	if (rc == 0)
		rc = proto_put_str(b, "");
	if (rc == 0)
		rc = proto_put_str(b, sql);
	if (rc == 0)
		rc = proto_put_u16(b, 0);
	msg_end(b, at, rc);
	return rc;
}

/* Bind of the unnamed statement to the unnamed portal with <n> text
 * parameters, then Execute of it. */
static int put_bind_execute(struct proto_buf *b, const char *const *params, uint16_t n)
{
	int rc = 0;
	size_t at = msg_begin(b, 'B', &rc);

	if (rc == 0)
		rc = proto_put_str(b, "");
	if (rc == 0)
		rc = proto_put_str(b, "");
	if (rc == 0)
		rc = proto_put_u16(b, 0); /* all parameters in text format */
	if (rc == 0)
		rc = proto_put_u16(b, n);
	for (uint16_t i = 0; i < n && rc == 0; i++) {
		size_t len = strlen(params[i]);

		rc = proto_put_u32(b, (uint32_t)len);
		if (rc == 0)
			rc = proto_put_bytes(b, params[i], len);
	}
	if (rc == 0)
		rc = proto_put_u16(b, 0); /* results in text format */
	msg_end(b, at, rc);
	at = msg_begin(b, 'E', &rc);
	if (rc == 0)
		rc = proto_put_str(b, "");
	if (rc == 0)
		rc = proto_put_u32(b, 0);
	msg_end(b, at, rc);
	return rc;
}

/* A statement without parameters, run in the batch. */
static int put_exec(struct proto_buf *b, const char *sql)
{
	int rc = put_parse(b, sql);

	return rc == 0 ? put_bind_execute(b, NULL, 0) : rc;
}

/* "RESET <name>" with the name quoted as an identifier. -1 if too long. */
static int reset_sql(char *out, size_t cap, const char *name)
{
	size_t o = 0;

	if (cap < 9)
		return -1;
	memcpy(out, "RESET \"", 7);
	o = 7;
	for (const char *x = name; *x; x++) {
		if (o + 4 >= cap)
			return -1;
		if (*x == '"')
			out[o++] = '"';
		out[o++] = *x;
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

/*
 * Carry the client's session parameters over to <s> in one hidden
 * extended-protocol batch: the name and value go as bound parameters of
 * set_config (no quoting, whatever standard_conforming_strings says, no
 * length limit), then one Sync. The values are recorded on <s> only when
 * the batch's ReadyForQuery comes without an error (server.c); an error
 * closes <s> and tells the client. Until then the client is stalled, so
 * none of its requests runs with the wrong settings. 1 if a batch was
 * queued on <out>, 0 if none is needed, -1 on OOM.
 */
static int vars_batch(struct proxy_client *c, struct proxy_server *s, bool deallocate,
                      struct proto_buf *out)
{
	bool parsed = false;
	int rc = 0, n = 0;

	if (deallocate) {
		rc = put_exec(out, "DEALLOCATE ALL");
		n++;
	}
	for (int v = 0; v < PROXY_NVARS && rc == 0; v++) {
		/* a server opened with the client's startup parameters has what
		 * the client asked for as its own session defaults */
		const char *want = s->sp && s->sp == c->sp ? NULL : c->vars[v];
		const char *params[2];

		/* not asked for by the client: the server's own session default,
		 * undoing what an earlier client set there */
		if (!want && v < PROXY_NBUILTIN_VARS)
			want = s->login_vars[v];

		proxy_str_put(s->ctx, s->vars_pending[v]);
		s->vars_pending[v] = NULL;
		if (!want && s->vars[v] && v >= PROXY_NBUILTIN_VARS) {
			/* set by an earlier client, not reported by PostgreSQL: reset */
			char sql[160];

			if (reset_sql(sql, sizeof(sql), proxy_var_name(v)) < 0)
				continue;
			rc = put_exec(out, sql);
			parsed = false; /* the unnamed statement is the RESET now */
			proxy_str_put(s->ctx, s->vars[v]);
			s->vars[v] = NULL;
			n++;
			continue;
		}
		/* both interned: equal values are the same pointer */
		if (!want || s->vars[v] == want)
			continue;
		/* set_config takes the value as a startup parameter gives it (a
		 * list such as "a, b" stays a list, unlike SET x TO 'a, b') */
		if (!parsed)
			rc = put_parse(out, "select pg_catalog.set_config($1, $2, false)");
		parsed = true;
		params[0] = proxy_var_name(v);
		params[1] = want;
		if (rc == 0)
			rc = put_bind_execute(out, params, 2);
		s->vars_pending[v] = proxy_str_get(s->ctx, want);
		if (!s->vars_pending[v])
			rc = -1;
		n++;
	}
	if (rc == 0 && n > 0) {
		static const uint8_t sync[5] = {'S', 0, 0, 0, 4};

		rc = proto_put_bytes(out, sync, sizeof(sync));
	}
	if (rc < 0)
		return -1;
	return n > 0;
}

/* A RESET the server's last client sent was never followed up (that client
 * left first): of the parameters PostgreSQL does not report, which value
 * the server holds is not known, so the next link sets them afresh
 * whatever they are (an interned value no client has). */
static void forget_resets(struct proxy_server *s)
{
	for (int v = PROXY_NBUILTIN_VARS; v < PROXY_NVARS; v++) {
		const char *u;

		if (!(((s->rs_pend | s->rs_redo) >> v) & 1u) || !s->vars[v])
			continue;
		if (!(u = proxy_str_get(s->ctx, "?"))) {
			s->stale_session = true;
			break;
		}
		proxy_str_put(s->ctx, s->vars[v]);
		s->vars[v] = u;
	}
	s->rs_pend = s->rs_redo = 0;
}

void proxy_client_link(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proto_buf b;
	int batch;

	c->server = s;
	s->client = c;
	s->xact_start = 0;
	c->pool->st.server_assignments++;
	/* the pool mode in force now holds for this whole link, whatever a
	 * reload changes meanwhile */
	s->mode = c->pool->mode;
	s->track = s->mode != CONF_POOL_SESSION;
	s->pq.check_failed = false;
	memset(&s->pin, 0, sizeof(s->pin)); /* a pooled server holds no one's state */
	if (s->rs_pend | s->rs_redo)
		forget_resets(s);
	s->rs_tx = 0;
	if (s->track)
		proxy_pin_linked(c, s);
	proxy_server_set_state(s, PROXY_SV_ACTIVE);
	proxy_client_set_state(c, PROXY_CL_ACTIVE);
	if (c->sp && s->track) {
		/* logged in for session mode, with startup parameters no
		 * transaction-mode server has (a reload changed the mode) */
		proxy_client_fail_hint(c, PROXY_ERR_STARTUP_PARAM, "reconnect",
		                       "the pool mode changed while this client logged in "
		                       "with startup parameters");
		return;
	}
	/* session mode: the login ends here, telling the client its server's pid */
	if (proxy_client_welcome_linked(c) < 0)
		return;

	proto_buf_init(&b);
	batch = vars_batch(c, s, s->track && proxy_ps_on_link(s), &b);
	if (batch < 0) {
		proto_buf_free(&b);
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	if (batch > 0) {
		int rc = proxy_io_send(ctx, &s->io, proto_buf_head(&b), proto_buf_avail(&b));

		proto_buf_free(&b);
		if (rc < 0) {
			proxy_client_fail(c, PROXY_ERR_SERVER_LOST, "write to server failed");
			return;
		}
		s->internal++;
		s->vars_batch = true;
		/* the client's requests wait for the batch's ReadyForQuery
		 * (proxy_server_process resumes it) */
		c->stalled = true;
		proxy_io_stop_read(ctx, &c->io);
	}
	proto_buf_free(&b);
	proxy_client_resume(c);
	if (c->state == PROXY_CL_ACTIVE && c->server == s)
		proxy_io_start_read(ctx, &s->io);
}

void proxy_client_check_timeouts(struct proxy_client *c, double now)
{
	const struct conf *cf = c->ctx->conf;
	struct proxy_server *s = c->server;

	if (c->state != PROXY_CL_ACTIVE || !s)
		return;
	/* Each query gets query_timeout from the reply that ended the one before
	 * (server.c restarts busy_since). PostgreSQL holds the replies to a batch
	 * of Executes until its Sync, so <inflight> queries may all be due before
	 * the first reply shows: the batch gets query_timeout for each. */
	if (cf->query_timeout > 0 && (s->outstanding > 0 || s->inflight > 0) &&
	    now - s->busy_since > cf->query_timeout * (s->inflight > 1 ? s->inflight : 1)) {
		proxy_client_fail(c, PROXY_ERR_QUERY_TIMEOUT,
		                  "query_timeout: query ran longer than %g s and was canceled",
		                  cf->query_timeout);
		return;
	}
	if (s->outstanding > 0 || s->pq.n > 0)
		return;
	if (cf->idle_transaction_timeout > 0 && s->status != 'I' &&
	    now - s->last_rfq > cf->idle_transaction_timeout) {
		proxy_client_fail(c, PROXY_ERR_IDLE_TX_TIMEOUT,
		                  "idle_transaction_timeout: transaction idle for more than %g s",
		                  cf->idle_transaction_timeout);
		return;
	}
	if (cf->client_idle_timeout > 0 && s->status == 'I' &&
	    now - c->last_active > cf->client_idle_timeout)
		proxy_client_fail(c, PROXY_ERR_IDLE_TIMEOUT,
		                  "client_idle_timeout: connection idle for more than %g s",
		                  cf->client_idle_timeout);
}
