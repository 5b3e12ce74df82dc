/*
 * Server connections: non-blocking connect (host names resolved by dns.c,
 * each address tried in turn), login to PostgreSQL (cleartext, MD5,
 * SCRAM-SHA-256) and connect_query, and the relay of server messages to
 * the linked client (cancel requests are in cancel.c).
 *
 * The relay walks message headers: bodies of DataRow and other bulk
 * messages stream through as they arrive; the few messages that drive the
 * state machine (ReadyForQuery, ErrorResponse, ParameterStatus, COPY
 * starts) are inspected whole. Replies to the proxy's own queries (reset,
 * SET of session parameters) are hidden from the client.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "stats/stats.h"

static const char *const state_names[] = {
        "connecting", "login", "idle", "active", "reset", "closing",
};

static void server_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void server_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void server_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static struct pool_list *list_for(struct pool *p, enum proxy_sv_state st)
{
	switch (st) {
	case PROXY_SV_CONNECTING:
	case PROXY_SV_LOGIN:
		return &p->connecting;
	case PROXY_SV_IDLE:
		return &p->idle;
	case PROXY_SV_ACTIVE:
	case PROXY_SV_RESET:
		return &p->used;
	default:
		return NULL;
	}
}

void proxy_server_set_state(struct proxy_server *s, enum proxy_sv_state st)
{
	struct pool_list *from = list_for(s->pool, s->state);
	struct pool_list *to = list_for(s->pool, st);

	if (s->state == st)
		return;
	if (log_current_level >= LOG_LVL_DEBUG) {
		char who[256];

		proxy_server_describe(s, who, sizeof(who));
		log_debug("%s: %s -> %s", who, state_names[s->state], state_names[st]);
	}
	s->state = st;
	if (from != to) {
		if (from)
			pool_list_remove(from, &s->node);
		if (to) {
			if (st == PROXY_SV_IDLE)
				pool_list_push_front(to, &s->node); /* warmest first */
			else
				pool_list_push_back(to, &s->node);
		}
		/* the database's and user's counts, for their connection caps */
		if (!from && to)
			pool_count_server(s->pool, 1);
		else if (from && !to)
			pool_count_server(s->pool, -1);
	}
}

void proxy_server_describe(const struct proxy_server *s, char *buf, size_t len)
{
	char d[96], u[96];

	snprintf(buf, len, "S-%llu %s/%s", (unsigned long long)s->id,
	         log_escape(d, sizeof(d), s->pool->db_name),
	         log_escape(u, sizeof(u), s->pool->user));
}

static void server_free(void *obj)
{
	struct proxy_server *s = obj;

	for (int i = 0; i < PROXY_NVARS; i++) {
		proxy_str_put(s->ctx, s->vars[i]);
		proxy_str_put(s->ctx, s->vars_pending[i]);
		proxy_str_put(s->ctx, s->login_vars[i]);
	}
	free(s->vars_error);
	free(s->cq_error);
	free(s->login_extra);
	proxy_sparams_put(s->ctx, s->sp);
	proxy_server_stmts_free(s);
	proxy_pq_free(&s->pq);
	if (s->scram)
		explicit_bzero(s->scram, sizeof(*s->scram));
	free(s->scram);
	proxy_slab_free(&s->ctx->server_slab, s);
}

/* Say goodbye (Terminate) so PostgreSQL does not log an unexpected EOF:
 * through TLS on a TLS connection (proxy_io_close then sends close_notify),
 * never raw bytes into the TLS stream. One non-blocking attempt. */
