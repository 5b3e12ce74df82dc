/*
 * Client login: the startup packet (SSL and cancel requests, protocol
 * version, parameters), authentication (trust, cleartext, MD5,
 * SCRAM-SHA-256), and the welcome that ends it (ParameterStatus set,
 * BackendKeyData, ReadyForQuery).
 *
 * Everything here runs before the client has proved who it is, so none of
 * it may cost more than a few microseconds or keep memory for a client
 * that goes away.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "stats/stats.h"

static void auth_failed(struct proxy_client *c)
{
	c->ctx->n_login_failures++;
	proxy_client_fail(c, PROXY_ERR_AUTH_FAILED,
	                  "password authentication failed for user \"%s\"", c->user);
}

static int send_auth(struct proxy_client *c, uint32_t code, const void *data, size_t len)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_auth(&b, code, data, len);
	return proxy_client_send(c, &b, rc);
}

static void send_welcome(struct proxy_client *c);

static int tx_setting(void *arg, const char *name, const char *value)
{
	struct proxy_client *c = arg;
	int v = proxy_var_index(name);

	if (v < 0) {
		proxy_client_fail_hint(
		        c, PROXY_ERR_STARTUP_PARAM,
		        "list it in track_extra_parameters (sluice then sets it on every server "
		        "the client gets) or in ignore_startup_parameters (dropped), or use "
		        "pool_mode = session, which hands every parameter to PostgreSQL",
		        "startup parameter \"%s\" is not supported in %s mode", name,
		        conf_pool_mode_name(c->pool->mode));
		return -1;
	}
	proxy_str_put(c->ctx, c->vars[v]);
	c->vars[v] = proxy_str_get(c->ctx, value);
	if (!c->vars[v]) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The client's startup parameters, now that its pool is known. Session
 * mode keeps the set: its server is opened with exactly these, so
 * PostgreSQL judges them (its own error for a bad one) and RESET returns to
 * them. Transaction and statement mode cannot open a server per client:
 * a tracked parameter (given directly or as "-c name=value" in options)
 * follows the client as if it had SET it, extra_float_digits is dropped
 * (since PostgreSQL 12 every positive value prints floats the same way),
 * and anything else is refused, never silently dropped. The admin console
 * ignores them. -1 if the client was failed.
 */
static int apply_params(struct proxy_client *c)
{
	struct proxy_sparams *sp = c->sp;
	const char *name, *value;
	size_t pos = 0;
	int rc = 0;

	if (!sp)
		return 0;
	if (c->pool->mode == CONF_POOL_SESSION) {
		/* the tracked ones given directly are also what the client asked
		 * for (SHOW CLIENTS); its server has them from its startup */
		while ((name = proxy_sparams_next(sp, &pos, &value))) {
			int v = proxy_var_index(name);

			if (v < 0)
				continue;
			proxy_str_put(c->ctx, c->vars[v]);
			if (!(c->vars[v] = proxy_str_get(c->ctx, value))) {
				proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
				return -1;
			}
		}
		return 0;
	}
	c->sp = NULL;
	while (rc == 0 && (name = proxy_sparams_next(sp, &pos, &value))) {
		char err[256];

		if (strcmp(name, "extra_float_digits") == 0)
			continue;
		if (strcmp(name, "options") != 0) {
			rc = tx_setting(c, name, value);
			continue;
		}
		rc = proxy_options_parse(value, tx_setting, c, err, sizeof(err));
		if (rc < 0 && c->state != PROXY_CL_CLOSING)
			proxy_client_fail_hint(c, PROXY_ERR_STARTUP_PARAM,
			                       "give only \"-c name=value\" settings in options",
			                       "invalid options startup parameter: %s", err);
	}
	proxy_sparams_put(c->ctx, sp);
	if (rc == 0 && proxy_vars_start(c) < 0) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return -1;
	}
	return rc == 0 ? 0 : -1;
}

/* Password accepted: AuthenticationOk, then either the admin console or the
 * pool's login set. */
