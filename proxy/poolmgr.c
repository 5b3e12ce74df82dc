/*
 * Pool management: who gets which server, when servers are opened and
 * closed, and what happens to waiting clients when PostgreSQL cannot be
 * reached.
 *
 * Idle servers are handed out warmest first. Clients queue FIFO. A pool
 * opens a new server only while it is under its size (and its database
 * and user under max_db_connections / max_user_connections) and there are
 * more waiting clients than logins already under way. When a login fails
 * and nothing else can serve the queue, the waiting clients get an error
 * at once instead of hanging until query_wait_timeout. A server released
 * while a cancel for its backend is in flight, or made with settings a
 * reload changed, is never handed out again until that is over.
 *
 * In session mode a server is opened with its client's startup parameters
 * and goes only to clients with the same set (interned: one pointer
 * compare), so that each session is the one a direct connection makes.
 * Clients of one application send the same set, so servers are shared as
 * before; a client whose set no idle server has gets a new server, or,
 * with the pool full, the least recently used idle server of another set
 * is closed to make room. A server whose session kept state a reset cannot
 * undo (a temporary schema) is closed instead of reused.
 *
 * Walks over lists whose nodes a step may close (the janitor, failing a
 * queue) go over a snapshot taken first: a closed connection stays
 * allocated until the reaper runs, which never happens inside a walk, so
 * every pointer of the snapshot stays valid and its state says whether it
 * still needs the step.
 */
#include "proxy/proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

/* The owners of <l>'s nodes as they are now, front to back (NULL and *n 0
 * when the list is empty or memory is short: the walk is skipped then and
 * runs again on the next janitor tick). Caller frees. */
static void **snapshot(const struct pool_list *l, size_t *n)
{
	void **v;
	size_t i = 0;

	*n = 0;
	if (l->n == 0)
		return NULL;
	v = malloc(l->n * sizeof(*v));
	if (!v) {
		log_error("out of memory walking a connection list");
		return NULL;
	}
	for (const struct pool_node *x = l->head.next; x != &l->head && i < l->n; x = x->next)
		v[i++] = x->owner;
	*n = i;
	return v;
}

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
	if (p && !(p->stats_scope = stats_scope_get(ctx->stats, db_name, user))) {
		pool_destroy(&ctx->pools, p);
		p = NULL;
	}
	if (!p) {
		*err = PROXY_ERR_OOM;
		snprintf(msg, msglen, "out of memory creating pool \"%s/%s\"", db_name, user);
		return NULL;
	}
	if (log_current_level >= LOG_LVL_INFO) {
		char d[96], u[96];

		log_info("pool %s/%s created: size %d, min %d, %s mode",
		         log_escape(d, sizeof(d), db_name), log_escape(u, sizeof(u), user),
		         p->pool_size, p->min_size, conf_pool_mode_name(p->mode));
	}
	return p;
}

static bool lifetime_over(const struct proxy_server *s)
{
	double lt = s->ctx->conf->server_lifetime;

	return lt > 0 && proxy_now(s->ctx) - s->created_at > lt;
}

/* Close an idle server of another pool of the same database or user, so
 * that <p>, held back by max_db_connections / max_user_connections, can
 * open one. True if <p> may open a server now. */
static bool make_room(struct proxy_ctx *ctx, struct pool *p)
{
	struct pool *q, *tmp;

	if (pool_caps_allow(p))
		return true;
	HASH_ITER(hh, ctx->pools.by_key, q, tmp)
	{
		struct pool_node *n;
		bool db_full = p->max_db_conns > 0 && q->db_tally == p->db_tally &&
		               p->db_tally->n >= (size_t)p->max_db_conns;
		bool user_full = p->max_user_conns > 0 && q->user_tally == p->user_tally &&
		                 p->user_tally->n >= (size_t)p->max_user_conns;

		if (q == p || !(db_full || user_full))
			continue;
		/* the least recently used idle server sits at the back */
		n = p->idle.n == 0 && q->idle.n > 0 ? q->idle.head.prev : NULL;
		if (n) {
			proxy_server_close(n->owner, "closed to make room for another pool "
			                             "(max_db_connections / max_user_connections)");
			if (pool_caps_allow(p))
				return true;
		}
	}
	return pool_caps_allow(p);
}