static void say_goodbye(struct proxy_server *s)
{
	static const uint8_t term[5] = {'X', 0, 0, 0, 4};

	if (s->io.fd < 0 || s->state == PROXY_SV_CONNECTING || s->io.handshaking || s->tls_asked)
		return;
	if (proto_buf_avail(&s->io.out) > 0)
		(void)!proxy_io_flush(s->ctx, &s->io);
	if (proto_buf_avail(&s->io.out) > 0)
		return;
	if (s->io.ssl)
		(void)!SSL_write(s->io.ssl, term, sizeof(term));
	else
		(void)!send(s->io.fd, term, sizeof(term), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void proxy_server_close(struct proxy_server *s, const char *reason)
{
	struct proxy_ctx *ctx = s->ctx;
	struct pool *p = s->pool;
	struct proxy_client *c = s->client;
	bool was_login = s->state == PROXY_SV_CONNECTING || s->state == PROXY_SV_LOGIN;

	if (s->state == PROXY_SV_CLOSING)
		return;
	if (log_current_level >= LOG_LVL_INFO) {
		char who[256];

		proxy_server_describe(s, who, sizeof(who));
		log_info("%s: closing: %s", who, reason);
	}
	proxy_dns_forget(s);
	proxy_server_cancels_detach(s);
	s->client = NULL;
	if (c) {
		c->server = NULL;
		if (c->state != PROXY_CL_CLOSING) {
			if (s->saw_fatal)
				proxy_client_close(c); /* the FATAL itself was relayed */
			else
				proxy_client_fail(c, PROXY_ERR_SERVER_LOST,
				                  "server connection closed unexpectedly: %s",
				                  reason);
		}
	}
	ev_timer_stop(ctx->loop, &s->timer);
	say_goodbye(s);
	proxy_server_set_state(s, PROXY_SV_CLOSING);
	proxy_io_close(ctx, &s->io);
	pool_list_remove(&ctx->servers, &s->all_node);
	proxy_defer_free(ctx, s, server_free);
	if (was_login && !s->param_refused)
		proxy_pool_connect_failed(p);
	else
		proxy_pool_capacity_freed(ctx,
		                          p); /* not after a failed login: it would retry at once */
}

/* Connection or login failed: remember why, for the clients that wait. */
static void server_fail(struct proxy_server *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void server_fail(struct proxy_server *s, const char *fmt, ...)
{
	struct pool *p = s->pool;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last_error, sizeof(p->last_error), fmt, ap);
	va_end(ap);
	p->last_error_at = proxy_now(s->ctx);
	p->n_server_failures++;
	if (log_current_level >= LOG_LVL_WARN) {
		char who[256];

		char why[320];

		/* the text may quote names PostgreSQL echoed back */
		proxy_server_describe(s, who, sizeof(who));
		log_warn("%s: %s", who, log_escape(why, sizeof(why), p->last_error));
	}
	proxy_server_close(s, p->last_error);
}

int proxy_server_send_buf(struct proxy_server *s, struct proto_buf *b)
{
	int rc = proxy_io_send(s->ctx, &s->io, proto_buf_head(b), proto_buf_avail(b));

	proto_buf_free(b);
	return rc;
}

static void send_startup_msg(struct proxy_server *s, bool try_tls);

static void send_startup(struct proxy_server *s)
{
	send_startup_msg(s, true);
}

static void send_startup_plain(struct proxy_server *s)
{
	send_startup_msg(s, false);
}

/* Drive the TLS handshake with the server; on success send the startup
 * packet over TLS. */
static void server_handshake(struct proxy_server *s)
{
	char err[256];
	int rc = proxy_tls_handshake(s->ctx, &s->io, err, sizeof(err));

	if (rc < 0)
		server_fail(s, "%s", err);
	else if (rc == 1)
		send_startup_plain(s);
}

static void send_startup_msg(struct proxy_server *s, bool try_tls)
{
	struct pool *p = s->pool;
	const struct conf_db *db = p->db;
	const char *names[3 + PROTO_MAX_STARTUP_PARAMS], *values[3 + PROTO_MAX_STARTUP_PARAMS];
	const char *nm, *val;
	size_t n = 0, pos = 0;
	struct proto_buf b;

	names[n] = "user";
	values[n++] = p->server_user;
	names[n] = "database";
	values[n++] = db && db->dbname ? db->dbname : p->db_name;
	/* session mode: the client's own parameters, so that its session is
	 * the one a direct connection makes (and PostgreSQL judges them) */
	while ((nm = proxy_sparams_next(s->sp, &pos, &val)) && n < 2 + PROTO_MAX_STARTUP_PARAMS) {
		names[n] = nm;
		values[n++] = val;
	}
	if (db && db->application_name && !proxy_sparams_find(s->sp, "application_name")) {
		names[n] = "application_name";
		values[n++] = db->application_name;
	}
	if (try_tls && s->ctx->tls_connect && !s->io.ssl) {
		/* ask for TLS first; process_login reads the one-byte answer */
		proto_buf_init(&b);
		if (proto_put_ssl_request(&b) < 0 || proxy_server_send_buf(s, &b) < 0) {
			server_fail(s, "cannot send SSL request: %s", strerror(errno));
			return;
		}
		s->tls_asked = true;
		proxy_server_set_state(s, PROXY_SV_LOGIN);
		proxy_io_start_read(s->ctx, &s->io);
		return;
	}
	proto_buf_init(&b);
	if (proto_put_startup(&b, names, values, n) < 0 || proxy_server_send_buf(s, &b) < 0) {
		server_fail(s, "cannot send startup packet: %s", strerror(errno));
		return;
	}
	proxy_server_set_state(s, PROXY_SV_LOGIN);
	proxy_io_start_read(s->ctx, &s->io);
}

/* Drop the socket of a connect attempt that failed, before the next one. */
static void drop_socket(struct proxy_server *s)
{
	struct proxy_ctx *ctx = s->ctx;

	if (ev_is_active(&s->io.rd))
		ev_io_stop(ctx->loop, &s->io.rd);
	if (ev_is_active(&s->io.wr))
		ev_io_stop(ctx->loop, &s->io.wr);
	if (s->io.fd >= 0)
		close(s->io.fd);
	s->io.fd = -1;
}

/* Where the connection goes, for messages. */
static void where(const struct proxy_server *s, char *buf, size_t len)
{
	const struct conf_db *db = s->pool->db;

	snprintf(buf, len, "%s:%d", db && db->host ? db->host : "127.0.0.1", db ? db->port : 0);
}

/* Connect to s->addr, then to the host's next addresses while connect()
 * fails at once. May close <s>: -1 then. */
static int server_connect(struct proxy_server *s)
{
	struct proxy_ctx *ctx = s->ctx;
	int one = 1;

	for (;;) {
		int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		char at[300];

		if (fd < 0) {
			server_fail(s, "cannot create socket: %s", strerror(errno));
			return -1;
		}
		if (s->addr.ss_family != AF_UNIX)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->io.fd = fd;
		ev_io_set(&s->io.rd, fd, EV_READ);
		ev_io_set(&s->io.wr, fd, EV_WRITE);
		if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) == 0) {
			send_startup(s);
			return s->state == PROXY_SV_CLOSING ? -1 : 0;
		}
		if (errno == EINPROGRESS) {
			ev_io_start(ctx->loop, &s->io.wr); /* writable = connected (or failed) */
			return 0;
		}
		{
			int err = errno;

			drop_socket(s);
			if (proxy_dns_next(s) == 1)
				continue;
			where(s, at, sizeof(at));
			server_fail(s, "cannot connect to %s: %s", at, strerror(err));
			return -1;
		}
	}
}

