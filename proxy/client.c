/*
 * Client connections: accept, startup packet, authentication, login
 * welcome, and the relay of client messages to the linked server.
 *
 * The relay walks message headers only: it counts the messages that the
 * server answers with ReadyForQuery (Query, Sync, FunctionCall) so the
 * server side knows when a transaction-pooled server may be released, and
 * stops at Terminate. Message bodies stream through untouched, whatever
 * their size.
 */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "stats/stats.h"

static const char *var_names[PROXY_NVARS] = {
        [PROXY_VAR_CLIENT_ENCODING] = "client_encoding",
        [PROXY_VAR_DATESTYLE] = "DateStyle",
        [PROXY_VAR_TIMEZONE] = "TimeZone",
        [PROXY_VAR_INTERVALSTYLE] = "IntervalStyle",
        [PROXY_VAR_STD_STRINGS] = "standard_conforming_strings",
        [PROXY_VAR_APPLICATION_NAME] = "application_name",
};

const char *proxy_var_name(enum proxy_var v)
{
	return var_names[v];
}

int proxy_var_index(const char *name)
{
	for (int i = 0; i < PROXY_NVARS && var_names[i]; i++)
		if (strcasecmp(var_names[i], name) == 0)
			return i;
	return -1;
}

/* Next item of a comma-separated list, blanks trimmed: its start and
 * length, or NULL at the end. Advances <*pp>. */
static const char *list_next(const char **pp, size_t *len)
{
	const char *p = *pp;

	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && t[-1] == ' ')
			t--;
		*pp = e;
		if (t > p) {
			*len = (size_t)(t - p);
			return p;
		}
		p = e;
	}
	return NULL;
}

void proxy_vars_track(const char *list)
{
	const char *item;
	size_t len;

	while ((item = list_next(&list, &len))) {
		char name[64];
		size_t n = len < sizeof(name) - 1 ? len : sizeof(name) - 1;
		bool ok = true;

		memcpy(name, item, n);
		name[n] = 0;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '.')
				ok = false;
		if (!ok) {
			log_warn("track_extra_parameters: \"%s\" is not a parameter name", name);
			continue;
		}
		if (proxy_var_index(name) >= 0)
			continue;
		int slot = PROXY_NBUILTIN_VARS;
		while (slot < PROXY_NVARS && var_names[slot])
			slot++;
		if (slot == PROXY_NVARS) {
			log_warn("track_extra_parameters: no room for \"%s\" (at most %d)", name,
			         PROXY_NVARS - PROXY_NBUILTIN_VARS);
			return;
		}
		var_names[slot] = strdup(name);
	}
}

static const char *const state_names[] = {
        "startup", "auth", "login", "idle", "wait", "active", "admin", "closing",
};

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void client_process(struct proxy_client *c);

static void start_timer(struct proxy_client *c, double after)
{
	ev_timer_stop(c->ctx->loop, &c->timer);
	if (after > 0) {
		ev_timer_set(&c->timer, after, 0);
		ev_timer_start(c->ctx->loop, &c->timer);
	}
}

void proxy_client_set_state(struct proxy_client *c, enum proxy_cl_state st)
{
	const struct conf *cf = c->ctx->conf;

	if (c->state == st)
		return;
	log_debug("C-%llu %s/%s@%s: %s -> %s", (unsigned long long)c->id,
	          c->db_name ? c->db_name : "", c->user ? c->user : "", c->addr,
	          state_names[c->state], state_names[st]);
	c->state = st;
	switch (st) {
	case PROXY_CL_WAIT:
		c->wait_since = proxy_now(c->ctx);
		start_timer(c, cf->query_wait_timeout);
		break;
	case PROXY_CL_IDLE:
		start_timer(c, cf->client_idle_timeout);
		break;
	case PROXY_CL_ACTIVE:
		start_timer(c, 0);
		break;
	case PROXY_CL_CLOSING:
		ev_timer_stop(c->ctx->loop, &c->timer);
		break;
	default:
		break; /* startup/auth/login keep the login timer */
	}
}

static void client_free(void *obj)
{
	struct proxy_client *c = obj;

	for (int i = 0; i < PROXY_NVARS; i++)
		free(c->vars[i]);
	proxy_client_stmts_free(c);
	if (c->secret) {
		explicit_bzero(c->secret, strlen(c->secret));
		free(c->secret);
	}
	if (c->scram) {
		explicit_bzero(c->scram, sizeof(*c->scram));
		free(c->scram);
	}
	free(c->user);
	free(c->db_name);
	free(c);
}

void proxy_client_close(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;

	if (c->state == PROXY_CL_CLOSING)
		return;
	if (c->state == PROXY_CL_WAIT)
		pool_list_remove(&c->pool->waiting, &c->wait_node);
	if (c->state == PROXY_CL_LOGIN)
		pool_list_remove(&c->pool->logins, &c->wait_node);
	if (c->server)
		proxy_server_release(c->server, true);
	if (c->pool && c->state >= PROXY_CL_IDLE)
		c->pool->n_clients--;
	if (c->cancel_hkey)
		HASH_DELETE(hh_cancel, ctx->by_cancel, c);
	proxy_client_set_state(c, PROXY_CL_CLOSING);
	if (proto_buf_avail(&c->io.out) > 0 && c->io.fd >= 0) {
		/* last words (an ErrorResponse): one non-blocking attempt */
		(void)!proxy_io_flush(ctx, &c->io);
	}
	proxy_io_close(ctx, &c->io);
	pool_list_remove(&ctx->clients, &c->all_node);
	ctx->nclients--;
	proxy_defer_free(ctx, c, client_free);
}