/* May <p> open one more server now (pool size and caps)? */
static bool may_open(struct proxy_ctx *ctx, struct pool *p)
{
	return pool_can_open(p) && make_room(ctx, p);
}

/* Fail every client of <p> in state <st> (LOGIN or WAIT) with <e>. */
static void fail_clients(struct pool *p, enum proxy_cl_state st, enum proxy_err e, const char *hint,
                         const char *msg)
{
	struct pool_list *l = st == PROXY_CL_LOGIN ? &p->logins : &p->waiting;
	size_t n;
	void **v = snapshot(l, &n);

	for (size_t i = 0; i < n; i++) {
		struct proxy_client *c = v[i];

		/* an earlier failure may have closed or moved it */
		if (c->state == st && c->pool == p)
			proxy_client_fail_hint(c, e, hint, "%s", msg);
	}
	free(v);
}

/* The database of <p> left the configuration: its queued clients are told
 * at once. */
static void fail_removed(struct pool *p)
{
	char msg[256], d[96];

	snprintf(msg, sizeof(msg), "database \"%s\" was removed from the configuration",
	         log_escape(d, sizeof(d), p->db_name));
	fail_clients(p, PROXY_CL_LOGIN, PROXY_ERR_NO_DATABASE, NULL, msg);
	fail_clients(p, PROXY_CL_WAIT, PROXY_ERR_NO_DATABASE, NULL, msg);
}

/* Servers of <l> opened with <sp>. */
static size_t count_servers(const struct pool_list *l, const struct proxy_sparams *sp)
{
	size_t k = 0;

	for (const struct pool_node *x = l->head.next; x != &l->head; x = x->next)
		k += ((const struct proxy_server *)x->owner)->sp == sp;
	return k;
}

/* Waiting clients with <sp>, counted up to <limit>. */
static size_t count_waiting(const struct pool *p, const struct proxy_sparams *sp, size_t limit)
{
	size_t k = 0;

	for (const struct pool_node *x = p->waiting.head.next; x != &p->waiting.head && k < limit;
	     x = x->next)
		k += ((const struct proxy_client *)x->owner)->sp == sp;
	return k;
}

/* The first waiting client a server opened with <sp> may serve, or NULL. */
static struct pool_node *waiting_for(struct pool *p, const struct proxy_sparams *sp)
{
	if (p->mode != CONF_POOL_SESSION)
		return pool_list_first(&p->waiting);
	for (struct pool_node *x = p->waiting.head.next; x != &p->waiting.head; x = x->next)
		if (((struct proxy_client *)x->owner)->sp == sp)
			return x;
	return NULL;
}

/* Could <s> serve clients of its pool as the pool is now? A server made
 * for a client's startup parameters never serves transaction mode (after
 * a reload changed the mode). */
static bool fits_mode(const struct proxy_server *s)
{
	return !s->sp || s->pool->mode == CONF_POOL_SESSION;
}

struct proxy_sparams *proxy_pool_pick_sp(struct pool *p)
{
	size_t tried = 0;

	/* the first waiting client whose set has fewer servers on the way
	 * than clients waiting for it (most often: the first client) */
	for (struct pool_node *x = p->waiting.head.next; x != &p->waiting.head && tried < 64;
	     x = x->next, tried++) {
		struct proxy_sparams *sp = ((struct proxy_client *)x->owner)->sp;
		size_t m = count_servers(&p->connecting, sp);

		if (count_waiting(p, sp, m + 1) > m)
			return sp;
	}
	return p->warm_sp;
}

