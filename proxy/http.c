/*
 * HTTP on stats_listen: GET /metrics (Prometheus text format) and GET
 * /health (the SHOW HEALTH checks as JSON; 200 unless one is critical,
 * then 503), on sluice's own event loop. Also the health sampler that
 * SHOW HEALTH and /health share, and the gathering of the proxy's figures
 * into the neutral structs stats/ renders.
 *
 * A scraper is one more connection on the loop, so it must never be able
 * to stall the loop or exhaust the process: sockets are non-blocking, a
 * request's headers are at most HTTP_MAX_REQ bytes and must arrive within
 * HTTP_READ_TIMEOUT seconds of the accept (a trickle does not extend it),
 * at most HTTP_MAX_CONNS connections are served at once (more get a 503
 * and are closed), and the response is queued whole and written as the
 * socket takes it, with its own deadline.
 *
 * A connection stays open for the next request (HTTP/1.1 keep-alive, as
 * Prometheus uses it) unless the client asks to close, speaks HTTP/1.0
 * without asking to keep it, sent more than one request's headers or a
 * body, or the answer is an error. Opening and closing a TCP connection
 * costs sluice more CPU than rendering a small /metrics, which matters to
 * a scraper polling every 100 ms. An open connection waits at most
 * HTTP_IDLE_TIMEOUT for its next request, whose headers then have
 * HTTP_READ_TIMEOUT from their first byte, and holds one of the
 * HTTP_MAX_CONNS slots meanwhile.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cache/cache.h"
#include "stats/stats.h"

#define HTTP_MAX_REQ       8192 /* bytes of request line and headers */
#define HTTP_MAX_CONNS     64
#define HTTP_READ_TIMEOUT  5.0  /* seconds from accept to the end of the headers */
#define HTTP_WRITE_TIMEOUT 30.0 /* seconds to write the response */
#define HTTP_LINGER        2.0  /* seconds to drain the peer's input after answering */
#define HTTP_IDLE_TIMEOUT  30.0 /* seconds an open connection waits for its next request */

enum http_state {
	HTTP_READING,  /* reading the request */
	HTTP_WRITING,  /* writing the response */
	HTTP_DRAINING, /* response sent, write side shut: reading until EOF so the
	                 peer sees the whole response, not a reset */
};

struct http_conn {
	struct proxy_http *h; /* borrowed */
	int fd;               /* owned */
	enum http_state state;
	ev_io rd, wr;
	ev_timer timer;
	struct proto_buf out; /* owned: the response */
	size_t reqlen;
	size_t hdrlen;                 /* bytes of c->req up to the end of the headers */
	bool keep;                     /* the response keeps the connection open */
	bool idle;                     /* kept open, no byte of the next request yet */
	struct http_conn *prev, *next; /* on h->conns */
	char req[HTTP_MAX_REQ];
};

struct proxy_http {
	struct proxy_ctx *ctx; /* borrowed */
	ev_io listen;          /* fd owned */
	ev_timer pause;        /* listener stopped after accept() ran out of fds */
	char where[80];
	struct http_conn *conns;
	size_t nconns;
	uint64_t requests; /* answered */
	uint64_t refused;  /* refused or dropped */
	/* the checks /metrics last showed, and when (metrics_health) */
	struct stats_health_check health[STATS_HEALTH_NCHECKS];
	double health_at;
	bool health_ok;
};

/* ---- gathering the proxy's figures ---- */

static void count_used(const struct pool *p, uint32_t *active, uint32_t *tested, uint32_t *used)
{
	*active = *tested = *used = 0;
	for (const struct pool_node *n = p->used.head.next; n != &p->used.head; n = n->next) {
		const struct proxy_server *s = n->owner;

		if (s->state == PROXY_SV_ACTIVE)
			(*active)++;
		else if (s->state == PROXY_SV_RESET)
			(*tested)++;
		else
			(*used)++;
	}
}

static double max_wait(const struct proxy_ctx *ctx, const struct pool *p)
{
	const struct pool_node *n = pool_list_first(&p->waiting);
	const struct proxy_client *c = n ? n->owner : NULL;

	return c ? proxy_now(ctx) - c->wait_since : 0;
}