void proxy_server_resolved(struct proxy_server *s, const char *err)
{
	if (err) {
		const struct conf_db *db = s->pool->db;

		server_fail(s, "cannot resolve host \"%s\": %s", db && db->host ? db->host : "",
		            err);
		return;
	}
	(void)server_connect(s);
}

int proxy_server_open(struct proxy_ctx *ctx, struct pool *p)
{
	const struct conf_db *db = p->db;
	struct proxy_server *s;
	char err[256];
	int rc;

	if (!db) {
		snprintf(p->last_error, sizeof(p->last_error),
		         "database \"%s\" is no longer in the configuration", p->db_name);
		p->last_error_at = proxy_now(ctx);
		return -1;
	}
	if (!pool_caps_allow(p))
		return 0; /* max_db/user_connections: the janitor opens it when there is room */
	s = proxy_slab_alloc(&ctx->server_slab);
	if (!s) {
		snprintf(p->last_error, sizeof(p->last_error), "out of memory");
		return -1;
	}
	s->ctx = ctx;
	s->id = ++ctx->next_id;
	s->pool = p;
	s->state = PROXY_SV_CLOSING; /* so set_state below lists it */
	s->status = 'I';
	s->created_at = s->last_used = proxy_now(ctx);
	s->node.owner = s;
	s->all_node.owner = s;
	s->dns_node.owner = s;
	s->dns_idx = -1;
	s->mode = p->mode;
	if (p->mode == CONF_POOL_SESSION)
		s->sp = proxy_sparams_ref(proxy_pool_pick_sp(p));
	pool_list_init(&s->stmt_lru);
	pool_list_init(&s->cancels);
	s->ddl_epoch = ctx->ddl_epoch;
	proxy_io_init(&s->io, -1);
	s->io.late = true;
	ev_io_init(&s->io.rd, server_read_cb, -1, EV_READ);
	ev_io_init(&s->io.wr, server_write_cb, -1, EV_WRITE);
	s->io.rd.data = s->io.wr.data = s;
	ev_init(&s->timer, server_timer_cb);
	s->timer.data = s;
	pool_list_push_back(&ctx->servers, &s->all_node);
	proxy_server_set_state(s, PROXY_SV_CONNECTING);
	p->last_connect_at = proxy_now(ctx);
	p->n_server_connects++;
	if (ctx->conf->server_connect_timeout > 0) {
		/* covers the name lookup too */
		ev_timer_set(&s->timer, ctx->conf->server_connect_timeout, 0);
		ev_timer_start(ctx->loop, &s->timer);
	}
	rc = proxy_dns_target(s, err, sizeof(err));
	if (rc < 0) {
		server_fail(s, "cannot resolve host \"%s\": %s", db->host ? db->host : "", err);
		return -1;
	}
	if (rc == 0)
		return 0; /* proxy_server_resolved goes on */
	return server_connect(s);
}

