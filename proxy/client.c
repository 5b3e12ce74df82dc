/*
 * Client connections: accept, the state machine and its one writer,
 * closing, errors sent to the client, and the event callbacks that drive
 * the login (auth.c), the relay (relay.c) and the admin console (admin.c).
 */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"

static const char *const state_names[] = {
        "startup", "auth", "login", "idle", "wait", "active", "admin", "closing",
};

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void start_timer(struct proxy_client *c, double after)
{
	ev_timer_stop(c->ctx->loop, &c->timer);
	if (after > 0) {
		ev_timer_set(&c->timer, after, 0);
		ev_timer_start(c->ctx->loop, &c->timer);
	}
}

/* Legal transitions: bit <to> set in allowed[<from>]. */
#define B(st) (1u << (st))
static const unsigned allowed[] = {
        [PROXY_CL_STARTUP] = B(PROXY_CL_AUTH) | B(PROXY_CL_LOGIN) | B(PROXY_CL_IDLE) |
                             B(PROXY_CL_ADMIN) | B(PROXY_CL_CLOSING),
        [PROXY_CL_AUTH] =
                B(PROXY_CL_LOGIN) | B(PROXY_CL_IDLE) | B(PROXY_CL_ADMIN) | B(PROXY_CL_CLOSING),
        [PROXY_CL_LOGIN] = B(PROXY_CL_IDLE) | B(PROXY_CL_CLOSING),
        [PROXY_CL_IDLE] = B(PROXY_CL_WAIT) | B(PROXY_CL_ACTIVE) | B(PROXY_CL_CLOSING),
        /* WAIT -> IDLE: a cancel dropped the queued request (proxy_pool_cancel) */
        [PROXY_CL_WAIT] = B(PROXY_CL_IDLE) | B(PROXY_CL_ACTIVE) | B(PROXY_CL_CLOSING),
        [PROXY_CL_ACTIVE] = B(PROXY_CL_IDLE) | B(PROXY_CL_CLOSING),
        [PROXY_CL_ADMIN] = B(PROXY_CL_CLOSING),
        [PROXY_CL_CLOSING] = 0,
};
#undef B

/* The pool list a client in <st> sits on, or NULL. */
static struct pool_list *client_list(struct pool *p, enum proxy_cl_state st)
{
	if (!p)
		return NULL;
	switch (st) {
	case PROXY_CL_LOGIN:
		return &p->logins;
	case PROXY_CL_IDLE:
		return &p->cl_idle;
	case PROXY_CL_WAIT:
		return &p->waiting;
	case PROXY_CL_ACTIVE:
		return &p->cl_active;
	default:
		return NULL;
	}
}

/* Not logged in yet: counted against max_login_clients. */
static bool logging_in(enum proxy_cl_state st)
{
	return st == PROXY_CL_STARTUP || st == PROXY_CL_AUTH || st == PROXY_CL_LOGIN;
}

static bool logged_in(enum proxy_cl_state st)
{
	return st == PROXY_CL_IDLE || st == PROXY_CL_WAIT || st == PROXY_CL_ACTIVE;
}

void proxy_client_set_state(struct proxy_client *c, enum proxy_cl_state st)
{
	const struct conf *cf = c->ctx->conf;
	enum proxy_cl_state from = c->state;
	struct pool_list *lf, *lt;

	if (from == st)
		return;
	if (!(allowed[from] & (1u << st))) {
		log_error("C-%llu: illegal client state change %s -> %s", (unsigned long long)c->id,
		          state_names[from], state_names[st]);
		abort();
	}
	if (log_current_level >= LOG_LVL_DEBUG) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_debug("%s: %s -> %s", who, state_names[from], state_names[st]);
	}
	lf = client_list(c->pool, from);
	lt = client_list(c->pool, st);
	if (lt && !c->pool) {
		log_error("C-%llu: state %s without a pool", (unsigned long long)c->id,
		          state_names[st]);
		abort();
	}
	if (lf)
		pool_list_remove(lf, &c->pool_node);
	if (lt)
		pool_list_push_back(lt, &c->pool_node);
	if (c->pool && logged_in(st) && !logged_in(from))
		c->pool->n_clients++;
	else if (c->pool && logged_in(from) && !logged_in(st))
		c->pool->n_clients--;
	if (logging_in(from) && !logging_in(st))
		c->ctx->nlogins--;
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
		if (from == PROXY_CL_WAIT) {
			c->pool->total_wait_time += proxy_now(c->ctx) - c->wait_since;
			c->pool->st.wait_time +=
			        (uint64_t)((proxy_now(c->ctx) - c->wait_since) * 1e6);
			/* the requests it queued carry the wait into their statistics */
			c->wait_ns = (uint64_t)((proxy_now(c->ctx) - c->wait_since) * 1e9);
			c->pool->n_waited++;
		}
		start_timer(c, 0);
		break;
	case PROXY_CL_CLOSING:
		ev_timer_stop(c->ctx->loop, &c->timer);
		break;
	default:
		break; /* startup/auth/login keep the login timer */
	}
}