/* How long a failed login counts against a pool nobody uses any more. */
static double failure_window(const struct proxy_ctx *ctx)
{
	double w = 3 * ctx->conf->server_login_retry;

	return w > 60 ? w : 60;
}

static struct stats_health_pool *health_pools(struct proxy_ctx *ctx, size_t *n)
{
	size_t cnt = HASH_COUNT(ctx->pools.by_key), i = 0;
	struct stats_health_pool *v = calloc(cnt ? cnt : 1, sizeof(*v));
	struct pool *p, *tmp;
	double now = proxy_now(ctx);

	*n = 0;
	if (!v)
		return NULL;
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		struct stats_health_pool *h = &v[i++];

		h->db = p->db_name;
		h->user = p->user;
		h->servers = (uint32_t)(p->idle.n + p->used.n);
		h->in_use = (uint32_t)p->used.n;
		h->pool_size = (uint32_t)p->pool_size;
		h->waiting = (uint32_t)p->waiting.n;
		h->max_wait_s = max_wait(ctx, p);
		/* login_done clears the message, not the time: a message means no
		 * login has succeeded since the failure */
		h->failing = p->last_error[0] && p->last_error_at > 0 &&
		             now - p->last_error_at < failure_window(ctx);
		h->last_error = p->last_error[0] ? p->last_error : NULL;
	}
	*n = i;
	return v;
}

struct class_sum {
	struct stats_hist *all;
	uint64_t calls, errors;
};

static void class_sum_cb(void *arg, const struct stats_class_view *v)
{
	struct class_sum *s = arg;

	s->calls += v->calls;
	s->errors += v->errors;
	if (s->all && v->hist)
		stats_hist_merge(s->all, v->hist);
}

/* The statement figures now, as a health sample; false on OOM. */
static bool measure(struct proxy_ctx *ctx, struct stats_health_sample *out)
{
	struct class_sum s = {stats_hist_new(), 0, 0};

	if (!s.all)
		return false;
	stats_classes(ctx->stats, class_sum_cb, &s);
	stats_health_measure(out, proxy_now(ctx), s.all, s.calls, s.errors,
	                     (uint32_t)ctx->conf->slow_query_ms);
	stats_hist_free(s.all);
	if (ctx->cache) {
		struct cache_stats st;

		/* every lookup ends as exactly one of these (a coalesced one too) */
		cache_get_stats(ctx->cache, &st);
		out->cache_hits = st.hits_l1 + st.hits_redis;
		out->cache_lookups = out->cache_hits + st.misses + st.bypass;
	}
	return true;
}

void proxy_health_tick(struct proxy_ctx *ctx)
{
	struct stats_health_sample *cur;

	if (!ctx->health || proxy_now(ctx) < ctx->health_next)
		return;
	ctx->health_next = proxy_now(ctx) + STATS_HEALTH_PERIOD;
	cur = malloc(sizeof(*cur));
	if (cur && measure(ctx, cur))
		stats_health_window_push(ctx->health, cur);
	free(cur);
}

int proxy_health_checks(struct proxy_ctx *ctx, struct stats_health_check *out)
{
	const struct conf *cf = ctx->conf;
	struct stats_health_thresholds th = {
	        .p95_warn_ms = cf->health_p95_warn_ms,
	        .p95_critical_ms = cf->health_p95_critical_ms,
	        .pool_warn_pct = cf->health_pool_warn_pct,
	        .error_rate_critical_pct = cf->health_error_rate_critical_pct,
	        .slow_rate_warn_pct = cf->health_slow_rate_warn_pct,
	        .cache_hit_warn_pct = cf->health_cache_hit_warn_pct,
	        .wait_warn_s = 1,
	        .wait_critical_s = cf->query_wait_timeout / 2,
	        .slow_ms = (uint32_t)cf->slow_query_ms,
	};
	struct stats_health_input in = {0};
	struct stats_health_sample *cur = malloc(sizeof(*cur));
	struct stats_health_pool *pools = health_pools(ctx, &in.npools);
	int rc = -1;

	if (!cur || !pools || !measure(ctx, cur))
		goto out;
	stats_health_recent(ctx->health, cur, &in.recent);
	in.pools = pools;
	if (ctx->cache) {
		enum cache_redis_state rs = cache_state(ctx->cache);

		in.cache_enabled = in.redis_enabled = true;
		in.redis_up = rs == CACHE_REDIS_UP;
		in.redis_state = rs == CACHE_REDIS_OPEN ? "circuit open, probing again soon"
		                                        : cache_redis_state_name(rs);
	}
	stats_health_evaluate(&in, &th, out);
	rc = 0;
out:
	free(cur);
	free(pools);
	return rc;
}