void proxy_pool_server_ready(struct proxy_server *s)
{
	struct proxy_ctx *ctx = s->ctx;
	struct pool *p = s->pool;
	struct pool_node *n;

	if (ctx->shutting_down) {
		proxy_server_close(s, "shutting down");
		return;
	}
	if (s->cancels.n > 0) {
		/* PostgreSQL has not acted on a cancel for this backend yet: handed
		 * on now, the cancel could hit the next client's query. Parked on
		 * the used list until the cancel connections end (cancel_end). */
		s->cancel_hold = true;
		proxy_server_set_state(s, PROXY_SV_RESET);
		proxy_io_start_read(ctx, &s->io);
		return;
	}
	s->cancel_hold = false;
	if (!p->db) {
		proxy_server_close(s, "database removed from the configuration");
		fail_removed(p);
		return;
	}
	if (proxy_admin_paused(ctx, p->db_name)) {
		/* PAUSE: its transaction is over; clients wait for RESUME */
		proxy_server_close(s, "database paused on the admin console");
		return;
	}
	n = pool_list_first(&p->waiting);
	if (s->close_needed || s->stale_session || !fits_mode(s)) {
		proxy_server_close(s, s->close_needed ? "database settings changed by a reload"
		                      : s->stale_session
		                              ? "its session kept state a reset cannot undo "
		                                "(a temporary schema): not reused"
		                              : "made for a client's startup parameters; pool "
		                                "mode changed");
		if (n && may_open(ctx, p) && proxy_server_open(ctx, p) < 0)
			proxy_pool_connect_failed(p);
		return;
	}
	if (lifetime_over(s) && (n == NULL || pool_server_count(p) > (size_t)p->min_size)) {
		proxy_server_close(s, "server_lifetime reached");
		if (n && may_open(ctx, p) && proxy_server_open(ctx, p) < 0)
			proxy_pool_connect_failed(p);
		return;
	}
	if (n && s->mode == CONF_POOL_SESSION && p->mode == CONF_POOL_SESSION &&
	    !(n = waiting_for(p, s->sp)) && !pool_can_open(p)) {
		/* nobody waits for its set, and the clients that wait cannot get
		 * a server of theirs while it takes the room */
		proxy_server_close(s, "made room for a client with other startup parameters");
		if (may_open(ctx, p) && proxy_server_open(ctx, p) < 0)
			proxy_pool_connect_failed(p);
		return;
	}
	if (n) {
		proxy_client_link(n->owner, s);
		return;
	}
	proxy_server_set_state(s, PROXY_SV_IDLE);
	s->last_used = proxy_now(ctx);
	proxy_io_start_read(ctx, &s->io); /* notice a server that goes away */
}

/* PostgreSQL said the database does not exist a moment ago: asking again
 * before server_login_retry would only repeat that. */
static bool db_known_missing(const struct proxy_ctx *ctx, const struct pool *p)
{
	return p->db_missing && proxy_now(ctx) - p->last_error_at < ctx->conf->server_login_retry;
}

void proxy_pool_request(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	struct pool *p = c->pool;
	struct pool_node *n = pool_list_first(&p->idle);
	bool session = p->mode == CONF_POOL_SESSION;

	/* the warmest idle server this client may have: in session mode one
	 * opened with its own startup parameters */
	while (n && ((session && ((struct proxy_server *)n->owner)->sp != c->sp) ||
	             !fits_mode(n->owner))) {
		struct pool_node *next = n->next == &p->idle.head ? NULL : n->next;

		if (!fits_mode(n->owner))
			proxy_server_close(n->owner, "made for a client's startup parameters; "
			                             "pool mode changed");
		n = next;
	}
	if (!p->db) {
		char d[96];

		proxy_client_fail(c, PROXY_ERR_NO_DATABASE,
		                  "database \"%s\" was removed from the configuration",
		                  log_escape(d, sizeof(d), p->db_name));
		return;
	}
	if (proxy_admin_paused(ctx, p->db_name)) {
		proxy_client_set_state(c, PROXY_CL_WAIT); /* until RESUME */
		return;
	}
	if (n) {
		if (!session)
			n = proxy_pin_prefer(c, n, &p->idle);
		proxy_client_link(c, n->owner);
		return;
	}
	if (db_known_missing(ctx, p) && p->used.n == 0 && p->connecting.n == 0) {
		proxy_client_fail(c, PROXY_ERR_SERVER_NO_DATABASE, "%s", p->last_error);
		return;
	}
	proxy_client_set_state(c, PROXY_CL_WAIT);
	if (session) {
		size_t m = count_servers(&p->connecting, c->sp);

		if (count_waiting(p, c->sp, m + 1) <= m)
			return; /* enough of its servers are on the way */
		if (!pool_can_open(p) && p->idle.n > 0)
			/* full, and no idle server has its set: the least recently
			 * used idle one makes room */
			proxy_server_close(p->idle.head.prev->owner,
			                   "made room for a client with other startup parameters");
		if (may_open(ctx, p) && proxy_server_open(ctx, p) < 0)
			proxy_pool_connect_failed(p);
		return;
	}
	if (p->connecting.n < p->waiting.n && may_open(ctx, p)) {
		if (proxy_server_open(ctx, p) < 0)
			proxy_pool_connect_failed(p);
	}
}