static void client_authenticated(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	enum proxy_err err = PROXY_ERR_SERVER_UNREACHABLE;
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
	if (proxy_is_admin_db(ctx->conf, c->db_name)) {
		proxy_admin_welcome(c);
		return;
	}
	c->pool = proxy_pool_for(ctx, c->db_name, c->user, &err, msg, sizeof(msg));
	if (!c->pool) {
		proxy_client_fail(c, err, "%s", msg);
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
	if (apply_params(c) < 0)
		return;
	/* session mode: the client waits for its own server anyway, which is
	 * opened with its parameters (not the pool's first login's) */
	if (c->pool->have_params || c->pool->mode == CONF_POOL_SESSION) {
		send_welcome(c);
		return;
	}
	/* Nothing known about the server yet: wait for its first login. */
	proxy_client_set_state(c, PROXY_CL_LOGIN);
	proxy_io_stop_read(ctx, &c->io);
	if (c->pool->connecting.n == 0) {
		if (!pool_can_open(c->pool)) {
			proxy_client_fail(c, PROXY_ERR_POOL_FULL,
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
	/* state leaves LOGIN in send_welcome */
	send_welcome(c);
}

/* Pick cancel key data no other client has. <pid> is the backend pid the
 * client is told (its session-mode server's), or 0 for a made-up one. */
static int new_cancel_key(struct proxy_client *c, uint32_t pid)
{
	struct proxy_client *other;

	for (int tries = 0; tries < 8; tries++) {
		if ((!pid && proto_random(&c->cancel_pid, sizeof(c->cancel_pid)) < 0) ||
		    proto_random(&c->cancel_key, sizeof(c->cancel_key)) < 0)
			return -1;
		if (pid)
			c->cancel_pid = pid;
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

/* Send the welcome: ParameterStatus set, BackendKeyData, ReadyForQuery.
 * In BackendKeyData the pid is c->server's backend pid when the client has
 * its server already (session mode), so pg_backend_pid() and the pid of
 * notifications agree with it; the key is always sluice's own, so cancel
 * requests come to sluice and cannot be forged from the pid. -1 if it
 * could not be sent: then the client is closed. */
static int put_welcome(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	struct pool *p = c->pool;
	struct proto_buf b;
	bool sent[PROXY_NVARS] = {false};
	/* session mode: its server was opened with the client's parameters,
	 * so what that login reported is what a direct login reports */
	bool own = c->server && c->sp && c->server->sp == c->sp;
	int rc = 0;

	proto_buf_init(&b);
	/* The pool's values are those of its latest server login. A parameter
	 * the client did not give stays NULL in c->vars: it follows the
	 * session default of whichever server it gets (vars_batch puts back
	 * that server's login value if an earlier client changed it), so an
	 * ALTER ROLE ... SET reaches clients as new servers log in, and no
	 * client inherits what another set. A client that has its server is
	 * told that server's values. */
	for (size_t i = 0; i < p->nparams && rc == 0; i++) {
		int v = proxy_var_index(p->params[i].name);
		const char *val = p->params[i].value;

		if (v >= 0 && c->server && c->server->login_vars[v] && (own || !c->vars[v])) {
			val = c->server->login_vars[v];
		} else if (v >= 0 && c->vars[v]) {
			val = c->vars[v];
			sent[v] = true;
		} else if (v < 0 && c->server && c->server->login_extra) {
			/* reported by its login, which had the client's own startup
			 * parameters (default_transaction_read_only may be one) */
			for (const char *x = c->server->login_extra; *x;) {
				const char *xv = x + strlen(x) + 1;

				if (strcmp(x, p->params[i].name) == 0)
					val = xv;
				x = xv + strlen(xv) + 1;
			}
		}
		rc = proto_put_param_status(&b, p->params[i].name, val);
	}
	for (int v = 0; v < PROXY_NVARS && rc == 0 && !own; v++)
		if (c->vars[v] && !sent[v])
			rc = proto_put_param_status(&b, proxy_var_name(v), c->vars[v]);
	if (rc == 0 && new_cancel_key(c, c->server ? c->server->be_pid : 0) < 0)
		rc = -1;
	if (rc == 0) {
		HASH_ADD(hh_cancel, ctx->by_cancel, cancel_hkey, sizeof(c->cancel_hkey), c);
		rc = proto_put_backend_key(&b, c->cancel_pid, c->cancel_key);
	}
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	if (proxy_client_send(c, &b, rc) < 0)
		return -1;
	if (log_current_level >= LOG_LVL_DEBUG) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_debug("%s: login", who);
	}
	return 0;
}

int proxy_client_welcome_linked(struct proxy_client *c)
{
	if (!c->welcome_pending)
		return 0;
	c->welcome_pending = false;
	return put_welcome(c);
}

static void send_welcome(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;

	if (c->pool->mode == CONF_POOL_SESSION) {
		/* Session mode: the client gets its server now, and the welcome
		 * when it is linked (proxy_client_link), with that server's pid.
		 * Its input waits until then. */
		c->welcome_pending = true;
		proxy_client_set_state(c, PROXY_CL_IDLE);
		proxy_io_stop_read(ctx, &c->io);
		proxy_pool_request(c);
		return;
	}
	if (put_welcome(c) < 0)
		return;
	proxy_client_set_state(c, PROXY_CL_IDLE);
	proxy_io_start_read(ctx, &c->io);
	if (proto_buf_avail(&c->io.in) > 0)
		proxy_client_process(c);
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
	if (proxy_client_send(c, &b, rc) < 0)
		return;
	c->auth_step = PROXY_AUTH_SASL_INIT;
}

static void begin_auth(struct proxy_client *c, bool known_user)
{
	const struct conf *cf = c->ctx->conf;
	enum conf_auth_type at = cf->auth_type;

	if (at == CONF_AUTH_TRUST) {
		if (!known_user && cf->auth_file) {
			c->ctx->n_login_failures++;
			proxy_client_fail(c, PROXY_ERR_NOT_ALLOWED,
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
		proxy_client_fail(c, PROXY_ERR_INTERNAL, "could not generate random salt");
		return;
	}
	c->auth_step = PROXY_AUTH_MD5;
	if (send_auth(c, PROTO_AUTH_MD5, c->md5_salt, sizeof(c->md5_salt)) < 0)
		proxy_client_close(c);
}

/*
 * A plaintext password in auth_file is turned into a SCRAM secret once per
 * user, when the auth file is loaded or reloaded (with a random salt kept
 * from then on, as PostgreSQL keeps its own), never during a login: the
 * key derivation costs milliseconds, and a login must not cost the loop
 * that. A changed password makes a new one.
 */
struct proxy_scram_cache {
	char *user;                              /* owned, key */
	uint8_t pw_digest[SHA256_DIGEST_LENGTH]; /* of the plaintext it was made from */
	struct proto_scram_secret secret;        /* no ClientKey: only what a verifier holds */
	bool seen;                               /* still in the auth file (during a sync) */
	UT_hash_handle hh;
};

static void scram_entry_free(struct proxy_scram_cache *e)
{
	free(e->user);
	explicit_bzero(e, sizeof(*e));
	free(e);
}

/* Derive (or keep) the entry of one plaintext password. -1 on failure. */
static int scram_cache_put(struct proxy_ctx *ctx, const char *user, const char *password)
{
	struct proxy_scram_cache *e = NULL;
	uint8_t digest[SHA256_DIGEST_LENGTH], salt[16];
	struct proto_scram_secret sec;
	bool fresh = false;

	SHA256((const unsigned char *)password, strlen(password), digest);
	HASH_FIND_STR(ctx->scram_cache, user, e);
	if (e && proto_ct_equal(e->pw_digest, digest, sizeof(digest))) {
		e->seen = true;
		explicit_bzero(digest, sizeof(digest));
		return 0;
	}
	if (proto_random(salt, sizeof(salt)) < 0 ||
	    proto_scram_secret_from_password(password, salt, sizeof(salt), PROTO_SCRAM_DEFAULT_ITER,
	                                     &sec) < 0) {
		explicit_bzero(digest, sizeof(digest));
		return -1;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->user = strdup(user))) {
			free(e);
			explicit_bzero(&sec, sizeof(sec));
			explicit_bzero(digest, sizeof(digest));
			return -1;
		}
		fresh = true;
	}
	memcpy(e->pw_digest, digest, sizeof(digest));
	e->secret = sec;
	/* the ClientKey would be a password equivalent */
	e->secret.has_client_key = false;
	explicit_bzero(e->secret.client_key, sizeof(e->secret.client_key));
	e->seen = true;
	if (fresh)
		HASH_ADD_KEYPTR(hh, ctx->scram_cache, e->user, strlen(e->user), e);
	explicit_bzero(&sec, sizeof(sec));
	explicit_bzero(digest, sizeof(digest));
	return 0;
}

void proxy_auth_keys_sync(struct proxy_ctx *ctx)
{
	struct proxy_scram_cache *e, *tmp;
	const struct conf_authlist *a = &ctx->auth;

	HASH_ITER(hh, ctx->scram_cache, e, tmp)
	{
		e->seen = false;
	}
	/* only auth_type = scram-sha-256 runs SCRAM against a plaintext password */
	if (ctx->conf->auth_type == CONF_AUTH_SCRAM) {
		for (size_t i = 0; i < a->n; i++) {
			const char *sec = a->v[i].secret;

			if (!sec || proto_is_scram_secret(sec) || proto_is_md5_secret(sec))
				continue;
			if (scram_cache_put(ctx, a->v[i].user, sec) < 0) {
				char user[96];

				log_error(
				        "cannot derive SCRAM keys for user \"%s\"; its logins will "
				        "fail",
				        log_escape(user, sizeof(user), a->v[i].user));
			}
		}
	}
	HASH_ITER(hh, ctx->scram_cache, e, tmp)
	{
		if (e->seen)
			continue;
		/* the analyzer loses track of the table uthash frees with its last entry */
		HASH_DEL(ctx->scram_cache, e); // NOLINT(clang-analyzer-unix.Malloc)
		scram_entry_free(e);
	}
}

void proxy_scram_cache_free(struct proxy_ctx *ctx)
{
	struct proxy_scram_cache *e;

	while ((e = ctx->scram_cache)) {
		HASH_DEL(ctx->scram_cache, e); // NOLINT(clang-analyzer-unix.Malloc)
		scram_entry_free(e);
	}
}

/* The SCRAM secret made from <c>'s plaintext password at load time. */
static int scram_secret_from_plaintext(struct proxy_client *c, struct proto_scram_secret *sec)
{
	struct proxy_scram_cache *e = NULL;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	bool same;

	HASH_FIND_STR(c->ctx->scram_cache, c->user, e);
	if (!e)
		return -1;
	/* the secret copied at startup is the one the entry was made from,
	 * unless a reload came in between */
	SHA256((const unsigned char *)c->secret, strlen(c->secret), digest);
	same = proto_ct_equal(e->pw_digest, digest, sizeof(digest));
	explicit_bzero(digest, sizeof(digest));
	if (!same)
		return -1;
	*sec = e->secret;
	return 0;
}

/* Build the SCRAM secret the exchange verifies against. */
static int scram_secret_for(struct proxy_client *c, struct proto_scram_secret *sec)
{
	char who[256];

	if (c->known_user && proto_is_scram_secret(c->secret))
		return proto_scram_parse_secret(c->secret, sec);
	if (c->known_user && !proto_is_md5_secret(c->secret) &&
	    scram_secret_from_plaintext(c, sec) == 0)
		return 0;
	if (c->known_user) {
		proxy_client_describe(c, who, sizeof(who));
		log_warn("%s: %s", who,
		         proto_is_md5_secret(c->secret)
		                 ? "the user has an md5 secret in auth_file; SCRAM needs a "
		                   "plaintext password or a SCRAM verifier"
		                 : "no SCRAM keys for the user's password");
	}
	/* Unknown users (and those who cannot log in by SCRAM) go through an
	 * exchange that looks like a real one, with a salt that is stable per
	 * name as a real user's is, and always fails at the proof: no key
	 * derivation and nothing kept, whatever the name. */
	return proto_scram_mock_secret(c->ctx->mock_key, c->user, sec);
}

void proxy_auth_password(struct proxy_client *c, const struct proto_msg *m)
{
	struct proto_reader r;
	const char *err = NULL;
	char out[512];
	size_t outlen = 0;

	if (m->type != 'p') {
		proxy_client_fail(c, PROXY_ERR_PROTOCOL,
		                  "expected a password message, got message type '%c'",
		                  m->type >= 32 && m->type < 127 ? m->type : '?');
		return;
	}
	proto_reader_init(&r, m->body, m->body_len);
	switch (c->auth_step) {
	case PROXY_AUTH_CLEARTEXT: {
		const char *pw = proto_get_str(&r);

		if (!pw) {
			proxy_client_fail(c, PROXY_ERR_PROTOCOL, "malformed password message");
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
		} else if (proto_is_md5_secret(c->secret)) {
			/* the password is hashed as PostgreSQL hashes it; the client's
			 * text is never taken for a hash, so the stored hash itself is
			 * no password */
			char want[36];

			proto_md5_password_hash(c->user, pw, want);
			if (!proto_ct_equal(want, c->secret, 35)) {
				auth_failed(c);
				return;
			}
		} else {
			/* fixed-length digests, so timing says nothing of the length */
			uint8_t a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
			bool ok;

			SHA256((const unsigned char *)c->secret, strlen(c->secret), a);
			SHA256((const unsigned char *)pw, strlen(pw), b);
			ok = proto_ct_equal(a, b, sizeof(a));
			explicit_bzero(a, sizeof(a));
			explicit_bzero(b, sizeof(b));
			if (!ok) {
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
			proxy_client_fail(c, PROXY_ERR_PROTOCOL, "malformed SASLInitialResponse");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			proxy_client_fail(c, PROXY_ERR_NOT_ALLOWED,
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
				proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
				return;
			}
			proxy_client_fail(c,
			                  strcmp(c->scram->sqlstate, "0A000") == 0
			                          ? PROXY_ERR_FEATURE
			                          : PROXY_ERR_PROTOCOL,
			                  "%s", err ? err : "malformed SCRAM client-first message");
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
			if (strcmp(c->scram->sqlstate, "28P01") == 0)
				auth_failed(c);
			else
				proxy_client_fail(
				        c,
				        strcmp(c->scram->sqlstate, "0A000") == 0
				                ? PROXY_ERR_FEATURE
				                : PROXY_ERR_PROTOCOL,
				        "%s", err ? err : "malformed SCRAM client-final message");
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
		proxy_client_fail(c, PROXY_ERR_PROTOCOL, "unexpected password message");
		return;
	}
}

/* ---- startup ---- */

static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name), len;
	const char *item;

	while ((item = proxy_list_next(&list, &len)))
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
	if (target &&
	    (target->server || target->state == PROXY_CL_WAIT || proxy_cache_waiting(target))) {
		ctx->n_cancels++;
		log_debug("C-%llu: cancel request for C-%llu", (unsigned long long)c->id,
		          (unsigned long long)target->id);
		proxy_pool_cancel(target);
	}
	/* PostgreSQL closes without a reply, whatever the outcome */
	proxy_client_close(c);
}

/* As PostgreSQL: name the newest protocol version and the options sluice
 * does not know; the login goes on in 3.0. */
static int send_negotiation(struct proxy_client *c, const struct proto_startup *s)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_negotiate_version(&b, PROTO_V3_NEWEST_MINOR, s->pq_options, s->npq_options);
	return proxy_client_send(c, &b, rc);
}

void proxy_auth_startup(struct proxy_client *c, const struct proto_msg *m)
{
	struct proxy_ctx *ctx = c->ctx;
	const struct conf *cf = ctx->conf;
	struct proto_startup s;
	const char *err = NULL;
	const char *secret;

	if (proto_parse_startup(m, &s, &err) < 0) {
		enum proxy_err e = PROXY_ERR_PROTOCOL;

		if (strcmp(s.sqlstate, "28000") == 0) {
			e = PROXY_ERR_NO_USER;
			/* PostgreSQL negotiates before it looks for the user */
			if (proto_startup_wants_negotiation(&s) && send_negotiation(c, &s) < 0) {
				proxy_client_close(c);
				return;
			}
		} else if (strcmp(s.sqlstate, "54000") == 0)
			e = PROXY_ERR_TOO_BIG;
		proxy_client_fail(c, e, "%s", err ? err : "invalid startup packet");
		return;
	}
	if ((s.code == PROTO_SSL_REQUEST && c->ssl_done) ||
	    (s.code == PROTO_GSSENC_REQUEST && c->gss_done)) {
		/* as PostgreSQL: one negotiation of each kind, then the code is
		 * read as a protocol version */
		proxy_client_fail(c, PROXY_ERR_PROTOCOL_VERSION,
		                  "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
		                  s.code >> 16, s.code & 0xffff);
		return;
	}
	if (s.code == PROTO_SSL_REQUEST)
		c->ssl_done = true;
	if (s.code == PROTO_GSSENC_REQUEST)
		c->gss_done = true;
	if (s.code == PROTO_SSL_REQUEST && ctx->tls_accept) {
		/* bytes after the request would be read as if they came over TLS */
		if (proto_buf_avail(&c->io.in) != 0) {
			proxy_client_fail(c, PROXY_ERR_PROTOCOL,
			                  "unencrypted data after SSL request");
			return;
		}
		c->gss_done = true; /* no GSS encryption inside TLS */
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
	if (s.kind != PROTO_STARTUP_V3) {
		proxy_client_fail(c, PROXY_ERR_PROTOCOL_VERSION,
		                  "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
		                  s.code >> 16, s.code & 0xffff);
		return;
	}
	if (!c->io.ssl && cf->client_tls_sslmode >= CONF_SSL_REQUIRE) {
		proxy_client_fail(c, PROXY_ERR_TLS_REQUIRED,
		                  "TLS is required by sluice (client_tls_sslmode = require)");
		return;
	}
	if (ctx->nclients > (size_t)cf->max_client_conn) {
		proxy_client_fail(c, PROXY_ERR_TOO_MANY_CLIENTS,
		                  "too many client connections (max_client_conn = %d)",
		                  cf->max_client_conn);
		return;
	}
	if (ctx->shutting_down) {
		proxy_client_fail(c, PROXY_ERR_SHUTDOWN, "sluice is shutting down");
		return;
	}
	c->user = strdup(s.user);
	c->db_name = strdup(s.database ? s.database : s.user);
	if (!c->user || !c->db_name) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	{
		/* Every parameter but the login's own goes on to the client's
		 * pool, which decides at login what to do with them (session
		 * mode hands them to PostgreSQL, see apply_params). */
		const char *names[PROTO_MAX_STARTUP_PARAMS], *values[PROTO_MAX_STARTUP_PARAMS];
		size_t n = 0;
		bool oom;

		for (size_t i = 0; i < s.nparams; i++) {
			const char *nm = s.names[i];

			if (strcmp(nm, "user") == 0 || strcmp(nm, "database") == 0 ||
			    in_list(cf->ignore_startup_parameters, nm))
				continue;
			if (strcmp(nm, "replication") == 0) {
				proxy_client_fail_hint(
				        c, PROXY_ERR_STARTUP_PARAM,
				        "connect to PostgreSQL directly for replication",
				        "unsupported startup parameter: replication "
				        "(sluice does not pool replication connections)");
				return;
			}
			names[n] = nm;
			values[n++] = s.values[i];
		}
		c->sp = proxy_sparams_get(ctx, names, values, n, &oom);
		if (oom) {
			proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
			return;
		}
	}
	if (proxy_is_admin_db(cf, c->db_name)) {
		c->admin = conf_is_admin(cf, c->user);
		c->stats_only = !c->admin && conf_is_stats_user(cf, c->user);
		if (!c->admin && !c->stats_only) {
			ctx->n_login_failures++;
			proxy_client_fail(c, PROXY_ERR_NOT_ALLOWED,
			                  "user \"%s\" may not use the admin console: not in "
			                  "admin_users or stats_users",
			                  c->user);
			return;
		}
	} else if (!conf_find_db(cf, c->db_name)) {
		proxy_client_fail(c, PROXY_ERR_NO_DATABASE,
		                  "database \"%s\" does not exist in sluice", c->db_name);
		return;
	} else if (proxy_admin_disabled(ctx, c->db_name)) {
		proxy_client_fail(c, PROXY_ERR_NOT_ALLOWED,
		                  "database \"%s\" does not allow connections: it was disabled on "
		                  "the admin console (ENABLE allows them again)",
		                  c->db_name);
		return;
	}
	secret = conf_auth_lookup(&ctx->auth, c->user);
	c->secret = secret ? strdup(secret) : mock_secret();
	if (!c->secret) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	if (!secret && cf->auth_type != CONF_AUTH_TRUST) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_info("%s: unknown user (not in auth_file)", who);
	}
	c->known_user = secret != NULL;
	if (proto_startup_wants_negotiation(&s) && send_negotiation(c, &s) < 0) {
		proxy_client_close(c);
		return;
	}
	begin_auth(c, c->known_user);
}