static struct stats_metrics_pool *metrics_pools(struct proxy_ctx *ctx, size_t *n)
{
	size_t cnt = HASH_COUNT(ctx->pools.by_key), i = 0;
	struct stats_metrics_pool *v = calloc(cnt ? cnt : 1, sizeof(*v));
	struct pool *p, *tmp;

	*n = 0;
	if (!v)
		return NULL;
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		struct stats_metrics_pool *m = &v[i++];

		m->db = p->db_name;
		m->user = p->user;
		m->mode = conf_pool_mode_name(p->mode);
		m->cl_active = (uint32_t)p->cl_active.n;
		m->cl_waiting = (uint32_t)p->waiting.n;
		m->cl_idle = (uint32_t)p->cl_idle.n;
		m->cl_login = (uint32_t)p->logins.n;
		m->sv_idle = (uint32_t)p->idle.n;
		m->sv_login = (uint32_t)p->connecting.n;
		count_used(p, &m->sv_active, &m->sv_tested, &m->sv_used);
		m->maxwait_s = max_wait(ctx, p);
		m->pool_size = (uint32_t)p->pool_size;
		m->min_pool_size = (uint32_t)p->min_size;
		m->xact_count = p->st.xact_count;
		m->query_count = p->st.query_count;
		m->bytes_recv = p->st.bytes_recv;
		m->bytes_sent = p->st.bytes_sent;
		m->xact_time_us = p->st.xact_time;
		m->query_time_us = p->st.query_time;
		m->wait_time_us = p->st.wait_time;
		m->server_assignments = p->st.server_assignments;
		m->client_parses = p->st.client_parses;
		m->server_parses = p->st.server_parses;
		m->client_binds = p->st.client_binds;
		m->server_binds = p->st.server_binds;
		m->server_connects = p->n_server_connects;
		m->server_failures = p->n_server_failures;
		m->wait_timeouts = p->n_wait_timeouts;
	}
	*n = i;
	return v;
}

static uint64_t slab_bytes(const struct proxy_slab *s)
{
	return (uint64_t)s->nchunks * s->per_chunk * s->size;
}

/* The reasons cache_count() counts (not "ok", not "not_marked"), by name. */
static const char *reason_names[CACHE_NREASONS];

/* The cache's figures for /metrics, as SHOW CACHE reads them; <st> holds
 * the counts <out> points into. */
static void metrics_cache(const struct cache *ca, struct cache_stats *st,
                          struct stats_metrics_cache *out)
{
	if (!reason_names[CACHE_NREASONS - 1]) {
		for (int r = 0; r < CACHE_NREASONS; r++)
			reason_names[r] = r == CACHE_OK || r == CACHE_NOT_MARKED
			                          ? NULL
			                          : cache_reason_name((enum cache_reason)r);
	}
	cache_get_stats(ca, st);
	out->enabled = true;
	out->hits = st->hits_l1 + st->hits_redis;
	out->misses = st->misses;
	out->stores = st->stores;
	out->evictions = st->l1.evictions;
	out->invalidations = st->invalidations;
	out->redis_errors = st->redis_errors;
	out->l1_bytes = st->l1.bytes;
	out->redis_up = st->state == CACHE_REDIS_UP;
	out->redis_requests = st->redis_calls;
	out->redis_seconds = st->redis_ms_total / 1e3;
	out->reason_names = reason_names;
	out->uncacheable = st->uncacheable;
	out->nreasons = CACHE_NREASONS;
	out->notify_listeners = st->notify.listeners;
	out->notify_up = st->notify.up;
	out->notify_received = st->notify.received;
	out->notify_failures = st->notify.failures;
}