/* Discard whatever the client already sent, so that closing the socket does
 * not turn into a reset that destroys our ErrorResponse in flight. */
static void drain_input(int fd)
{
	char junk[4096];

	for (int i = 0; i < 16; i++)
		if (read(fd, junk, sizeof(junk)) <= 0)
			break;
}

void proxy_client_fatal(struct proxy_client *c, const char *sqlstate, const char *hint,
                        const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (c->state == PROXY_CL_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("C-%llu %s/%s@%s: closing: %s (%s)", (unsigned long long)c->id,
	         c->db_name ? c->db_name : "-", c->user ? c->user : "-", c->addr, msg, sqlstate);
	if (c->io.fd >= 0) {
		drain_input(c->io.fd);
		if (proto_put_error(&c->io.out, "FATAL", sqlstate, msg, NULL, hint) < 0)
			proto_buf_reset(&c->io.out);
	}
	proxy_client_close(c);
}

/* A non-fatal ErrorResponse followed by ReadyForQuery: the session goes on. */
static void client_error(struct proxy_client *c, const char *sqlstate, const char *msg,
                         const char *hint)
{
	struct proto_buf b;

	proto_buf_init(&b);
	if (proto_put_error(&b, "ERROR", sqlstate, msg, NULL, hint) < 0 ||
	    proto_put_rfq(&b, 'I') < 0 ||
	    proxy_io_send(c->ctx, &c->io, proto_buf_head(&b), proto_buf_avail(&b)) < 0) {
		proto_buf_free(&b);
		proxy_client_close(c);
		return;
	}
	proto_buf_free(&b);
}

void proxy_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_ctx *ctx = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct proxy_client *c;
		int one = 1;
		int fd = accept4(ctx->listen_fd, (struct sockaddr *)&ss, &sl,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("accept failed: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			log_error("out of memory accepting a client");
			close(fd);
			return;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			char ip[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, ntohs(sin->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			char ip[INET6_ADDRSTRLEN];

			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			snprintf(c->addr, sizeof(c->addr), "[%s]:%d", ip, ntohs(sin6->sin6_port));
		} else {
			snprintf(c->addr, sizeof(c->addr), "unix");
		}
		c->ctx = ctx;
		c->id = ++ctx->next_id;
		c->state = PROXY_CL_STARTUP;
		c->last_active = proxy_now(ctx);
		proxy_io_init(&c->io, fd);
		ev_io_init(&c->io.rd, client_read_cb, fd, EV_READ);
		ev_io_init(&c->io.wr, client_write_cb, fd, EV_WRITE);
		c->io.rd.data = c->io.wr.data = c;
		ev_init(&c->timer, client_timer_cb);
		c->timer.data = c;
		c->all_node.owner = c;
		c->wait_node.owner = c;
		pool_list_push_back(&ctx->clients, &c->all_node);
		ctx->nclients++;
		ctx->n_accepted++;
		start_timer(c, ctx->conf->client_login_timeout);
		proxy_io_start_read(ctx, &c->io);
	}
}

/* ---- authentication ---- */

static void auth_failed(struct proxy_client *c)
{
	c->ctx->n_login_failures++;
	proxy_client_fatal(c, "28P01", NULL, "password authentication failed for user \"%s\"",
	                   c->user);
}

static int send_auth(struct proxy_client *c, uint32_t code, const void *data, size_t len)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_auth(&b, code, data, len);
	if (rc == 0)
		rc = proxy_io_send(c->ctx, &c->io, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	return rc;
}

static void send_welcome(struct proxy_client *c);

/* Password accepted: AuthenticationOk, then either the admin console or the
 * pool's login set. */
static void client_authenticated(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	const char *sqlstate = "08006";
	char msg[256];

	c->auth_step = PROXY_AUTH_NONE;
	if (send_auth(c, PROTO_AUTH_OK, NULL, 0) < 0) {
		proxy_client_close(c);
		return;
	}
	if (c->secret) {
		explicit_bzero(c->secret, strlen(c->secret));
		free(c->secret);
		c->secret = NULL;
	}
	if (strcmp(c->db_name, ctx->conf->admin_db) == 0) {
		proxy_admin_welcome(c);
		return;
	}
	c->pool = proxy_pool_for(ctx, c->db_name, c->user, &sqlstate, msg, sizeof(msg));
	if (!c->pool) {
		proxy_client_fatal(c, sqlstate, NULL, "%s", msg);
		return;
	}
	if (c->scram_ok && c->scram) {
		/* Keys recovered from this login let servers log in as the user. */
		c->pool->scram_keys = c->scram->secret;
		c->pool->have_scram_keys = true;
	}
	if (c->scram) {
		explicit_bzero(c->scram, sizeof(*c->scram));
		free(c->scram);
		c->scram = NULL;
	}
	if (c->pool->have_params) {
		c->pool->n_clients++;
		send_welcome(c);
		return;
	}
	/* Nothing known about the server yet: wait for its first login. */
	proxy_client_set_state(c, PROXY_CL_LOGIN);
	pool_list_push_back(&c->pool->logins, &c->wait_node);
	proxy_io_stop_read(ctx, &c->io);
	if (c->pool->connecting.n == 0) {
		if (!pool_can_open(c->pool)) {
			proxy_client_fatal(c, "53300", NULL,
			                   "pool \"%s/%s\" has no room for a server connection",
			                   c->pool->db_name, c->pool->user);
			return;
		}
		if (proxy_server_open(ctx, c->pool) < 0)
			proxy_pool_connect_failed(c->pool);
	}
}

void proxy_client_login_done(struct proxy_client *c)
{
	pool_list_remove(&c->pool->logins, &c->wait_node);
	c->pool->n_clients++;
	/* state leaves LOGIN in send_welcome */
	send_welcome(c);
}

/* Pick cancel key data no other client has. */
static int new_cancel_key(struct proxy_client *c)
{
	struct proxy_client *other;

	for (int tries = 0; tries < 8; tries++) {
		if (proto_random(&c->cancel_pid, sizeof(c->cancel_pid)) < 0 ||
		    proto_random(&c->cancel_key, sizeof(c->cancel_key)) < 0)
			return -1;
		c->cancel_pid &= 0x7fffffff; /* looks like a pid to clients */
		c->cancel_hkey = ((uint64_t)c->cancel_pid << 32) | c->cancel_key;
		other = NULL;
		HASH_FIND(hh_cancel, c->ctx->by_cancel, &c->cancel_hkey, sizeof(c->cancel_hkey),
		          other);
		if (c->cancel_hkey != 0 && !other)
			return 0;
	}
	return -1;
}

static void send_welcome(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	struct pool *p = c->pool;
	struct proto_buf b;
	bool sent[PROXY_NVARS] = {false};
	int rc = 0;

	proto_buf_init(&b);
	for (size_t i = 0; i < p->nparams && rc == 0; i++) {
		int v = proxy_var_index(p->params[i].name);
		const char *val = p->params[i].value;

		if (v >= 0 && c->vars[v]) {
			val = c->vars[v];
			sent[v] = true;
		} else if (v >= 0) {
			/* the client starts from the server default and keeps it, so
			 * it never inherits what an earlier client set on a server */
			c->vars[v] = strdup(val);
			sent[v] = c->vars[v] != NULL;
		}
		rc = proto_put_param_status(&b, p->params[i].name, val);
	}
	for (int v = 0; v < PROXY_NVARS && rc == 0; v++)
		if (c->vars[v] && !sent[v])
			rc = proto_put_param_status(&b, var_names[v], c->vars[v]);
	if (rc == 0 && new_cancel_key(c) < 0)
		rc = -1;
	if (rc == 0) {
		HASH_ADD(hh_cancel, ctx->by_cancel, cancel_hkey, sizeof(c->cancel_hkey), c);
		rc = proto_put_backend_key(&b, c->cancel_pid, c->cancel_key);
	}
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	if (rc == 0)
		rc = proxy_io_send(ctx, &c->io, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	if (rc < 0) {
		proxy_client_close(c);
		return;
	}
	log_debug("C-%llu %s/%s@%s: login", (unsigned long long)c->id, c->db_name, c->user,
	          c->addr);
	proxy_client_set_state(c, PROXY_CL_IDLE);
	proxy_io_start_read(ctx, &c->io);
	if (proto_buf_avail(&c->io.in) > 0)
		client_process(c);
}

/* A random secret for users that do not exist, so that the exchange looks
 * the same as for real users and reveals nothing. */
static char *mock_secret(void)
{
	uint8_t r[16];
	char *s = malloc(sizeof(r) * 2 + 1);

	if (!s)
		return NULL;
	if (proto_random(r, sizeof(r)) < 0)
		memset(r, 0x5a, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(s + 2 * i, 3, "%02x", r[i]);
	return s;
}

static void begin_scram(struct proxy_client *c)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_auth_sasl(&b, "SCRAM-SHA-256");
	if (rc == 0)
		rc = proxy_io_send(c->ctx, &c->io, proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	if (rc < 0) {
		proxy_client_close(c);
		return;
	}
	c->auth_step = PROXY_AUTH_SASL_INIT;
}

static void begin_auth(struct proxy_client *c, bool known_user)
{
	const struct conf *cf = c->ctx->conf;
	enum conf_auth_type at = cf->auth_type;

	if (at == CONF_AUTH_TRUST) {
		if (!known_user && cf->auth_file) {
			c->ctx->n_login_failures++;
			proxy_client_fatal(c, "28000", NULL,
			                   "no such user: \"%s\" is not in auth_file", c->user);
			return;
		}
		client_authenticated(c);
		return;
	}
	proxy_client_set_state(c, PROXY_CL_AUTH);
	if (at == CONF_AUTH_PLAIN) {
		c->auth_step = PROXY_AUTH_CLEARTEXT;
		if (send_auth(c, PROTO_AUTH_CLEARTEXT, NULL, 0) < 0)
			proxy_client_close(c);
		return;
	}
	if (at == CONF_AUTH_SCRAM || proto_is_scram_secret(c->secret)) {
		begin_scram(c);
		return;
	}
	/* md5 */
	if (proto_random(c->md5_salt, sizeof(c->md5_salt)) < 0) {
		proxy_client_fatal(c, "58000", NULL, "could not generate random salt");
		return;
	}
	c->auth_step = PROXY_AUTH_MD5;
	if (send_auth(c, PROTO_AUTH_MD5, c->md5_salt, sizeof(c->md5_salt)) < 0)
		proxy_client_close(c);
}

/*
 * A plaintext password in auth_file is turned into a SCRAM secret once per
 * user (with a random salt kept from then on, as PostgreSQL keeps its
 * own), not at every login: the key derivation is the dearest part of a
 * login. A changed password (reload) makes a new one.
 */
struct proxy_scram_cache {
	char *user;                              /* owned, key */
	uint8_t pw_digest[SHA256_DIGEST_LENGTH]; /* of the plaintext it was made from */
	struct proto_scram_secret secret;
	UT_hash_handle hh;
};

static int scram_secret_from_plaintext(struct proxy_ctx *ctx, const char *user,
                                       const char *password, struct proto_scram_secret *sec)
{
	struct proxy_scram_cache *e = NULL;
	uint8_t digest[SHA256_DIGEST_LENGTH], salt[16];

	SHA256((const unsigned char *)password, strlen(password), digest);
	HASH_FIND_STR(ctx->scram_cache, user, e);
	if (e && proto_ct_equal(e->pw_digest, digest, sizeof(digest))) {
		*sec = e->secret;
		sec->has_client_key = false;
		return 0;
	}
	if (proto_random(salt, sizeof(salt)) < 0 ||
	    proto_scram_secret_from_password(password, salt, sizeof(salt), PROTO_SCRAM_DEFAULT_ITER,
	                                     sec) < 0)
		return -1;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->user = strdup(user))) {
			free(e);
			return 0; /* no cache this time; the secret is still good */
		}
		HASH_ADD_KEYPTR(hh, ctx->scram_cache, e->user, strlen(e->user), e);
	}
	memcpy(e->pw_digest, digest, sizeof(digest));
	e->secret = *sec;
	/* only what a stored verifier holds: the ClientKey would be a password equivalent */
	e->secret.has_client_key = false;
	explicit_bzero(e->secret.client_key, sizeof(e->secret.client_key));
	return 0;
}

void proxy_scram_cache_free(struct proxy_ctx *ctx)
{
	struct proxy_scram_cache *e, *tmp;

	HASH_ITER(hh, ctx->scram_cache, e, tmp)
	{
		HASH_DEL(ctx->scram_cache, e);
		free(e->user);
		explicit_bzero(&e->secret, sizeof(e->secret));
		free(e);
	}
}

/* Build the SCRAM secret the exchange verifies against. */
static int scram_secret_for(struct proxy_client *c, struct proto_scram_secret *sec)
{
	if (proto_is_scram_secret(c->secret))
		return proto_scram_parse_secret(c->secret, sec);
	if (proto_is_md5_secret(c->secret)) {
		log_warn("C-%llu: user \"%s\" has an md5 secret in auth_file; SCRAM needs a "
		         "plaintext password or a SCRAM verifier",
		         (unsigned long long)c->id, c->user);
		return -1;
	}
	return scram_secret_from_plaintext(c->ctx, c->user, c->secret, sec);
}

static void handle_password(struct proxy_client *c, const struct proto_msg *m)
{
	struct proto_reader r;
	const char *err = NULL;
	char out[512];
	size_t outlen = 0;

	if (m->type != 'p') {
		proxy_client_fatal(c, "08P01", NULL,
		                   "expected a password message, got message type '%c'",
		                   m->type >= 32 && m->type < 127 ? m->type : '?');
		return;
	}
	proto_reader_init(&r, m->body, m->body_len);
	switch (c->auth_step) {
	case PROXY_AUTH_CLEARTEXT: {
		const char *pw = proto_get_str(&r);
		char a[36], b[36];
		uint8_t zero[4] = {0};

		if (!pw) {
			proxy_client_fatal(c, "08P01", NULL, "malformed password message");
			return;
		}
		if (proto_is_scram_secret(c->secret)) {
			struct proto_scram_secret stored, mine;

			if (proto_scram_parse_secret(c->secret, &stored) < 0 ||
			    proto_scram_secret_from_password(pw, stored.salt, stored.salt_len,
			                                     stored.iterations, &mine) < 0 ||
			    !proto_ct_equal(stored.stored_key, mine.stored_key,
			                    sizeof(stored.stored_key))) {
				auth_failed(c);
				return;
			}
		} else {
			/* compare fixed-length digests, so timing says nothing of the length */
			proto_md5_response(c->user, c->secret, zero, a);
			proto_md5_response(c->user, pw, zero, b);
			if (!proto_ct_equal(a, b, 35)) {
				auth_failed(c);
				return;
			}
		}
		client_authenticated(c);
		return;
	}
	case PROXY_AUTH_MD5: {
		const char *resp = proto_get_str(&r);

		if (!resp || !proto_md5_verify(c->user, c->secret, c->md5_salt, resp)) {
			auth_failed(c);
			return;
		}
		client_authenticated(c);
		return;
	}
	case PROXY_AUTH_SASL_INIT: {
		const char *mech = proto_get_str(&r);
		uint32_t len = proto_get_u32(&r);
		const uint8_t *data = proto_get_bytes(&r, len);
		struct proto_scram_secret sec;

		if (!mech || !data || r.err) {
			proxy_client_fatal(c, "08P01", NULL, "malformed SASLInitialResponse");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			proxy_client_fatal(c, "28000", NULL,
			                   "client selected an invalid SASL authentication "
			                   "mechanism \"%s\"",
			                   mech);
			return;
		}
		if (scram_secret_for(c, &sec) < 0) {
			auth_failed(c);
			return;
		}
		c->scram = calloc(1, sizeof(*c->scram));
		if (!c->scram || proto_scram_server_first(c->scram, &sec, data, len, out,
		                                          sizeof(out), &outlen, &err) < 0) {
			explicit_bzero(&sec, sizeof(sec));
			if (!c->scram) {
				proxy_client_fatal(c, "53200", NULL, "out of memory");
				return;
			}
			proxy_client_fatal(c, "08P01", NULL, "invalid SCRAM exchange: %s",
			                   err ? err : "malformed client-first message");
			return;
		}
		explicit_bzero(&sec, sizeof(sec));
		c->auth_step = PROXY_AUTH_SASL_CONT;
		if (send_auth(c, PROTO_AUTH_SASL_CONTINUE, out, outlen) < 0)
			proxy_client_close(c);
		return;
	}
	case PROXY_AUTH_SASL_CONT:
		if (proto_scram_server_final(c->scram, m->body, m->body_len, out, sizeof(out),
		                             &outlen, &err) < 0) {
			auth_failed(c);
			return;
		}
		c->scram_ok = c->scram->secret.has_client_key;
		if (send_auth(c, PROTO_AUTH_SASL_FINAL, out, outlen) < 0) {
			proxy_client_close(c);
			return;
		}
		client_authenticated(c);
		return;
	default:
		proxy_client_fatal(c, "08P01", NULL, "unexpected password message");
		return;
	}
}

/* ---- startup ---- */

static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name), len;
	const char *item;

	while ((item = list_next(&list, &len)))
		if (len == n && strncasecmp(item, name, n) == 0)
			return true;
	return false;
}