/* ---- login ---- */

static const char *server_password(struct proxy_server *s)
{
	const struct conf_db *db = s->pool->db;

	if (db && db->user && db->password)
		return db->password;
	return conf_auth_lookup(&s->ctx->auth, s->pool->server_user);
}

static void handle_auth(struct proxy_server *s, const struct proto_msg *m)
{
	struct proto_reader r;
	uint32_t code;
	const char *secret = server_password(s);
	const char *err = NULL;
	char out[512];
	size_t outlen = 0;
	struct proto_buf b;
	int rc = -1;

	proto_reader_init(&r, m->body, m->body_len);
	code = proto_get_u32(&r);
	proto_buf_init(&b);
	switch (code) {
	case PROTO_AUTH_OK:
		proto_buf_free(&b);
		return;
	case PROTO_AUTH_CLEARTEXT:
		if (!secret || proto_is_md5_secret(secret) || proto_is_scram_secret(secret)) {
			server_fail(s,
			            "server asks for a cleartext password for user \"%s\" and "
			            "no plaintext password is configured",
			            s->pool->server_user);
			return;
		}
		rc = proto_put_password(&b, secret);
		break;
	case PROTO_AUTH_MD5: {
		const uint8_t *salt = proto_get_bytes(&r, 4);
		char resp[36];

		if (!salt || !secret || proto_is_scram_secret(secret)) {
			server_fail(s,
			            "server asks for an md5 password for user \"%s\" and no "
			            "plaintext or md5 password is configured",
			            s->pool->server_user);
			return;
		}
		proto_md5_response(s->pool->server_user, secret, salt, resp);
		rc = proto_put_password(&b, resp);
		explicit_bzero(resp, sizeof(resp));
		break;
	}
	case PROTO_AUTH_SASL: {
		bool scram = false;
		const char *mech;

		while ((mech = proto_get_str(&r)) && *mech)
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				scram = true;
		if (!scram) {
			server_fail(s, "server offers no supported SASL mechanism");
			return;
		}
		s->scram = calloc(1, sizeof(*s->scram));
		if (!s->scram ||
		    proto_scram_client_first(s->scram, out, sizeof(out), &outlen) < 0) {
			server_fail(s, "cannot start SCRAM exchange");
			return;
		}
		rc = proto_put_sasl_initial(&b, "SCRAM-SHA-256", out, outlen);
		break;
	}
	case PROTO_AUTH_SASL_CONTINUE: {
		const char *pw = NULL;
		const struct proto_scram_secret *keys = NULL;

		if (!s->scram) {
			server_fail(s, "unexpected SASLContinue from server");
			return;
		}
		if (secret && !proto_is_scram_secret(secret) && !proto_is_md5_secret(secret)) {
			pw = secret;
			if (s->pool->have_server_keys)
				keys = &s->pool->server_keys;
		} else if (s->pool->have_scram_keys) {
			keys = &s->pool->scram_keys;
		}
		if (!pw && !keys) {
			server_fail(s,
			            "no password for server login of user \"%s\": put a "
			            "plaintext password in auth_file or password= in [databases], "
			            "or log in once with SCRAM",
			            s->pool->server_user);
			return;
		}
		if (proto_scram_client_final(s->scram, pw, keys, r.p, r.n, out, sizeof(out),
		                             &outlen, &err) < 0) {
			server_fail(s, "SCRAM exchange with server failed: %s",
			            err ? err : "invalid server-first message");
			return;
		}
		rc = proto_put_sasl_response(&b, out, outlen);
		break;
	}
	case PROTO_AUTH_SASL_FINAL:
		if (!s->scram || proto_scram_client_verify(s->scram, r.p, r.n, &err) < 0) {
			server_fail(s, "server's SCRAM signature is invalid: %s",
			            err ? err : "mismatch");
			return;
		}
		if (s->scram->has_derived) {
			s->pool->server_keys = s->scram->derived;
			s->pool->have_server_keys = true;
		}
		proto_buf_free(&b);
		return;
	default:
		server_fail(s, "server asks for unsupported authentication method %u", code);
		return;
	}
	explicit_bzero(out, sizeof(out));
	if (rc < 0 || proxy_server_send_buf(s, &b) < 0) {
		server_fail(s, "cannot send authentication reply: %s", strerror(errno));
		return;
	}
}