/*
 * The health checks for /metrics, evaluated at most once a second: they
 * sum up the last minute, and a scraper polling every 100 ms would pay a
 * fifth of each scrape for the same answer. /health and SHOW HEALTH
 * evaluate them each time. NULL when they cannot be had (out of memory).
 */
static const struct stats_health_check *metrics_health(struct proxy_ctx *ctx,
                                                       struct stats_health_check *fresh)
{
	struct proxy_http *h = ctx->http;
	double now = proxy_now(ctx);

	if (h && h->health_ok && now >= h->health_at && now - h->health_at < 1.0)
		return h->health;
	if (proxy_health_checks(ctx, fresh) < 0)
		return NULL;
	if (h) {
		memcpy(h->health, fresh, sizeof(h->health));
		h->health_at = now;
		h->health_ok = true;
	}
	return fresh;
}

int proxy_metrics_render(struct proxy_ctx *ctx, struct proto_buf *b)
{
	struct stats_health_check checks[STATS_HEALTH_NCHECKS];
	struct stats_metrics_input in = {0};
	struct stats_metrics_pool *pools = metrics_pools(ctx, &in.npools);
	struct cache_stats cst;
	size_t nps, psbytes;
	int rc;

	if (!pools)
		return -1;
	proxy_ps_registry(ctx, &nps, &psbytes);
	in.version = PROXY_VERSION;
	in.pools = pools;
	in.clients = (uint32_t)ctx->clients.n;
	in.servers = (uint32_t)ctx->servers.n;
	in.logins = (uint32_t)ctx->nlogins;
	in.max_client_conn = (uint32_t)ctx->conf->max_client_conn;
	in.uptime_s = proxy_now(ctx) - ctx->started_at;
	in.accepted = ctx->n_accepted;
	in.login_failures = ctx->n_login_failures;
	in.cancels = ctx->n_cancels;
	in.login_refused = ctx->n_login_refused;
	in.mem_buffers = (uint64_t)ctx->bufs.nfree * PROXY_BLOCK_SIZE;
	in.mem_slabs = slab_bytes(&ctx->client_slab) + slab_bytes(&ctx->server_slab);
	in.mem_statistics = stats_mem(ctx->stats);
	in.mem_prepared = psbytes;
	if (ctx->http) {
		in.http_requests = ctx->http->requests;
		in.http_refused = ctx->http->refused;
	}
	in.health = metrics_health(ctx, checks);
	in.top_statements = (uint32_t)ctx->conf->metrics_top_statements;
	in.pgbouncer_names = ctx->conf->metrics_pgbouncer_names;
	if (ctx->cache)
		metrics_cache(ctx->cache, &cst, &in.cache);
	rc = stats_metrics_render(ctx->stats, &in, b);
	free(pools);
	return rc;
}

/* ---- connections ---- */

static void conn_free(void *obj)
{
	struct http_conn *c = obj;

	proto_buf_free(&c->out);
	free(c);
}

/* Stop, close and unlink <c>; the reaper frees it. */
static void conn_close(struct http_conn *c)
{
	struct proxy_http *h = c->h;
	struct ev_loop *loop = h->ctx->loop;

	ev_io_stop(loop, &c->rd);
	ev_io_stop(loop, &c->wr);
	ev_timer_stop(loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	proxy_defer_free(h->ctx, c, conn_free);
}

static void conn_fail(struct http_conn *c)
{
	c->h->refused++;
	conn_close(c);
}

/* The response is out: shut the write side and read until the peer closes. */
static void conn_done(struct http_conn *c)
{
	struct ev_loop *loop = c->h->ctx->loop;

	ev_io_stop(loop, &c->wr);
	shutdown(c->fd, SHUT_WR);
	c->state = HTTP_DRAINING;
	ev_io_start(loop, &c->rd);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, HTTP_LINGER, 0);
	ev_timer_start(loop, &c->timer);
}