int proxy_client_send(struct proxy_client *c, struct proto_buf *b, int rc)
{
	if (rc == 0)
		rc = proxy_io_send(c->ctx, &c->io, proto_buf_head(b), proto_buf_avail(b));
	proto_buf_free(b);
	if (rc < 0)
		proxy_client_close(c);
	return rc;
}

void proxy_client_describe(const struct proxy_client *c, char *buf, size_t len)
{
	char db[96], user[96];

	snprintf(buf, len, "C-%llu %s/%s@%s", (unsigned long long)c->id,
	         log_escape(db, sizeof(db), c->db_name), log_escape(user, sizeof(user), c->user),
	         c->addr);
}

static void client_free(void *obj)
{
	struct proxy_client *c = obj;

	for (int i = 0; i < PROXY_NVARS; i++)
		proxy_str_put(c->ctx, c->vars[i]);
	proxy_sparams_put(c->ctx, c->sp);
	proxy_sparams_put(c->ctx, c->start);
	proxy_client_stmts_free(c);
	proxy_reply_client_free(c);
	proxy_cache_client_free(c);
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
	proxy_slab_free(&c->ctx->client_slab, c);
}

void proxy_client_close(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;

	if (c->state == PROXY_CL_CLOSING)
		return;
	proxy_cache_client_gone(c);
	if (c->server)
		proxy_server_release(c->server, true);
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

struct proxy_client *proxy_client_new(struct proxy_ctx *ctx, int fd,
                                      const struct sockaddr_storage *ss)
{
	struct proxy_client *c = proxy_slab_alloc(&ctx->client_slab);
	int one = 1;

	if (!c) {
		log_error("out of memory accepting a client");
		close(fd);
		return NULL;
	}
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
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
	c->connected_at = c->last_active;
	proxy_io_init(&c->io, fd);
	ev_io_init(&c->io.rd, client_read_cb, fd, EV_READ);
	ev_io_init(&c->io.wr, client_write_cb, fd, EV_WRITE);
	c->io.rd.data = c->io.wr.data = c;
	ev_init(&c->timer, client_timer_cb);
	c->timer.data = c;
	c->all_node.owner = c;
	c->pool_node.owner = c;
	pool_list_push_back(&ctx->clients, &c->all_node);
	ctx->nclients++;
	ctx->nlogins++;
	ctx->n_accepted++;
	start_timer(c, ctx->conf->client_login_timeout);
	proxy_io_start_read(ctx, &c->io);
	return c;
}

/*
 * Too many connections are logging in (max_login_clients): answer with
 * 53300 and close at once, before any memory is taken for the connection,
 * so a flood of sockets that never finish their login costs nothing
 * lasting and cannot lock out the clients that log in.
 */
static void refuse_login(struct proxy_ctx *ctx, int fd)
{
	struct proto_buf b;
	char msg[128];

	ctx->n_login_refused++;
	snprintf(msg, sizeof(msg), "too many connections are logging in (max_login_clients = %d)",
	         ctx->conf->max_login_clients);
	proto_buf_init(&b);
	if (proxy_put_err(&b, PROXY_ERR_TOO_MANY_LOGINS, msg, NULL) == 0)
		(void)!send(fd, proto_buf_head(&b), proto_buf_avail(&b),
		            MSG_DONTWAIT | MSG_NOSIGNAL);
	proto_buf_free(&b);
	close(fd);
	if (ctx->n_login_refused % 1000 == 1)
		log_warn("refused a connection: %s (%llu so far)", msg,
		         (unsigned long long)ctx->n_login_refused);
}

void proxy_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_ctx *ctx = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < 64; i++) {
		/* a unix socket peer may come back with no address at all */
		struct sockaddr_storage ss = {.ss_family = AF_UNSPEC};
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the connection stays queued: don't spin on it */
				proxy_accept_pause(ctx, errno);
				return;
			}
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept failed: %s", strerror(errno));
			return;
		}
		ctx->accept_backoff = 0;
		if (ctx->nlogins >= (size_t)ctx->conf->max_login_clients) {
			refuse_login(ctx, fd);
			continue;
		}
		if (!proxy_client_new(ctx, fd, &ss))
			return;
	}
}