void proxy_server_set_var(struct proxy_server *s, const char *name, const char *value)
{
	int v = proxy_var_index(name);

	if (v < 0)
		return;
	if (s->vars[v] && strcmp(s->vars[v], value) == 0)
		return;
	proxy_str_put(s->ctx, s->vars[v]);
	s->vars[v] = proxy_str_get(s->ctx, value);
}

/* Record <value> of a tracked parameter reported during <s>'s login: the
 * value a client that never set <name> expects on it. */
static void login_var(struct proxy_server *s, const char *name, const char *value)
{
	int v = proxy_var_index(name);

	if (v < 0)
		return;
	proxy_str_put(s->ctx, s->login_vars[v]);
	s->login_vars[v] = proxy_str_get(s->ctx, value);
}

static void login_done(struct proxy_server *s)
{
	struct pool *p = s->pool;
	struct pool_node *n;

	ev_timer_stop(s->ctx->loop, &s->timer);
	if (s->scram)
		explicit_bzero(s->scram, sizeof(*s->scram));
	free(s->scram);
	s->scram = NULL;
	p->have_params = true;
	if (s->sp != p->warm_sp) {
		/* the set clients of this pool send now, known to log in */
		proxy_sparams_put(s->ctx, p->warm_sp);
		p->warm_sp = proxy_sparams_ref(s->sp);
	}
	p->last_error[0] = '\0';
	p->db_missing = false;
	if (log_current_level >= LOG_LVL_DEBUG) {
		char who[256];

		proxy_server_describe(s, who, sizeof(who));
		log_debug("%s: login done, backend pid %u", who, s->be_pid);
	}
	while ((n = pool_list_first(&p->logins)))
		proxy_client_login_done(n->owner);
	proxy_pool_server_ready(s);
}

/* Keep an untracked ParameterStatus pair of a login that had a client's
 * startup parameters (s->login_extra). -1 on OOM. */
static int keep_login_extra(struct proxy_server *s, const char *name, const char *value)
{
	size_t old = 0, nl = strlen(name) + 1, vl = strlen(value) + 1;
	char *x;

	while (s->login_extra && s->login_extra[old]) {
		old += strlen(s->login_extra + old) + 1; /* a name */
		old += strlen(s->login_extra + old) + 1; /* its value */
	}
	x = realloc(s->login_extra, old + nl + vl + 1);
	if (!x)
		return -1;
	memcpy(x + old, name, nl);
	memcpy(x + old + nl, value, vl);
	x[old + nl + vl] = '\0';
	s->login_extra = x;
	return 0;
}

/* SQLSTATEs with which PostgreSQL refuses a startup parameter: unknown
 * (42704), bad value (22023), not settable by this user (42501) or not
 * now (55P02), bad options syntax (42601). */
static bool param_error(const char *sqlstate)
{
	return strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "42", 2) == 0 ||
	       strcmp(sqlstate, "55P02") == 0;
}

/*
 * PostgreSQL refused the login of <s> over the client startup parameters
 * it was opened with: every client waiting with that same set gets the
 * error as PostgreSQL sent it (<m>, FATAL), as from a direct login, and
 * nothing else changes: the pool is fine, other clients wait on. Closes
 * <s>.
 */
static void params_refused(struct proxy_server *s, const struct proto_msg *m,
                           const struct proto_error *e)
{
	struct pool *p = s->pool;
	struct pool_list *l = &p->waiting;
	char who[256], why[320];

	proxy_server_describe(s, who, sizeof(who));
	log_info("%s: a client's startup parameters were refused: %s (SQLSTATE %s)", who,
	         log_escape(why, sizeof(why), e->message), e->sqlstate);
	s->param_refused = true;
	for (struct pool_node *x = l->head.next; x != &l->head;) {
		struct proxy_client *c = x->owner;

		x = x->next;
		if (c->sp != s->sp || c->state != PROXY_CL_WAIT)
			continue;
		/* closing takes the client off the list: <x> was taken before;
		 * the close flushes the error as its last words */
		(void)!proxy_io_send(s->ctx, &c->io, m->raw, m->raw_len);
		proxy_client_close(c);
	}
	if (p->warm_sp == s->sp) {
		/* min_pool_size must not retry it for ever */
		proxy_sparams_put(s->ctx, p->warm_sp);
		p->warm_sp = NULL;
	}
	proxy_server_close(s, "a client's startup parameters were refused");
}