/* The response is out and the connection stays: wait for the next request. */
static void conn_again(struct http_conn *c)
{
	struct ev_loop *loop = c->h->ctx->loop;

	ev_io_stop(loop, &c->wr);
	c->state = HTTP_READING;
	c->reqlen = c->hdrlen = 0;
	c->keep = false;
	c->idle = true;
	ev_io_start(loop, &c->rd);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, HTTP_IDLE_TIMEOUT, 0);
	ev_timer_start(loop, &c->timer);
}

/* Write what the socket takes; may close <c>. */
static void conn_flush(struct http_conn *c)
{
	while (proto_buf_avail(&c->out) > 0) {
		ssize_t n = send(c->fd, proto_buf_head(&c->out), proto_buf_avail(&c->out),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(c->h->ctx->loop, &c->wr);
			return;
		}
		if (n <= 0) {
			conn_fail(c);
			return;
		}
		proto_buf_consume(&c->out, (size_t)n);
	}
	proto_buf_free(&c->out);
	if (c->keep)
		conn_again(c);
	else
		conn_done(c);
}

static const char *reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	}
	return "Error";
}

/*
 * Queue the response <code> with <body> (<type>; the body is left out for
 * HEAD) and start writing it. Takes <body>'s bytes; may close <c>.
 */
static void respond(struct http_conn *c, int code, const char *type, struct proto_buf *body,
                    bool head, const char *extra)
{
	char hdr[512];
	size_t blen = body ? proto_buf_avail(body) : 0;
	int n;

	n = snprintf(hdr, sizeof(hdr),
	             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Cache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
	             code, reason(code), type, blen, c->keep ? "keep-alive" : "close",
	             extra ? extra : "");
	proto_buf_reset(&c->out);
	if (n < 0 || (size_t)n >= sizeof(hdr) || proto_buf_append(&c->out, hdr, (size_t)n) < 0 ||
	    (!head && blen && proto_buf_append(&c->out, proto_buf_head(body), blen) < 0)) {
		if (body)
			proto_buf_free(body);
		conn_fail(c);
		return;
	}
	if (body)
		proto_buf_free(body);
	c->h->requests++;
	c->state = HTTP_WRITING;
	ev_io_stop(c->h->ctx->loop, &c->rd);
	ev_timer_stop(c->h->ctx->loop, &c->timer);
	ev_timer_set(&c->timer, HTTP_WRITE_TIMEOUT, 0);
	ev_timer_start(c->h->ctx->loop, &c->timer);
	conn_flush(c);
}

static void respond_text(struct http_conn *c, int code, const char *text, bool head,
                         const char *extra)
{
	struct proto_buf b;

	if (code != 200 && code != 404)
		c->keep = false; /* after a bad request, what follows is not to be trusted */
	proto_buf_init(&b);
	if (proto_buf_append(&b, text, strlen(text)) < 0) {
		proto_buf_free(&b);
		conn_fail(c);
		return;
	}
	respond(c, code, "text/plain; charset=utf-8", &b, head, extra);
}

/* Whether the <n> bytes at <v> hold <word> (lower case), in any case. */
static bool has_word(const char *v, size_t n, const char *word)
{
	size_t w = strlen(word);

	for (size_t i = 0; i + w <= n; i++)
		if (strncasecmp(v + i, word, w) == 0)
			return true;
	return false;
}

/*
 * Whether the connection may stay open after answering the request whose
 * headers are <hdrs> (after the request line) in protocol version <minor>
 * (HTTP/1.<minor>): the client did not ask to close (or, in HTTP/1.0, asked
 * to keep it), and sent no body, which sluice does not read.
 */
static bool keeps(const char *hdrs, char minor)
{
	bool keep = minor != '0';

	for (const char *l = hdrs; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);

		if (n >= 11 && strncasecmp(l, "connection:", 11) == 0) {
			if (has_word(l + 11, n - 11, "close"))
				return false;
			if (has_word(l + 11, n - 11, "keep-alive"))
				keep = true;
		} else if (n >= 15 && strncasecmp(l, "content-length:", 15) == 0) {
			const char *v = l + 15;

			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '0')
				return false;
		} else if (n >= 18 && strncasecmp(l, "transfer-encoding:", 18) == 0) {
			return false;
		}
		l += n + (e != NULL);
	}
	return keep;
}