static void handle_cancel(struct proxy_client *c, const struct proto_startup *s)
{
	struct proxy_ctx *ctx = c->ctx;
	uint64_t k = ((uint64_t)s->cancel_pid << 32) | s->cancel_key;
	struct proxy_client *target = NULL;

	HASH_FIND(hh_cancel, ctx->by_cancel, &k, sizeof(k), target);
	if (target && target->server) {
		ctx->n_cancels++;
		log_debug("C-%llu: cancel request for C-%llu", (unsigned long long)c->id,
		          (unsigned long long)target->id);
		proxy_server_cancel(target->server);
	}
	/* PostgreSQL closes without a reply, whatever the outcome */
	proxy_client_close(c);
}

static void handle_startup(struct proxy_client *c, const struct proto_msg *m)
{
	struct proxy_ctx *ctx = c->ctx;
	const struct conf *cf = ctx->conf;
	struct proto_startup s;
	const char *err = NULL;
	const char *secret;

	if (proto_parse_startup(m, &s, &err) < 0) {
		proxy_client_fatal(c, "08P01", NULL, "invalid startup packet: %s",
		                   err ? err : "malformed");
		return;
	}
	if (s.code == PROTO_SSL_REQUEST && ctx->tls_accept && !c->io.ssl) {
		/* bytes after the request would be read as if they came over TLS */
		if (proto_buf_avail(&c->io.in) != 0) {
			proxy_client_fatal(c, "08P01", NULL, "unencrypted data after SSL request");
			return;
		}
		if (proxy_io_send(ctx, &c->io, "S", 1) < 0 ||
		    proxy_tls_start(ctx, &c->io, true, NULL) < 0) {
			proxy_client_close(c);
			return;
		}
		return;
	}
	if (s.code == PROTO_SSL_REQUEST || s.code == PROTO_GSSENC_REQUEST) {
		/* not offered: the client may go on in clear */
		if (proxy_io_send(ctx, &c->io, "N", 1) < 0)
			proxy_client_close(c);
		return;
	}
	if (s.code == PROTO_CANCEL_REQUEST) {
		handle_cancel(c, &s);
		return;
	}
	if ((s.code >> 16) != 3) {
		proxy_client_fatal(c, "0A000", NULL,
		                   "unsupported frontend protocol %u.%u: sluice supports 3.0",
		                   s.code >> 16, s.code & 0xffff);
		return;
	}
	if (!c->io.ssl && cf->client_tls_sslmode >= CONF_SSL_REQUIRE) {
		proxy_client_fatal(c, "28000", "connect with sslmode=require (or stricter)",
		                   "TLS is required by sluice (client_tls_sslmode = require)");
		return;
	}
	if (ctx->nclients > (size_t)cf->max_client_conn) {
		proxy_client_fatal(c, "53300",
		                   "raise max_client_conn in the configuration or use fewer "
		                   "client connections",
		                   "too many client connections (max_client_conn = %d)",
		                   cf->max_client_conn);
		return;
	}
	if (ctx->shutting_down) {
		proxy_client_fatal(c, "57P01", NULL, "sluice is shutting down");
		return;
	}
	c->user = strdup(s.user);
	c->db_name = strdup(s.database ? s.database : s.user);
	if (!c->user || !c->db_name) {
		proxy_client_fatal(c, "53200", NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < s.nparams; i++) {
		const char *n = s.names[i];
		int v = proxy_var_index(n);

		if (v >= 0) {
			free(c->vars[v]);
			c->vars[v] = strdup(s.values[i]);
			continue;
		}
		if (strcmp(n, "user") == 0 || strcmp(n, "database") == 0 ||
		    strcmp(n, "extra_float_digits") == 0 || strncmp(n, "_pq_.", 5) == 0 ||
		    in_list(cf->ignore_startup_parameters, n))
			continue;
		proxy_client_fatal(c, "08P01",
		                   "add it to ignore_startup_parameters, or set it with SET "
		                   "after connecting",
		                   "unsupported startup parameter: %s", n);
		return;
	}
	if (strcmp(c->db_name, cf->admin_db) == 0) {
		c->admin = conf_is_admin(cf, c->user);
		c->stats_only = !c->admin && conf_is_stats_user(cf, c->user);
		if (!c->admin && !c->stats_only) {
			ctx->n_login_failures++;
			proxy_client_fatal(c, "28000", NULL,
			                   "user \"%s\" may not use the admin console: not in "
			                   "admin_users or stats_users",
			                   c->user);
			return;
		}
	} else if (!conf_find_db(cf, c->db_name)) {
		proxy_client_fatal(c, "3D000", "add it to [databases] in the configuration",
		                   "database \"%s\" does not exist in sluice", c->db_name);
		return;
	}
	secret = conf_auth_lookup(&ctx->auth, c->user);
	c->secret = secret ? strdup(secret) : mock_secret();
	if (!c->secret) {
		proxy_client_fatal(c, "53200", NULL, "out of memory");
		return;
	}
	if (!secret && cf->auth_type != CONF_AUTH_TRUST)
		log_info("C-%llu: unknown user \"%s\" (not in auth_file)",
		         (unsigned long long)c->id, c->user);
	begin_auth(c, secret != NULL);
}

/* ---- relay ---- */

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

/* Count the requests the server answers with ReadyForQuery, and whether an
 * extended-protocol batch is open (the server must stay until its Sync). */
static void count_request(struct proxy_client *c, struct proxy_server *s, uint8_t type)
{
	switch (type) {
	case 'Q':
	case 'F':
	case 'S':
		if (s->outstanding++ == 0)
			s->busy_since = proxy_now(c->ctx);
		if (type == 'S')
			c->unsynced = false;
		break;
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
	case 'H':
		c->unsynced = true;
		break;
	default:
		break;
	}
}

/* Forward what is framed of the client's input to its server. Returns false
 * if the client was closed or unlinked. */
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

		if (c->pass_left > 0) {
			size_t take = n < c->pass_left ? n : c->pass_left;

			p += take;
			n -= take;
			c->pass_left -= (uint32_t)take;
			continue;
		}
		if (c->drop_left > 0) {
			/* after a failed shape check: the server skips these too */
			size_t take = n < c->drop_left ? n : c->drop_left;

			proto_buf_consume(&c->io.in, take);
			p += take;
			n -= take;
			start = p;
			c->drop_left -= (uint32_t)take;
			continue;
		}
		if (n < 5)
			break;
		type = p[0];
		len = get_be32(p + 1);
		if (len < 4) {
			proxy_client_fatal(c, "08P01", NULL,
			                   "invalid message length %u (type '%c')", len,
			                   type >= 32 && type < 127 ? type : '?');
			return false;
		}
		if (len > PROTO_MAX_MSG_LEN) {
			proxy_client_fatal(c, "54000", NULL,
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
		if (s->track && tracked_type(type)) {
			struct proto_buf rew;
			int act;

			if (n < (size_t)len + 1)
				break; /* rewriting needs the whole message */
			if (p > start) {
				if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) < 0)
					goto server_failed;
				proto_buf_consume(&c->io.in, (size_t)(p - start));
			}
			proto_buf_init(&rew);
			act = proxy_ps_client_message(c, s, type, p + 5, len - 4, &rew);
			if (act < 0) {
				proto_buf_free(&rew);
				proxy_client_fatal(c, "53200", NULL, "out of memory");
				return false;
			}
			if (act == PROXY_PS_STALL) {
				/* the message stays buffered until the server has answered */
				if (proxy_io_send(ctx, &s->io, proto_buf_head(&rew),
				                  proto_buf_avail(&rew)) < 0) {
					proto_buf_free(&rew);
					goto server_failed;
				}
				proto_buf_free(&rew);
				start = p; /* what came before is sent and consumed */
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
			if (act == PROXY_PS_FORWARD) {
				start = p;
			} else {
				if (proxy_io_send(ctx, &s->io, proto_buf_head(&rew),
				                  proto_buf_avail(&rew)) < 0) {
					proto_buf_free(&rew);
					goto server_failed;
				}
				proto_buf_consume(&c->io.in, (size_t)len + 1);
				start = p + len + 1;
			}
			proto_buf_free(&rew);
			p += len + 1;
			n -= len + 1;
			continue;
		}
		count_request(c, s, type);
		c->pass_left = len + 1;
	}
	if (p > start) {
		if (proxy_io_send(ctx, &s->io, start, (size_t)(p - start)) < 0)
			goto server_failed;
		proto_buf_consume(&c->io.in, (size_t)(p - start));
	}
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

void proxy_client_resume(struct proxy_client *c)
{
	if (c->state != PROXY_CL_ACTIVE || c->stalled)
		return;
	if (proto_buf_avail(&c->io.in) > 0 && !relay_to_server(c))
		return;
	if (c->state == PROXY_CL_ACTIVE && c->server && !c->stalled &&
	    proto_buf_avail(&c->server->io.out) <= PROXY_HIGH_WATER)
		proxy_io_start_read(c->ctx, &c->io);
}

void proxy_client_link(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	char sql[8192];
	size_t len = 0;

	if (c->state == PROXY_CL_WAIT) {
		pool_list_remove(&c->pool->waiting, &c->wait_node);
		c->pool->total_wait_time += proxy_now(ctx) - c->wait_since;
		c->pool->n_waited++;
	}
	c->server = s;
	s->client = c;
	s->track = c->pool->mode != CONF_POOL_SESSION;
	s->pq.check_failed = false;
	proxy_server_set_state(s, PROXY_SV_ACTIVE);
	if (s->track && proxy_ps_on_link(s))
		len = (size_t)snprintf(sql, sizeof(sql), "DEALLOCATE ALL;");
	proxy_client_set_state(c, PROXY_CL_ACTIVE);

	/* carry the client's session parameters over to this server */
	for (int v = 0; v < PROXY_NVARS; v++) {
		const char *want = c->vars[v];
		char q[300];
		size_t qi = 0;

		if (!want && s->vars[v] && v >= PROXY_NBUILTIN_VARS) {
			/* set by an earlier client, not reported by PostgreSQL: reset */
			int w = snprintf(sql + len, sizeof(sql) - len, "RESET %s;", var_names[v]);

			if (w < 0 || (size_t)w >= sizeof(sql) - len)
				break;
			len += (size_t)w;
			free(s->vars[v]);
			s->vars[v] = NULL;
			continue;
		}
		if (!want || (s->vars[v] && strcmp(s->vars[v], want) == 0))
			continue;
		for (const char *x = want; *x && qi < sizeof(q) - 3; x++) {
			if (*x == '\'')
				q[qi++] = '\'';
			q[qi++] = *x;
		}
		q[qi] = '\0';
		/* set_config takes the value as a startup parameter gives it (a
		 * list such as "a, b" stays a list, unlike SET x TO 'a, b') */
		int w = snprintf(sql + len, sizeof(sql) - len,
		                 "SELECT pg_catalog.set_config('%s', '%s', false);", var_names[v],
		                 q);

		if (w < 0 || (size_t)w >= sizeof(sql) - len)
			break;
		len += (size_t)w;
		/* PostgreSQL reports most of these back; for the rest, remember */
		free(s->vars[v]);
		s->vars[v] = strdup(want);
	}
	if (len > 0) {
		struct proto_buf b;
		int rc;

		proto_buf_init(&b);
		rc = proto_put_query(&b, sql);
		if (rc == 0)
			rc = proxy_io_send(ctx, &s->io, proto_buf_head(&b), proto_buf_avail(&b));
		proto_buf_free(&b);
		if (rc < 0) {
			proxy_client_fatal(c, "08006", NULL, "write to server failed");
			return;
		}
		s->internal++;
	}
	proxy_client_resume(c);
	if (c->state == PROXY_CL_ACTIVE && c->server == s)
		proxy_io_start_read(ctx, &s->io);
}

/* ---- event callbacks ---- */

/*
 * Frame the next login-phase message and consume it at once: the handler
 * may go on to process what follows, and the view <m> stays valid until
 * the next read. 1 framed, 0 incomplete, -1 closed.
 */
static int next_login_msg(struct proxy_client *c, bool startup, struct proto_msg *m)
{
	int rc = proto_next(proto_buf_head(&c->io.in), proto_buf_avail(&c->io.in), startup,
	                    PROTO_MAX_STARTUP_LEN, m);

	if (rc == PROTO_NEED_MORE)
		return 0;
	if (rc != PROTO_OK) {
		proxy_client_fatal(c, "08P01", NULL, "invalid %s length",
		                   startup ? "startup packet" : "authentication message");
		return -1;
	}
	proto_buf_consume(&c->io.in, m->raw_len);
	return 1;
}

static void client_process(struct proxy_client *c)
{
	struct proto_msg m;
	int rc;

	for (;;) {
		const uint8_t *head = proto_buf_head(&c->io.in);
		size_t avail = proto_buf_avail(&c->io.in);

		switch (c->state) {
		case PROXY_CL_STARTUP:
		case PROXY_CL_AUTH: {
			bool startup = c->state == PROXY_CL_STARTUP;

			if (next_login_msg(c, startup, &m) <= 0)
				return;
			if (startup)
				handle_startup(c, &m);
			else
				handle_password(c, &m);
			if (c->state == PROXY_CL_CLOSING)
				return;
			continue;
		}
		case PROXY_CL_IDLE:
			if (avail < 5)
				return;
			if (c->pool->mode != CONF_POOL_SESSION && proxy_ps_answer_idle(c) < 0)
				return;
			if (proto_buf_avail(&c->io.in) < 5)
				return;
			if (proto_buf_head(&c->io.in)[0] == 'X') {
				proxy_client_close(c);
				return;
			}
			/* a query: get a server; input waits in the buffer meanwhile */
			proxy_io_stop_read(c->ctx, &c->io);
			proxy_pool_request(c);
			return;
		case PROXY_CL_ACTIVE:
			proxy_client_resume(c);
			return;
		case PROXY_CL_ADMIN:
			rc = proto_next(head, avail, false, PROTO_MAX_MSG_LEN, &m);
			if (rc == PROTO_NEED_MORE)
				return;
			if (rc == PROTO_TOO_BIG || rc == PROTO_ERR) {
				proxy_client_fatal(c, rc == PROTO_ERR ? "08P01" : "54000", NULL,
				                   "invalid message length");
				return;
			}
			/* consumed first: the handler may go on to process what follows
			 * (the view <m> stays valid until the next read) */
			proto_buf_consume(&c->io.in, m.raw_len);
			proxy_admin_message(c, &m);
			if (c->state == PROXY_CL_CLOSING)
				return;
			continue;
		default:
			/* LOGIN, WAIT: input stays buffered until a server is linked */
			proxy_io_stop_read(c->ctx, &c->io);
			return;
		}
	}
}

/* Step the TLS handshake; true once it is done. May close the client. */
static bool client_handshake(struct proxy_client *c)
{
	char err[256];
	int rc = proxy_tls_handshake(c->ctx, &c->io, err, sizeof(err));

	if (rc < 0) {
		log_info("C-%llu@%s: %s", (unsigned long long)c->id, c->addr, err);
		proxy_client_close(c);
		return false;
	}
	return rc == 1;
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_client *c = w->data;
	ssize_t n;

	(void)loop;
	(void)revents;
	if (c->io.handshaking && !client_handshake(c))
		return;
	n = proxy_io_read(&c->io);
	if (n == -2)
		return;
	if (n <= 0) {
		if (n < 0)
			log_debug("C-%llu: read error: %s", (unsigned long long)c->id,
			          strerror(errno));
		proxy_client_close(c);
		return;
	}
	c->last_active = proxy_now(c->ctx);
	client_process(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_client *c = w->data;
	int rc;

	(void)loop;
	(void)revents;
	if (c->io.handshaking) {
		(void)client_handshake(c);
		return;
	}
	rc = proxy_io_flush(c->ctx, &c->io);
	if (rc < 0) {
		proxy_client_close(c);
		return;
	}
	/* below the mark again: let the server's bytes flow */
	if (c->server && proto_buf_avail(&c->io.out) <= PROXY_HIGH_WATER / 2) {
		proxy_io_start_read(c->ctx, &c->server->io);
		if (proto_buf_avail(&c->server->io.in) > 0)
			proxy_server_process(c->server);
	}
}

static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy_client *c = w->data;
	const struct conf *cf = c->ctx->conf;

	(void)loop;
	(void)revents;
	switch (c->state) {
	case PROXY_CL_STARTUP:
	case PROXY_CL_AUTH:
	case PROXY_CL_LOGIN:
		proxy_client_fatal(c, "57014", NULL,
		                   "client_login_timeout: login not completed within %g s",
		                   cf->client_login_timeout);
		break;
	case PROXY_CL_WAIT:
		c->pool->n_wait_timeouts++;
		proxy_client_fatal(c, "57014",
		                   "raise default_pool_size or query_wait_timeout, or see what "
		                   "holds the connections with SHOW SERVERS on the admin console",
		                   "query_wait_timeout: no server connection of pool \"%s/%s\" "
		                   "became free within %g s",
		                   c->pool->db_name, c->pool->user, cf->query_wait_timeout);
		break;
	case PROXY_CL_IDLE:
		proxy_client_fatal(c, "57P05", NULL,
		                   "client_idle_timeout: connection idle for more than %g s",
		                   cf->client_idle_timeout);
		break;
	default:
		break;
	}
}

void proxy_client_error(struct proxy_client *c, const char *sqlstate, const char *msg,
                        const char *hint)
{
	client_error(c, sqlstate, msg, hint);
}

void proxy_client_check_timeouts(struct proxy_client *c, double now)
{
	const struct conf *cf = c->ctx->conf;
	struct proxy_server *s = c->server;

	if (c->state != PROXY_CL_ACTIVE || !s)
		return;
	if (cf->query_timeout > 0 && s->outstanding > 0 &&
	    now - s->busy_since > cf->query_timeout) {
		proxy_client_fatal(c, "57014", "raise query_timeout, or make the query faster",
		                   "query_timeout: query ran longer than %g s and was canceled",
		                   cf->query_timeout);
		return;
	}
	if (s->outstanding > 0 || s->pq.n > 0)
		return;
	if (cf->idle_transaction_timeout > 0 && s->status != 'I' &&
	    now - s->last_rfq > cf->idle_transaction_timeout) {
		proxy_client_fatal(c, "25P03",
		                   "end transactions promptly, or raise "
		                   "idle_transaction_timeout",
		                   "idle_transaction_timeout: transaction idle for more than %g s",
		                   cf->idle_transaction_timeout);
		return;
	}
	if (cf->client_idle_timeout > 0 && s->status == 'I' &&
	    now - c->last_active > cf->client_idle_timeout)
		proxy_client_fatal(c, "57P05", NULL,
		                   "client_idle_timeout: connection idle for more than %g s",
		                   cf->client_idle_timeout);
}