/*
 * PostgreSQL had no room for the session-mode login of <s> (53300: the
 * role's or the database's CONNECTION LIMIT, or max_connections). A direct
 * login would have got this error at once, and drivers' pools count on it
 * (they go on with the connections they have); waiting instead, with the
 * login retried every server_login_retry, lasts until another client of the
 * role leaves, for ever with a driver's own pool. So the first client
 * waiting with <s>'s startup parameters, for which <s> was opened, gets the
 * error as PostgreSQL sent it (<m>, FATAL) and is closed; every other
 * waiting client has a login of its own in flight and gets its own answer.
 * Not the pool's failure: nothing is retried for it. Returns false, and
 * does nothing, if no client waits for such a server (one min_pool_size
 * opens), else closes <s> and returns true.
 */
static bool no_room_for_login(struct proxy_server *s, const struct proto_msg *m,
                              const struct proto_error *e)
{
	struct pool *p = s->pool;
	struct proxy_client *c = NULL;
	char who[256], why[320];

	if (p->mode != CONF_POOL_SESSION || strcmp(e->sqlstate, "53300") != 0)
		return false;
	for (struct pool_node *x = p->waiting.head.next; x != &p->waiting.head; x = x->next) {
		struct proxy_client *w = x->owner;

		if (w->sp == s->sp && w->state == PROXY_CL_WAIT) {
			c = w;
			break;
		}
	}
	if (!c)
		return false;
	proxy_server_describe(s, who, sizeof(who));
	log_info("%s: PostgreSQL has no room for the login: %s (SQLSTATE %s); a waiting client "
	         "gets that error",
	         who, log_escape(why, sizeof(why), e->message), e->sqlstate);
	s->param_refused = true;
	/* the close flushes the error as the client's last words */
	(void)!proxy_io_send(s->ctx, &c->io, m->raw, m->raw_len);
	proxy_client_close(c);
	proxy_server_close(s, "PostgreSQL had no room for a client's login");
	return true;
}

/* Handle login-phase messages; all are small and inspected whole. */
/* The server's answer to our SSLRequest: 'S' then a handshake, or 'N'. */
static void tls_answer(struct proxy_server *s)
{
	const struct conf_db *db = s->pool->db;
	uint8_t a;

	if (proto_buf_avail(&s->io.in) < 1)
		return;
	a = proto_buf_head(&s->io.in)[0];
	proto_buf_consume(&s->io.in, 1);
	s->tls_asked = false;
	if (a == 'S') {
		if (proto_buf_avail(&s->io.in) > 0) {
			server_fail(s, "server sent unencrypted data after accepting TLS");
			return;
		}
		if (proxy_tls_start(s->ctx, &s->io, false, db ? db->host : NULL) < 0) {
			server_fail(s, "cannot start TLS with server");
			return;
		}
		server_handshake(s);
		return;
	}
	if (a != 'N') {
		server_fail(s, "invalid answer to SSL request from server");
		return;
	}
	if (s->ctx->conf->server_tls_sslmode >= CONF_SSL_REQUIRE) {
		server_fail(s, "server does not support TLS and server_tls_sslmode requires it");
		return;
	}
	send_startup_plain(s);
}

