/*
 * Pool management: who gets which server, when servers are opened and
 * closed, and what happens to waiting clients when PostgreSQL cannot be
 * reached.
 *
 * Idle servers are handed out warmest first. Clients queue FIFO. A pool
 * opens a new server only while it is under its size and there are more
 * waiting clients than logins already under way. When a login fails and
 * nothing else can serve the queue, the waiting clients get an error at
 * once instead of hanging until query_wait_timeout.
 */
#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

#include "stats/stats.h"

struct pool *proxy_pool_for(struct proxy_ctx *ctx, const char *db_name, const char *user,
                            enum proxy_err *err, char *msg, size_t msglen)
{
	const struct conf_db *db = conf_find_db(ctx->conf, db_name);
	struct pool *p = pool_find(&ctx->pools, db_name, user);

	if (p) {
		if (!p->db && db)
			pool_apply_conf(p, ctx->conf, db);
		if (!p->db) {
			*err = PROXY_ERR_NO_DATABASE;
			snprintf(msg, msglen, "database \"%s\" does not exist in sluice", db_name);
			return NULL;
		}
		return p;
	}
	if (!db) {
		*err = PROXY_ERR_NO_DATABASE;
		snprintf(msg, msglen, "database \"%s\" does not exist in sluice", db_name);
		return NULL;
	}
	p = pool_create(&ctx->pools, ctx->conf, db, db_name, user, db->user ? db->user : user);
	if (!p) {
		*err = PROXY_ERR_OOM;
		snprintf(msg, msglen, "out of memory creating pool \"%s/%s\"", db_name, user);
		return NULL;
	}
	log_info("pool %s/%s created: size %d, min %d, %s mode", db_name, user, p->pool_size,
	         p->min_size, conf_pool_mode_name(p->mode));
	return p;
}

static bool lifetime_over(const struct proxy_server *s)
{
	double lt = s->ctx->conf->server_lifetime;

	return lt > 0 && proxy_now(s->ctx) - s->created_at > lt;
}

void proxy_pool_server_ready(struct proxy_server *s)
{
	struct pool *p = s->pool;
	struct pool_node *n;

	if (s->ctx->shutting_down) {
		proxy_server_close(s, "shutting down");
		return;
	}
	if (!p->db) {
		proxy_server_close(s, "database removed from the configuration");
		return;
	}
	n = pool_list_first(&p->waiting);
	if (lifetime_over(s) && (n == NULL || pool_server_count(p) > (size_t)p->min_size)) {
		proxy_server_close(s, "server_lifetime reached");
		if (n && pool_can_open(p) && proxy_server_open(s->ctx, p) < 0)
			proxy_pool_connect_failed(p);
		return;
	}
	if (n) {
		proxy_client_link(n->owner, s);
		return;
	}
	proxy_server_set_state(s, PROXY_SV_IDLE);
	s->last_used = proxy_now(s->ctx);
	proxy_io_start_read(s->ctx, &s->io); /* notice a server that goes away */
}

void proxy_pool_request(struct proxy_client *c)
{
	struct pool *p = c->pool;
	struct pool_node *n = pool_list_first(&p->idle);

	if (n) {
		proxy_client_link(c, n->owner);
		return;
	}
	proxy_client_set_state(c, PROXY_CL_WAIT);
	if (pool_can_open(p) && p->connecting.n < p->waiting.n) {
		if (proxy_server_open(c->ctx, p) < 0)
			proxy_pool_connect_failed(p);
	}
}

static void fail_list(struct pool *p, struct pool_list *l)
{
	struct pool_node *n;
	char hint[160];

	snprintf(hint, sizeof(hint),
	         "check that PostgreSQL is running and accepts connections at %s:%d",
	         p->db && p->db->host ? p->db->host : "?", p->db ? p->db->port : 0);
	while ((n = pool_list_first(l))) {
		struct proxy_client *c = n->owner;

		proxy_client_fail_hint(c, PROXY_ERR_SERVER_UNREACHABLE, hint,
		                       "cannot connect to the server for \"%s/%s\": %s", p->db_name,
		                       p->user, p->last_error[0] ? p->last_error : "unknown error");
	}
}

void proxy_pool_connect_failed(struct pool *p)
{
	if (p->connecting.n > 0)
		return; /* another login may still succeed */
	if (p->idle.n > 0)
		return;
	fail_list(p, &p->logins);
	if (p->used.n == 0)
		fail_list(p, &p->waiting);
}

/* Close idle servers past their lifetime or idle time, keeping the minimum. */
static void trim_idle(struct proxy_ctx *ctx, struct pool *p, double now)
{
	const struct conf *cf = ctx->conf;
	struct pool_node *n = p->idle.head.prev;

	/* oldest-used servers sit at the back of the idle list */
	while (n != &p->idle.head) {
		struct proxy_server *s = n->owner;
		struct pool_node *prev = n->prev;
		bool surplus = pool_server_count(p) > (size_t)p->min_size;

		if (lifetime_over(s) && surplus)
			proxy_server_close(s, "server_lifetime reached");
		else if (lifetime_over(s) && !surplus && pool_can_open(p))
			proxy_server_close(s, "server_lifetime reached; replaced");
		else if (cf->server_idle_timeout > 0 && surplus &&
		         now - s->last_used > cf->server_idle_timeout)
			proxy_server_close(s, "server_idle_timeout reached");
		else if (pool_server_count(p) > (size_t)p->pool_size)
			proxy_server_close(s, "pool size lowered");
		n = prev;
	}
}

/* Open servers up to min_pool_size, and for clients still waiting. */
static void fill(struct proxy_ctx *ctx, struct pool *p, double now)
{
	const struct conf *cf = ctx->conf;
	double retry = cf->server_login_retry;

	if (!p->db || ctx->shutting_down)
		return;
	if (p->last_error_at > 0 && now - p->last_error_at < retry && p->connecting.n == 0 &&
	    p->waiting.n == 0)
		return; /* PostgreSQL was unreachable a moment ago: pace retries */
	while (pool_can_open(p) &&
	       (pool_server_count(p) < (size_t)p->min_size || p->connecting.n < p->waiting.n)) {
		if (proxy_server_open(ctx, p) < 0) {
			proxy_pool_connect_failed(p);
			break;
		}
	}
}

void proxy_pool_janitor(struct proxy_ctx *ctx)
{
	double now = proxy_now(ctx);
	struct pool *p, *tmp;

	struct pool_node *n, *next;

	for (n = ctx->clients.head.next; n != &ctx->clients.head; n = next) {
		next = n->next; /* the client may be closed */
		proxy_client_check_timeouts(n->owner, now);
	}
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		trim_idle(ctx, p, now);
		fill(ctx, p, now);
	}
}