/* The request line of a complete request is in c->req: answer it. */
static void handle(struct http_conn *c)
{
	struct proxy_ctx *ctx = c->h->ctx;
	char *line = c->req, *sp1, *sp2, *eol, *q;
	bool head;
	struct proto_buf b;

	eol = strpbrk(line, "\r\n");
	/* only a request that ends where the bytes read end may keep the
	 * connection: pipelined requests are not served */
	c->keep = eol && c->hdrlen == c->reqlen &&
	          keeps(eol + 1, (sp2 = strstr(line, " HTTP/1.")) && sp2 < eol ? sp2[8] : '0');
	if (eol)
		*eol = '\0';
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp1[1] != '/') {
		respond_text(c, 400, "malformed request line\n", false, NULL);
		return;
	}
	*sp1 = *sp2 = '\0';
	if ((q = strchr(sp1 + 1, '?')))
		*q = '\0';
	head = strcmp(line, "HEAD") == 0;
	if (!head && strcmp(line, "GET") != 0) {
		respond_text(c, 405, "only GET and HEAD are served here\n", false,
		             "Allow: GET, HEAD\r\n");
		return;
	}
	proto_buf_init(&b);
	if (strcmp(sp1 + 1, "/metrics") == 0) {
		if (proxy_metrics_render(ctx, &b) < 0) {
			proto_buf_free(&b);
			respond_text(c, 500, "out of memory\n", head, NULL);
			return;
		}
		respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b, head, NULL);
	} else if (strcmp(sp1 + 1, "/health") == 0) {
		struct stats_health_check checks[STATS_HEALTH_NCHECKS];

		if (proxy_health_checks(ctx, checks) < 0 ||
		    stats_health_json(checks, STATS_HEALTH_NCHECKS, &b) < 0) {
			proto_buf_free(&b);
			respond_text(c, 500, "out of memory\n", head, NULL);
			return;
		}
		respond(c,
		        stats_health_overall(checks, STATS_HEALTH_NCHECKS) == STATS_HEALTH_CRITICAL
		                ? 503
		                : 200,
		        "application/json", &b, head, NULL);
	} else {
		proto_buf_free(&b);
		respond_text(c, 404, "not found: try /metrics or /health\n", head, NULL);
	}
}

/* The end of the headers, or NULL. */
static char *headers_end(char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] == '\n' && s[i + 1] == '\n')
			return s + i;
		if (i + 3 < n && s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' &&
		    s[i + 3] == '\n')
			return s + i;
	}
	return NULL;
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *c = w->data;

	(void)revents;
	for (;;) {
		char sink[4096];
		size_t room = sizeof(c->req) - 1 - c->reqlen;
		ssize_t n;

		if (c->state == HTTP_DRAINING)
			n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		else
			n = recv(c->fd, c->req + c->reqlen, room, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* a connect-and-close (a port probe) is no failure */
			if (c->state == HTTP_DRAINING || (n == 0 && c->reqlen == 0) || c->idle)
				conn_close(c);
			else
				conn_fail(c);
			return;
		}
		if (c->state == HTTP_DRAINING)
			continue;
		if (c->idle) {
			/* the next request began: its headers get the read timeout */
			c->idle = false;
			ev_timer_stop(loop, &c->timer);
			ev_timer_set(&c->timer, HTTP_READ_TIMEOUT, 0);
			ev_timer_start(loop, &c->timer);
		}
		/* only the new bytes and the three before can complete the end */
		{
			size_t from = c->reqlen > 3 ? c->reqlen - 3 : 0;
			char *end;

			c->reqlen += (size_t)n;
			c->req[c->reqlen] = '\0';
			if ((end = headers_end(c->req + from, c->reqlen - from))) {
				c->hdrlen = (size_t)(end - c->req) + (*end == '\n' ? 2 : 4);
				handle(c);
				return;
			}
		}
		if (c->reqlen >= sizeof(c->req) - 1) {
			c->h->refused++;
			respond_text(c, 431, "request headers over 8 KB\n", false, NULL);
			return;
		}
	}
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_conn *c = w->data;

	(void)revents;
	ev_io_stop(loop, w);
	conn_flush(c);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_conn *c = w->data;

	(void)loop;
	(void)revents;
	if (c->state == HTTP_DRAINING || c->idle)
		conn_close(c); /* done, or kept open and not used again */
	else
		conn_fail(c); /* a client too slow to send its request or take the answer */
}