/* Drop the first request buffered from <c> (a Query or FunctionCall, or
 * an extended-protocol batch up to its Sync), as if PostgreSQL had
 * cancelled it: 1 if one was dropped, 0 if none is whole yet. */
static int drop_request(struct proxy_client *c)
{
	const uint8_t *p = proto_buf_head(&c->io.in);
	size_t avail = proto_buf_avail(&c->io.in), off = 0;

	while (avail - off >= 5) {
		uint8_t type = p[off];
		uint32_t len = ((uint32_t)p[off + 1] << 24) | ((uint32_t)p[off + 2] << 16) |
		               ((uint32_t)p[off + 3] << 8) | p[off + 4];

		if (len < 4 || avail - off - 1 < len)
			return 0; /* malformed (the relay will say so) or not all here */
		off += (size_t)len + 1;
		if (type == 'Q' || type == 'F' || type == 'S') {
			proto_buf_consume(&c->io.in, off);
			return 1;
		}
		if (type == 'X' || type == 'd' || type == 'c' || type == 'f')
			return 0;
	}
	return 0;
}

void proxy_pool_cancel(struct proxy_client *c)
{
	if (proxy_cache_waiting(c)) {
		/* its Query waits in the cache, not at its server */
		proxy_cache_cancel_wait(c);
		return;
	}
	if (c->state == PROXY_CL_ACTIVE && c->server) {
		proxy_server_cancel(c->server);
		return;
	}
	if (c->state != PROXY_CL_WAIT)
		return; /* nothing of its runs: PostgreSQL ignores such a cancel too */
	/* Queued, never sent to a server: drop it and answer as PostgreSQL
	 * would have. A request still arriving has not started, and is left
	 * alone, as PostgreSQL ignores a cancel while it reads a command. */
	if (drop_request(c) == 0)
		return;
	if (proxy_cache_on(c->ctx))
		proxy_cache_dropped(c); /* a lead of the dropped Query ends */
	proxy_client_fail(c, PROXY_ERR_CANCELED, "canceling statement due to user request");
	if (c->state == PROXY_CL_CLOSING)
		return;
	if (proto_buf_avail(&c->io.in) > 0)
		return; /* more requests queued: it keeps its place */
	proxy_client_set_state(c, PROXY_CL_IDLE);
	proxy_io_start_read(c->ctx, &c->io);
}

/* Fail the clients of <l>'s state that nothing else can serve. */
static void fail_list(struct pool *p, enum proxy_cl_state st)
{
	char hint[160], msg[512], d[96], u[96];
	const char *host = p->db && p->db->host ? p->db->host : "?";

	log_escape(d, sizeof(d), p->db_name);
	log_escape(u, sizeof(u), p->user);
	if (p->db_missing) {
		/* PostgreSQL's message as it is (server.c keeps it so) */
		fail_clients(p, st, PROXY_ERR_SERVER_NO_DATABASE, NULL, p->last_error);
		return;
	}
	snprintf(hint, sizeof(hint),
	         "check that PostgreSQL is running and accepts connections at %s:%d", host,
	         p->db ? p->db->port : 0);
	snprintf(msg, sizeof(msg), "cannot connect to the server for \"%s/%s\": %s", d, u,
	         p->last_error[0] ? p->last_error : "unknown error");
	fail_clients(p, st, PROXY_ERR_SERVER_UNREACHABLE, hint, msg);
}