void proxy_server_login_step(struct proxy_server *s)
{
	struct proto_msg m;

	if (s->tls_asked) {
		tls_answer(s);
		return;
	}

	while (s->state == PROXY_SV_LOGIN) {
		int rc = proto_next(proto_buf_head(&s->io.in), proto_buf_avail(&s->io.in), false,
		                    PROXY_INSPECT_MAX, &m);

		if (rc == PROTO_NEED_MORE)
			return;
		if (rc != PROTO_OK) {
			server_fail(s, "invalid message from server during login");
			return;
		}
		switch (m.type) {
		case 'R':
			handle_auth(s, &m);
			break;
		case 'S': {
			struct proto_reader r;
			const char *name, *value;
			char esc[96];

			proto_reader_init(&r, m.body, m.body_len);
			name = proto_get_str(&r);
			value = proto_get_str(&r);
			if (!name || !value)
				break;
			proxy_server_set_var(s, name, value);
			login_var(s, name, value);
			if (s->sp && proxy_var_index(name) < 0 &&
			    keep_login_extra(s, name, value) < 0)
				log_warn("S-%llu: cannot keep parameter %s",
				         (unsigned long long)s->id,
				         log_escape(esc, sizeof(esc), name));
			/* a login with a client's own parameters may report values of
			 * that client: it adds only names the pool does not know */
			if (s->sp && proxy_var_index(name) < 0 && pool_get_param(s->pool, name))
				break;
			/* every login refreshes what new clients are told: an ALTER ROLE
			 * or ALTER DATABASE ... SET since the last one shows at once */
			if (pool_set_param(s->pool, name, value) < 0)
				log_warn("S-%llu: cannot keep parameter %s",
				         (unsigned long long)s->id,
				         log_escape(esc, sizeof(esc), name));
			break;
		}
		case 'K': {
			struct proto_reader r;

			proto_reader_init(&r, m.body, m.body_len);
			s->be_pid = proto_get_u32(&r);
			s->be_key = proto_get_u32(&r);
			break;
		}
		case 'E': {
			struct proto_error e;

			if (proto_parse_error(&m, &e) < 0)
				e.message = "malformed error", e.sqlstate = "";
			if (s->cq_sent) {
				/* connect_query failed: its ReadyForQuery follows */
				if (!s->cq_error)
					s->cq_error = strdup(e.message);
				break;
			}
			if (s->sp && param_error(e.sqlstate)) {
				/* the client's startup parameters: its error, not the pool's */
				params_refused(s, &m, &e);
				return;
			}
			if (no_room_for_login(s, &m, &e))
				return;
			/* not there: asking again and again only repeats this; the
			 * clients get PostgreSQL's own words, as from a direct login */
			if (strcmp(e.sqlstate, "3D000") == 0) {
				s->pool->db_missing = true;
				server_fail(s, "%s", e.message);
				return;
			}
			server_fail(s, "server login failed: %s (SQLSTATE %s)", e.message,
			            e.sqlstate);
			return;
		}
		case 'Z': {
			const struct conf_db *db = s->pool->db;

			proto_buf_consume(&s->io.in, m.raw_len);
			if (!s->cq_sent && db && db->connect_query && db->connect_query[0]) {
				/* once per new connection, before any client uses it */
				struct proto_buf b;

				proto_buf_init(&b);
				if (proto_put_query(&b, db->connect_query) < 0 ||
				    proxy_server_send_buf(s, &b) < 0) {
					server_fail(s, "cannot send connect_query");
					return;
				}
				s->cq_sent = true;
				continue;
			}
			if (s->cq_sent && s->cq_error) {
				char q[128];

				server_fail(s, "connect_query \"%s\" failed: %s",
				            log_escape(q, sizeof(q), db ? db->connect_query : ""),
				            s->cq_error);
				return;
			}
			login_done(s);
			return;
		}
		case 'N':
		case 'v':
		default:
			break;
		}
		if (s->state != PROXY_SV_LOGIN)
			return;
		proto_buf_consume(&s->io.in, m.raw_len);
	}
}

static void server_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_server *s = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	/* SUSPEND: what PostgreSQL sends waits in the kernel for RESUME; a
	 * server still logging in goes on */
	if (s->ctx->suspended && s->state != PROXY_SV_CONNECTING && s->state != PROXY_SV_LOGIN &&
	    s->state != PROXY_SV_CLOSING) {
		proxy_io_freeze(s->ctx, &s->io);
		return;
	}
	if (s->io.handshaking) {
		server_handshake(s);
		return;
	}
	n = proxy_io_read(s->ctx, &s->io);
	if (n == -2)
		return;
	if (n <= 0) {
		if (s->state == PROXY_SV_LOGIN)
			server_fail(s, "server closed the connection during login");
		else
			proxy_server_close(s, n == 0 ? "server closed the connection"
			                             : strerror(errno));
		return;
	}
	proxy_server_process(s);
}

static void server_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_server *s = w->data;
	int rc;

	(void)loop;
	(void)revents;
	if (s->state == PROXY_SV_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		ev_io_stop(s->ctx->loop, &s->io.wr);
		if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			char at[300];

			drop_socket(s);
			if (proxy_dns_next(s) == 1) {
				(void)server_connect(s); /* the host's next address */
				return;
			}
			where(s, at, sizeof(at));
			server_fail(s, "cannot connect to %s: %s", at, strerror(err));
			return;
		}
		send_startup(s);
		return;
	}
	if (s->io.handshaking) {
		server_handshake(s);
		return;
	}
	rc = proxy_io_flush(s->ctx, &s->io);
	if (rc < 0) {
		proxy_server_close(s, "write to server failed");
		return;
	}
	proto_buf_shrink(&s->io.out, PROXY_BUF_KEEP);
	if (s->client && proto_buf_avail(&s->io.out) <= PROXY_HIGH_WATER / 2)
		proxy_client_resume(s->client);
}