/* ---- event callbacks ---- */

/*
 * Frame the next login-phase message and consume it at once: the handler
 * may go on to process what follows, and the view <m> stays valid until
 * the next read. 1 framed, 0 incomplete, -1 closed (a startup packet of
 * impossible length closes the client without a word, as PostgreSQL does).
 */
static int next_login_msg(struct proxy_client *c, bool startup, struct proto_msg *m)
{
	int rc = proto_next(proto_buf_head(&c->io.in), proto_buf_avail(&c->io.in), startup,
	                    PROTO_MAX_STARTUP_LEN, m);

	if (rc == PROTO_NEED_MORE)
		return 0;
	if (rc != PROTO_OK && startup) {
		/* As PostgreSQL: no answer, only a log line. What comes before a
		 * startup packet is often no PostgreSQL client at all (a port
		 * probe, or a pool's Terminate on a connection it never started),
		 * and drivers such as node-postgres fail on an error here. */
		log_debug("C-%llu@%s: invalid length of startup packet: closing",
		          (unsigned long long)c->id, c->addr);
		proxy_client_close(c);
		return -1;
	}
	if (rc != PROTO_OK) {
		proxy_client_fail(c, PROXY_ERR_PROTOCOL, "invalid authentication message length");
		return -1;
	}
	proto_buf_consume(&c->io.in, m->raw_len);
	return 1;
}

void proxy_client_process(struct proxy_client *c)
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
				proxy_auth_startup(c, &m);
			else
				proxy_auth_password(c, &m);
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
			rc = proxy_cache_query(c, NULL); /* a hit takes no server */
			if (rc == PROXY_CACHE_DONE)
				continue;
			if (rc != PROXY_CACHE_GO)
				return;
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
				proxy_client_fail(
				        c, rc == PROTO_ERR ? PROXY_ERR_PROTOCOL : PROXY_ERR_TOO_BIG,
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
	/* SUSPEND: a logged-in client's next bytes wait in the kernel for
	 * RESUME; logins and the admin console go on */
	if (c->ctx->suspended && c->pool && c->state != PROXY_CL_ADMIN &&
	    c->state != PROXY_CL_CLOSING) {
		proxy_io_freeze(c->ctx, &c->io);
		return;
	}
	if (c->io.handshaking && !client_handshake(c))
		return;
	n = proxy_io_read(c->ctx, &c->io);
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
	proxy_client_process(c);
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
		proxy_client_fail(c, PROXY_ERR_LOGIN_TIMEOUT,
		                  "client_login_timeout: login not completed within %g s",
		                  cf->client_login_timeout);
		break;
	case PROXY_CL_WAIT:
		c->pool->n_wait_timeouts++;
		proxy_client_fail(c, PROXY_ERR_WAIT_TIMEOUT,
		                  "query_wait_timeout: no server connection of pool \"%s/%s\" "
		                  "became free within %g s",
		                  c->pool->db_name, c->pool->user, cf->query_wait_timeout);
		break;
	case PROXY_CL_IDLE:
		proxy_client_fail(c, PROXY_ERR_IDLE_TIMEOUT,
		                  "client_idle_timeout: connection idle for more than %g s",
		                  cf->client_idle_timeout);
		break;
	default:
		break;
	}
}