void proxy_pool_connect_failed(struct pool *p)
{
	if (p->connecting.n > 0)
		return; /* another login may still succeed */
	if (p->idle.n > 0)
		return;
	fail_list(p, PROXY_CL_LOGIN);
	if (p->used.n == 0)
		fail_list(p, PROXY_CL_WAIT);
}

void proxy_pool_capacity_freed(struct proxy_ctx *ctx, struct pool *p)
{
	struct pool *q, *tmp;

	if ((p->max_db_conns == 0 && p->max_user_conns == 0) || ctx->shutting_down)
		return;
	HASH_ITER(hh, ctx->pools.by_key, q, tmp)
	{
		bool wants =
		        q->connecting.n < q->waiting.n || (q->logins.n > 0 && q->connecting.n == 0);

		if (q == p || !q->db || !wants ||
		    (q->db_tally != p->db_tally && q->user_tally != p->user_tally))
			continue;
		if (!pool_can_open(q) || !pool_caps_allow(q))
			continue;
		if (proxy_server_open(ctx, q) < 0)
			proxy_pool_connect_failed(q);
		return; /* one slot came free */
	}
}

/* Close idle servers past their lifetime or idle time, keeping the minimum. */
static void trim_idle(struct proxy_ctx *ctx, struct pool *p, double now)
{
	const struct conf *cf = ctx->conf;
	size_t n;
	void **v = snapshot(&p->idle, &n);

	/* oldest-used servers sit at the back of the idle list */
	for (size_t i = n; i-- > 0;) {
		struct proxy_server *s = v[i];
		bool surplus = pool_server_count(p) > (size_t)p->min_size;

		if (s->state != PROXY_SV_IDLE || s->pool != p)
			continue; /* closed or taken by an earlier step */
		if (s->close_needed || !p->db)
			proxy_server_close(s, "database settings changed by a reload");
		else if (!fits_mode(s))
			proxy_server_close(s, "made for a client's startup parameters; pool mode "
			                      "changed");
		else if (lifetime_over(s) && surplus)
			proxy_server_close(s, "server_lifetime reached");
		else if (lifetime_over(s) && !surplus && pool_can_open(p))
			proxy_server_close(s, "server_lifetime reached; replaced");
		else if (cf->server_idle_timeout > 0 && surplus &&
		         now - s->last_used > cf->server_idle_timeout)
			proxy_server_close(s, "server_idle_timeout reached");
		else if (pool_server_count(p) > (size_t)p->pool_size)
			proxy_server_close(s, "pool size lowered");
	}
	free(v);
}

/* Open servers up to min_pool_size, and for clients still waiting. */
static void fill(struct proxy_ctx *ctx, struct pool *p, double now)
{
	const struct conf *cf = ctx->conf;
	double retry = cf->server_login_retry;
	size_t want_min = p->db_missing ? 0 : (size_t)p->min_size;

	if (!p->db || ctx->shutting_down || proxy_admin_paused(ctx, p->db_name))
		return;
	if (p->last_error_at > 0 && now - p->last_error_at < retry && p->connecting.n == 0 &&
	    p->waiting.n == 0)
		return; /* PostgreSQL was unreachable a moment ago: pace retries */
	while ((pool_server_count(p) < want_min || p->connecting.n < p->waiting.n ||
	        (p->logins.n > 0 && p->connecting.n == 0)) &&
	       may_open(ctx, p)) {
		if (db_known_missing(ctx, p) && p->connecting.n == 0) {
			proxy_pool_connect_failed(p);
			break;
		}
		if (proxy_server_open(ctx, p) < 0) {
			proxy_pool_connect_failed(p);
			break;
		}
	}
}

/* Free a pool made from the "*" entry (or whose entry a reload removed)
 * once nothing has used it for autodb_idle_timeout. True if freed. */