static void server_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy_server *s = w->data;

	(void)loop;
	(void)revents;
	if (s->state == PROXY_SV_CONNECTING || s->state == PROXY_SV_LOGIN)
		server_fail(s, "server_connect_timeout: no login within %g s",
		            s->ctx->conf->server_connect_timeout);
}

/*
 * The question a session-mode server answers when its client has left,
 * right after server_reset_query: one row if the session holds what a
 * reset does not undo, so that the next client would not get a fresh
 * session. DISCARD ALL drops temporary objects but not the temporary
 * schema a backend made for them (pg_my_temp_schema() stays set, which a
 * new backend's is not); with any other reset query
 * LISTEN, session advisory locks, prepared statements and cursors may
 * remain too, and are asked about as well. Cheap: a few catalog calls in
 * the reset's own round trip.
 */
const char *proxy_fresh_check_sql(const char *reset_query)
{
	const char *q = reset_query ? reset_query : "";
	size_t n;

	while (*q == ' ' || *q == '\t' || *q == '\n')
		q++;
	n = strlen(q);
	while (n > 0 &&
	       (q[n - 1] == ' ' || q[n - 1] == ';' || q[n - 1] == '\n' || q[n - 1] == '\t'))
		n--;
	if (n == 11 && strncasecmp(q, "DISCARD ALL", 11) == 0)
		return "SELECT 1 WHERE pg_catalog.pg_my_temp_schema() <> 0";
	return "SELECT 1 WHERE pg_catalog.pg_my_temp_schema() <> 0"
	       " OR EXISTS (SELECT FROM pg_catalog.pg_listening_channels())"
	       " OR EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
	       " AND pid = pg_catalog.pg_backend_pid())"
	       " OR EXISTS (SELECT FROM pg_catalog.pg_prepared_statements)"
	       " OR EXISTS (SELECT FROM pg_catalog.pg_cursors)";
}

void proxy_server_release(struct proxy_server *s, bool client_gone)
{
	struct proxy_client *c = s->client;
	const struct conf *cf = s->ctx->conf;
	bool clean, reset, check;

	(void)client_gone;
	clean = proxy_server_reusable(s, c);
	if (c) {
		c->server = NULL;
		s->client = NULL;
	}
	if (!clean) {
		/* a query or transaction is in progress: stop it, never reuse */
		if (s->outstanding > 0 || s->status != 'I')
			proxy_server_cancel(s);
		proxy_server_close(s, "client left with a query or transaction in progress");
		return;
	}
	s->last_used = proxy_now(s->ctx);
	if (s->close_needed) {
		/* retired by a reload: no point resetting it */
		proxy_pool_server_ready(s);
		return;
	}
	if (proxy_pin_left(s))
		return; /* it held its client's session state: pin.c resets or closes it */
	reset = (s->mode == CONF_POOL_SESSION || cf->server_reset_query_always) &&
	        cf->server_reset_query && cf->server_reset_query[0];
	check = s->mode == CONF_POOL_SESSION;
	if (reset || check) {
		struct proto_buf b;
		int rc = 0;

		proto_buf_init(&b);
		if (reset)
			rc = proto_put_query(&b, cf->server_reset_query);
		/* in the same round trip: does the session keep what the reset
		 * cannot undo? (backrelay.c reads the answer) */
		if (rc == 0 && check)
			rc = proto_put_query(&b, proxy_fresh_check_sql(cf->server_reset_query));
		if (rc < 0 || proxy_server_send_buf(s, &b) < 0) {
			proxy_server_close(s, "cannot send server_reset_query");
			return;
		}
		s->internal += (int)reset + (int)check;
		s->reset_check = check;
		/* the reset undoes what sluice SET and PostgreSQL does not report */
		for (int v = PROXY_NBUILTIN_VARS; v < PROXY_NVARS && reset; v++) {
			proxy_str_put(s->ctx, s->vars[v]);
			s->vars[v] = NULL;
		}
		proxy_server_set_state(s, PROXY_SV_RESET);
		proxy_io_start_read(s->ctx, &s->io);
		return;
	}
	proxy_pool_server_ready(s);
}