static void http_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct proxy_http *h = w->data;

	(void)revents;
	ev_io_start(loop, &h->listen);
}

static void http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_http *h = w->data;

	(void)revents;
	/* a bounded batch, so a flood of connects cannot hold the loop */
	for (int i = 0; i < 64; i++) {
		struct http_conn *c;
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the pending connection keeps the listener readable: pause */
				ev_io_stop(loop, w);
				ev_timer_set(&h->pause, 0.5, 0);
				ev_timer_start(loop, &h->pause);
			}
			return;
		}
		if (h->nconns >= HTTP_MAX_CONNS || h->ctx->shutting_down ||
		    !(c = malloc(sizeof(*c)))) {
			static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
			                           "Content-Length: 0\r\nConnection: close\r\n\r\n";

			/* best effort: the socket buffer of a new connection takes it */
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				(void)0;
			close(fd);
			h->refused++;
			continue;
		}
		/* all but the request buffer, which reqlen bounds: zeroing 8 KB
		 * per scrape was a tenth of its cost */
		memset(c, 0, offsetof(struct http_conn, req));
		c->h = h;
		c->fd = fd;
		c->state = HTTP_READING;
		proto_buf_init(&c->out);
		ev_io_init(&c->rd, conn_read_cb, fd, EV_READ);
		ev_io_init(&c->wr, conn_write_cb, fd, EV_WRITE);
		ev_timer_init(&c->timer, conn_timer_cb, HTTP_READ_TIMEOUT, 0);
		c->rd.data = c->wr.data = c->timer.data = c;
		c->next = h->conns;
		if (h->conns)
			h->conns->prev = c;
		h->conns = c;
		h->nconns++;
		ev_io_start(loop, &c->rd);
		ev_timer_start(loop, &c->timer);
	}
}

int proxy_http_start(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	const char *v = ctx->conf->stats_listen;
	char host[256];
	struct proxy_http *h;
	int port, fd;
	size_t nfd;

	ctx->health = calloc(1, sizeof(*ctx->health));
	if (!ctx->health) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!v[0])
		return 0;
	if (!conf_split_hostport(v, host, sizeof(host), &port)) {
		snprintf(err, errlen, "stats_listen \"%s\" is not host:port", v);
		return -1;
	}
	/* the first address only: one listener is all a scraper needs */
	if (proxy_listen_tcp("stats_listen", host, port, 128, &fd, 1, true, &nfd, err, errlen) < 0)
		return -1;
	if (!(h = calloc(1, sizeof(*h)))) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->ctx = ctx;
	snprintf(h->where, sizeof(h->where), "%s", v);
	ev_io_init(&h->listen, http_accept_cb, fd, EV_READ);
	ev_init(&h->pause, http_pause_cb);
	h->listen.data = h->pause.data = h;
	ev_io_start(ctx->loop, &h->listen);
	ctx->http = h;
	log_info("serving /metrics and /health on http://%s", h->where);
	return 0;
}

void proxy_http_stop(struct proxy_ctx *ctx)
{
	struct proxy_http *h = ctx->http;

	if (!h)
		return;
	while (h->conns)
		conn_close(h->conns);
	if (h->listen.fd >= 0) {
		ev_io_stop(ctx->loop, &h->listen);
		ev_timer_stop(ctx->loop, &h->pause);
		close(h->listen.fd);
		h->listen.fd = -1;
	}
}

void proxy_http_free(struct proxy_ctx *ctx)
{
	if (ctx->http) {
		proxy_http_stop(ctx);
		free(ctx->http);
		ctx->http = NULL;
	}
	free(ctx->health);
	ctx->health = NULL;
}