static bool reap_unused(struct proxy_ctx *ctx, struct pool *p, double now)
{
	double limit = ctx->conf->autodb_idle_timeout;
	size_t n;
	void **v;

	if (p->db && !p->autodb)
		return false;
	if (p->n_clients > 0 || p->logins.n > 0 || p->used.n > 0 || p->connecting.n > 0) {
		p->unused_since = 0;
		return false;
	}
	if (p->unused_since == 0) {
		p->unused_since = now;
		return false;
	}
	/* a database PostgreSQL says it does not have keeps no pool: nothing
	 * would be served from it, and every name tried would leave one */
	if (limit > 0 && now - p->unused_since < limit && !p->db_missing)
		return false;
	v = snapshot(&p->idle, &n);
	for (size_t i = 0; i < n; i++) {
		struct proxy_server *s = v[i];

		if (s->state == PROXY_SV_IDLE && s->pool == p)
			proxy_server_close(s, "autodb_idle_timeout: pool unused");
	}
	free(v);
	if (pool_server_count(p) > 0)
		return false;
	if (log_current_level >= LOG_LVL_INFO) {
		char d[96], u[96];

		log_info("pool %s/%s freed: unused for %g s", log_escape(d, sizeof(d), p->db_name),
		         log_escape(u, sizeof(u), p->user), now - p->unused_since);
	}
	stats_scope_put(ctx->stats, p->stats_scope);
	proxy_sparams_put(ctx, p->warm_sp);
	pool_destroy(&ctx->pools, p);
	return true;
}

void proxy_pool_janitor(struct proxy_ctx *ctx)
{
	double now = proxy_now(ctx);
	struct pool *p, *tmp;
	size_t n;
	void **v = snapshot(&ctx->clients, &n);

	/* a timeout may close other clients too (a server it releases goes to a
	 * waiting client whose buffered input is bad, a failed pool fails its
	 * queue): every client of the snapshot is still allocated, its state
	 * says whether it is still to be checked */
	for (size_t i = 0; i < n; i++) {
		struct proxy_client *c = v[i];

		if (c->state != PROXY_CL_CLOSING)
			proxy_client_check_timeouts(c, now);
	}
	free(v);
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		trim_idle(ctx, p, now);
		if (reap_unused(ctx, p, now))
			continue;
		fill(ctx, p, now);
	}
}

/* Do two entries connect to the same place as the same login? */
static bool same_target(const struct conf_db *a, const struct conf_db *b)
{
#define SAME(x) ((a->x == NULL && b->x == NULL) || (a->x && b->x && strcmp(a->x, b->x) == 0))
	return a->port == b->port && SAME(host) && SAME(dbname) && SAME(user) && SAME(password) &&
	       SAME(connect_query);
#undef SAME
}

void proxy_pool_reloaded(struct proxy_ctx *ctx, struct pool *p, const struct conf_db *old)
{
	const struct conf_db *db = p->db;
	const char *server_user;
	struct pool_list *lists[] = {&p->idle, &p->used, &p->connecting};
	size_t n;
	void **v;

	if (!db) {
		/* clients with a server keep it until they are done with it */
		fail_removed(p);
		v = snapshot(&p->idle, &n);
		for (size_t i = 0; i < n; i++)
			if (((struct proxy_server *)v[i])->state == PROXY_SV_IDLE)
				proxy_server_close(v[i], "database removed from the configuration");
		free(v);
		return;
	}
	if (old && same_target(old, db))
		return;
	/* a different server or login: what the old one gave does not hold */
	server_user = db->user ? db->user : p->user;
	if (strcmp(server_user, p->server_user) != 0) {
		char *su = strdup(server_user);

		if (su) {
			free(p->server_user);
			p->server_user = su;
		}
	}
	p->db_missing = false;
	p->last_error[0] = '\0';
	p->last_error_at = 0;
	for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]); l++) {
		for (struct pool_node *x = lists[l]->head.next; x != &lists[l]->head; x = x->next)
			((struct proxy_server *)x->owner)->close_needed = true;
	}
	/* idle ones go now; the others when their client is done (server_ready) */
	v = snapshot(&p->idle, &n);
	for (size_t i = 0; i < n; i++)
		if (((struct proxy_server *)v[i])->state == PROXY_SV_IDLE)
			proxy_server_close(v[i], "database settings changed by a reload");
	free(v);
	(void)ctx;
}
