/*
 * Admin console: the pseudo-database (admin_db, default "sluice"; the name
 * "pgbouncer" is always accepted too, for tools that have it hard-coded)
 * where operators and exporters talk to sluice as they would to
 * PgBouncer's console. This file is the dispatcher and runs the commands:
 * PAUSE, RESUME, DISABLE, ENABLE, RECONNECT, KILL, KILL_CLIENT,
 * WAIT_CLOSE, RELOAD, SHUTDOWN, SUSPEND and SET; the views are in
 * admin_views.c
 * (PgBouncer's) and admin_stats.c (sluice's statement statistics).
 *
 * Only the simple query protocol is spoken, as in PgBouncer's console: an
 * extended-protocol batch is skipped up to its Sync and answered with one
 * ERROR that says so, and the session goes on. admin_users may run
 * everything, stats_users only SHOW (and the harmless driver chatter:
 * SET/SHOW of a few session parameters, BEGIN/COMMIT/ROLLBACK).
 *
 * Commands that wait (PAUSE until running transactions are over,
 * WAIT_CLOSE, SHUTDOWN WAIT_FOR_*) hold the console client: it is not read
 * again until the answer is sent, and a short timer polls the condition
 * while any such command waits (nothing runs when none does).
 */
#include "proxy/admin_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stats/stats.h"

/* How often a waiting command looks again: short enough that PAUSE
 * answers promptly after the last transaction ends. */
#define WAIT_POLL 0.02

static void wait_cb(struct ev_loop *loop, ev_timer *w, int revents);

bool proxy_is_admin_db(const struct conf *cf, const char *name)
{
	return strcmp(name, cf->admin_db) == 0 || strcmp(name, "pgbouncer") == 0;
}

struct proxy_admin *admin_state(struct proxy_ctx *ctx)
{
	struct proxy_admin *a = ctx->admin;

	if (a)
		return a;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	ev_init(&a->wait_timer, wait_cb);
	a->wait_timer.data = ctx;
	a->period_start = proxy_now(ctx);
	ctx->admin = a;
	return a;
}

void proxy_admin_free(struct proxy_ctx *ctx)
{
	struct proxy_admin *a = ctx->admin;
	struct admin_db_state *d, *tmp;

	if (!a)
		return;
	ev_timer_stop(ctx->loop, &a->wait_timer);
	HASH_ITER(hh, a->dbs, d, tmp)
	{
		HASH_DEL(a->dbs, d); // NOLINT(clang-analyzer-unix.Malloc)
		free(d->name);
		free(d);
	}
	while (a->waiters) {
		struct admin_waiter *w = a->waiters;

		a->waiters = w->next;
		free(w->db);
		free(w);
	}
	free(a);
	ctx->admin = NULL;
}

static struct admin_db_state *db_state(const struct proxy_admin *a, const char *name)
{
	struct admin_db_state *d = NULL;

	HASH_FIND_STR(a->dbs, name, d);
	return d;
}

bool proxy_admin_paused(const struct proxy_ctx *ctx, const char *db_name)
{
	const struct proxy_admin *a = ctx->admin;
	const struct admin_db_state *d;

	if (!a || (!a->all_paused && a->npaused == 0))
		return false;
	if (a->all_paused)
		return true;
	d = db_state(a, db_name);
	return d && d->paused;
}

bool proxy_admin_disabled(const struct proxy_ctx *ctx, const char *db_name)
{
	const struct proxy_admin *a = ctx->admin;
	const struct admin_db_state *d;

	if (!a || a->ndisabled == 0)
		return false;
	d = db_state(a, db_name);
	return d && d->disabled;
}

/* Set the paused or disabled flag of <name>. -1 on OOM. */
static int set_flag(struct proxy_admin *a, const char *name, bool disabled, bool on)
{
	struct admin_db_state *d = db_state(a, name);
	bool *flag;
	size_t *count = disabled ? &a->ndisabled : &a->npaused;

	if (!d) {
		if (!on)
			return 0;
		d = calloc(1, sizeof(*d));
		if (!d || !(d->name = strdup(name))) {
			free(d);
			return -1;
		}
		HASH_ADD_KEYPTR(hh, a->dbs, d->name, strlen(d->name), d);
	}
	flag = disabled ? &d->disabled : &d->paused;
	if (*flag != on)
		*count += on ? 1 : (size_t)-1;
	*flag = on;
	return 0;
}

/* ---- replies ---- */

static void send_tag(struct proxy_client *c, const char *tag)
{
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_command_complete(&b, tag);
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	(void)proxy_client_send(c, &b, rc);
}

static void syntax_error(struct proxy_client *c, const char *what)
{
	proxy_client_fail_hint(c, PROXY_ERR_ADMIN_SYNTAX,
	                       "SHOW HELP lists the commands of the admin console", "%s", what);
}

/* A one-column, one-row answer to SHOW of a session parameter. */
static void show_param(struct proxy_client *c, const char *name, const char *value)
{
	struct admin_col col = {name, PROTO_OID_TEXT};
	struct admin_table t;

	admin_tbl_begin(&t, &col, 1);
	admin_put_text(&t, value);
	admin_tbl_row(&t);
	admin_tbl_end(c, &t, "SHOW");
}

/* ---- servers and clients of a database ---- */

static bool db_match(const char *db, const char *name)
{
	return !db || strcmp(db, name) == 0;
}

/* Are servers of <db> (NULL: any) still linked, logging in, or (for
 * <close_needed>) marked to be closed? */
static bool servers_busy(struct proxy_ctx *ctx, const char *db, bool close_needed)
{
	for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		const struct proxy_server *s = n->owner;

		if (s->state == PROXY_SV_CLOSING || !db_match(db, s->pool->db_name))
			continue;
		if (close_needed ? s->close_needed
		                 : s->state != PROXY_SV_IDLE && s->state != PROXY_SV_RESET)
			return true;
	}
	return false;
}

/* Close the idle servers of <db> (NULL: every database). */
static void close_idle(struct proxy_ctx *ctx, const char *db, const char *why)
{
	struct pool *p, *tmp;

	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		struct pool_node *n;

		if (!db_match(db, p->db_name))
			continue;
		while ((n = pool_list_first(&p->idle)))
			proxy_server_close(n->owner, why);
	}
}

static bool clients_left(struct proxy_ctx *ctx)
{
	for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		const struct proxy_client *cl = n->owner;

		if (cl->state != PROXY_CL_CLOSING && cl->state != PROXY_CL_ADMIN)
			return true;
	}
	return false;
}

static struct proxy_client *find_client(struct proxy_ctx *ctx, uint64_t id)
{
	for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		struct proxy_client *cl = n->owner;

		if (cl->id == id && cl->state != PROXY_CL_CLOSING)
			return cl;
	}
	return NULL;
}

/* Whether every client's (but the admin console's) and server's output
 * has been written to its socket. */
static bool buffers_flushed(struct proxy_ctx *ctx)
{
	for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		const struct proxy_client *cl = n->owner;

		if (cl->state != PROXY_CL_ADMIN && cl->state != PROXY_CL_CLOSING &&
		    proto_buf_avail(&cl->io.out) > 0)
			return false;
	}
	for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		const struct proxy_server *s = n->owner;

		if (s->state != PROXY_SV_CLOSING && proto_buf_avail(&s->io.out) > 0)
			return false;
	}
	return true;
}

/* ---- commands that wait ---- */

static bool wait_done(struct proxy_ctx *ctx, const struct admin_waiter *w)
{
	switch (w->what) {
	case ADMIN_WAIT_PAUSE:
	case ADMIN_WAIT_SHUTDOWN_S:
		return !servers_busy(ctx, w->db, false);
	case ADMIN_WAIT_CLOSE:
		return !servers_busy(ctx, w->db, true);
	case ADMIN_WAIT_SHUTDOWN_C:
		return !clients_left(ctx);
	case ADMIN_WAIT_SUSPEND:
		return !ctx->suspended || buffers_flushed(ctx);
	default:
		return true;
	}
}

static void wait_cb(struct ev_loop *loop, ev_timer *timer, int revents)
{
	struct proxy_ctx *ctx = timer->data;
	struct proxy_admin *a = ctx->admin;
	struct admin_waiter **pp = &a->waiters;
	bool shutdown = false;

	(void)revents;
	while (*pp) {
		struct admin_waiter *w = *pp;
		struct proxy_client *c = w->client_id ? find_client(ctx, w->client_id) : NULL;
		bool stopping =
		        w->what == ADMIN_WAIT_SHUTDOWN_S || w->what == ADMIN_WAIT_SHUTDOWN_C;

		/* a shutdown waits for its condition even when nobody waits for
		 * the answer (SIGINT, or an asker that went away): exiting at
		 * once would cut the transactions it was meant to let end */
		if ((c || stopping) && !wait_done(ctx, w)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (c) {
			static const char *const tags[] = {
			        [ADMIN_WAIT_PAUSE] = "PAUSE",
			        [ADMIN_WAIT_CLOSE] = "WAIT_CLOSE",
			        [ADMIN_WAIT_SHUTDOWN_S] = "SHUTDOWN",
			        [ADMIN_WAIT_SHUTDOWN_C] = "SHUTDOWN",
			        [ADMIN_WAIT_SUSPEND] = "SUSPEND",
			};

			send_tag(c, tags[w->what]);
			if (c->state == PROXY_CL_ADMIN)
				proxy_io_start_read(ctx, &c->io);
		}
		if (stopping)
			shutdown = true;
		free(w->db);
		free(w);
	}
	if (!a->waiters)
		ev_timer_stop(loop, timer);
	if (shutdown)
		proxy_shutdown(ctx);
}

/* Queue a wait for <what> on <db> for the client <client_id> (0: nobody,
 * a signal asked). -1 when out of memory. */
static int add_waiter(struct proxy_ctx *ctx, uint64_t client_id, enum admin_wait what,
                      const char *db)
{
	struct proxy_admin *a = admin_state(ctx);
	struct admin_waiter *w = calloc(1, sizeof(*w));

	if (!a || !w || (db && !(w->db = strdup(db)))) {
		free(w);
		return -1;
	}
	w->client_id = client_id;
	w->what = what;
	w->next = a->waiters;
	a->waiters = w;
	if (!ev_is_active(&a->wait_timer)) {
		ev_timer_set(&a->wait_timer, WAIT_POLL, WAIT_POLL);
		ev_timer_start(ctx->loop, &a->wait_timer);
	}
	/* perhaps there is nothing to wait for: answered within one poll */
	return 0;
}

/* Hold <c> until <what> on <db> is over (answered by wait_cb). May close
 * <c> (out of memory). */
static void wait_for(struct proxy_client *c, enum admin_wait what, const char *db)
{
	if (add_waiter(c->ctx, c->id, what, db) < 0) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	proxy_io_stop_read(c->ctx, &c->io);
}

/* ---- PAUSE, RESUME, DISABLE, ENABLE ---- */

/* <db>: a database name, or NULL for all. The name must be in the
 * configuration, as PgBouncer requires. */
static bool known_db(struct proxy_client *c, const char *db)
{
	if (!db || conf_find_db(c->ctx->conf, db))
		return true;
	proxy_client_fail_hint(c, PROXY_ERR_ADMIN_SYNTAX, "SHOW DATABASES lists the databases",
	                       "no such database: %s", db);
	return false;
}

static void cmd_pause(struct proxy_client *c, const char *db, bool kill)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_admin *a = admin_state(ctx);

	if (!known_db(c, db))
		return;
	if (!a || (db && set_flag(a, db, false, true) < 0)) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	if (!db)
		a->all_paused = true;
	if (kill) {
		size_t n = ctx->clients.n, i = 0;
		struct proxy_client **v =
		        n ? malloc(n * sizeof(*v)) : NULL; // NOLINT(bugprone-sizeof-expression)

		/* a snapshot: closing a client edits the list */
		for (struct pool_node *x = ctx->clients.head.next; v && x != &ctx->clients.head;
		     x = x->next) {
			struct proxy_client *cl = x->owner;

			if (cl != c && cl->pool && db_match(db, cl->db_name))
				v[i++] = cl;
		}
		for (size_t k = 0; k < i; k++)
			if (v[k]->state != PROXY_CL_CLOSING)
				proxy_client_fail(
				        v[k], PROXY_ERR_SHUTDOWN,
				        "terminating connection: KILL on the admin console");
		free(v);
		for (struct pool_node *x = ctx->servers.head.next; x != &ctx->servers.head;) {
			struct proxy_server *s = x->owner;

			x = x->next;
			if (s->state != PROXY_SV_CLOSING && db_match(db, s->pool->db_name))
				proxy_server_close(s, "KILL on the admin console");
		}
		send_tag(c, "KILL");
		return;
	}
	close_idle(ctx, db, "database paused (PAUSE on the admin console)");
	if (!servers_busy(ctx, db, false)) {
		send_tag(c, "PAUSE");
		return;
	}
	wait_for(c, ADMIN_WAIT_PAUSE, db);
}

static void resume(struct proxy_ctx *ctx, const char *db)
{
	struct proxy_admin *a = admin_state(ctx);

	if (!a)
		return;
	if (db) {
		(void)set_flag(a, db, false, false);
	} else {
		struct admin_db_state *d, *tmp;

		a->all_paused = false;
		HASH_ITER(hh, a->dbs, d, tmp)
		(void)set_flag(a, d->name, false, false);
	}
	/* clients held meanwhile get servers now */
	proxy_pool_janitor(ctx);
}

static void cmd_resume(struct proxy_client *c, const char *db)
{
	struct proxy_admin *a = admin_state(c->ctx);

	if (!known_db(c, db))
		return;
	if (a && db && a->all_paused) {
		proxy_client_fail(c, PROXY_ERR_ADMIN_SYNTAX,
		                  "every database is paused: RESUME without a name resumes them");
		return;
	}
	resume(c->ctx, db);
	/* RESUME also ends a SUSPEND, as PgBouncer's does */
	if (!db && c->ctx->suspended)
		proxy_thaw_all(c->ctx);
	send_tag(c, "RESUME");
}

/*
 * SUSPEND, as PgBouncer's: no client (once logged in) or server socket is
 * read any more, and the answer comes once everything already read has
 * been written out, so nothing is in sluice's buffers. Logins and the
 * admin console go on; RESUME reads the sockets again. (PgBouncer uses it
 * to hand its sockets to a new process; sluice has no such hand-over, so
 * it serves to freeze traffic with nothing half-sent, e.g. around a
 * failover, without closing a connection.) May close <c> (out of memory).
 */
static void cmd_suspend(struct proxy_client *c)
{
	if (c->ctx->suspended) {
		proxy_client_fail_hint(c, PROXY_ERR_ADMIN_SYNTAX, "RESUME ends it",
		                       "already suspended");
		return;
	}
	c->ctx->suspended = true;
	wait_for(c, ADMIN_WAIT_SUSPEND, NULL);
}

void proxy_admin_pause_all(struct proxy_ctx *ctx, bool pause)
{
	struct proxy_admin *a = admin_state(ctx);

	if (!a)
		return;
	if (!pause) {
		resume(ctx, NULL);
		if (ctx->suspended) /* SIGUSR2 is RESUME: it ends a SUSPEND too */
			proxy_thaw_all(ctx);
		return;
	}
	a->all_paused = true;
	close_idle(ctx, NULL, "paused (SIGUSR1)");
}

static void cmd_enable(struct proxy_client *c, const char *db, bool disable)
{
	struct proxy_admin *a = admin_state(c->ctx);

	if (!db) {
		syntax_error(c, disable ? "DISABLE needs a database name"
		                        : "ENABLE needs a database name");
		return;
	}
	if (!known_db(c, db))
		return;
	if (!a || set_flag(a, db, true, disable) < 0) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	send_tag(c, disable ? "DISABLE" : "ENABLE");
}

/* ---- RECONNECT, KILL_CLIENT, SHUTDOWN ---- */

static void cmd_reconnect(struct proxy_client *c, const char *db)
{
	struct proxy_ctx *ctx = c->ctx;

	if (!known_db(c, db))
		return;
	for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		struct proxy_server *s = n->owner;

		if (db_match(db, s->pool->db_name))
			s->close_needed = true; /* closed when released (proxy_pool_server_ready) */
	}
	close_idle(ctx, db, "RECONNECT on the admin console");
	send_tag(c, "RECONNECT");
}

static void cmd_kill_client(struct proxy_client *c, const char *arg)
{
	char *end;
	unsigned long long id;
	struct proxy_client *victim;

	if (!arg) {
		syntax_error(c, "KILL_CLIENT needs a client id (the id column of SHOW CLIENTS)");
		return;
	}
	if (strncasecmp(arg, "c-", 2) == 0)
		arg += 2;
	id = strtoull(arg, &end, 10);
	if (end == arg || *end) {
		syntax_error(c, "KILL_CLIENT needs a client id (the id column of SHOW CLIENTS)");
		return;
	}
	victim = find_client(c->ctx, id);
	if (!victim) {
		proxy_client_fail_hint(c, PROXY_ERR_ADMIN_SYNTAX, "SHOW CLIENTS lists the clients",
		                       "no client with id %llu", id);
		return;
	}
	if (victim != c)
		proxy_client_fail(victim, PROXY_ERR_SHUTDOWN,
		                  "terminating connection: KILL_CLIENT on the admin console");
	send_tag(c, "KILL_CLIENT");
	if (victim == c)
		proxy_client_close(c);
}

static void stop_listening(struct proxy_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nlisteners; i++)
		ev_io_stop(ctx->loop, &ctx->listeners[i].io);
	ev_timer_stop(ctx->loop, &ctx->accept_pause);
}

/* No new transaction starts, the idle servers go, no new client comes in:
 * what SHUTDOWN WAIT_FOR_SERVERS and SIGINT share. */
static void begin_safe_shutdown(struct proxy_ctx *ctx)
{
	struct proxy_admin *a = admin_state(ctx);

	if (a)
		a->all_paused = true;
	stop_listening(ctx);
	close_idle(ctx, NULL, "shutting down");
}

void proxy_admin_safe_shutdown(struct proxy_ctx *ctx)
{
	struct proxy_admin *a = admin_state(ctx);

	if (ctx->shutting_down || (a && a->safe_shutdown))
		return; /* a second SIGINT changes nothing; SIGTERM cuts it short */
	if (a)
		a->safe_shutdown = true;
	begin_safe_shutdown(ctx);
	if (add_waiter(ctx, 0, ADMIN_WAIT_SHUTDOWN_S, NULL) < 0) {
		log_error("out of memory: shutting down at once");
		proxy_shutdown(ctx);
	}
}

static void cmd_shutdown(struct proxy_client *c, const char *arg)
{
	struct proxy_ctx *ctx = c->ctx;

	if (!arg) {
		send_tag(c, "SHUTDOWN");
		proxy_shutdown(ctx);
		return;
	}
	if (strcasecmp(arg, "wait_for_servers") == 0) {
		/* no new transaction starts; the running ones end */
		begin_safe_shutdown(ctx);
		wait_for(c, ADMIN_WAIT_SHUTDOWN_S, NULL);
	} else if (strcasecmp(arg, "wait_for_clients") == 0) {
		stop_listening(ctx);
		wait_for(c, ADMIN_WAIT_SHUTDOWN_C, NULL);
	} else {
		syntax_error(c, "SHUTDOWN takes WAIT_FOR_SERVERS, WAIT_FOR_CLIENTS or nothing");
	}
}

/* ---- SET ---- */

/* Session parameters drivers set or ask for on connect; the console
 * answers as a PostgreSQL server with these settings would. */
static const char *const chatter[][2] = {
        {"client_encoding", "UTF8"},
        {"timezone", "UTC"},
        {"datestyle", "ISO, MDY"},
        {"standard_conforming_strings", "on"},
        {"default_transaction_isolation", "read committed"},
};

static const char *chatter_value(const char *name)
{
	for (size_t i = 0; i < sizeof(chatter) / sizeof(chatter[0]); i++)
		if (strcasecmp(chatter[i][0], name) == 0)
			return chatter[i][1];
	return NULL;
}

/* "SET key = value" or "SET key TO value", from the original text <raw>
 * (after "set "): the key into <key>, the value (quotes removed) into
 * <val>. False on a syntax error. */
static bool parse_set(const char *raw, char *key, size_t klen, char *val, size_t vlen)
{
	size_t k = 0, v = 0;

	while (*raw && (isalnum((unsigned char)*raw) || *raw == '_') && k + 1 < klen)
		key[k++] = (char)tolower((unsigned char)*raw++);
	key[k] = '\0';
	while (*raw == ' ')
		raw++;
	if (*raw == '=')
		raw++;
	else if (strncasecmp(raw, "to ", 3) == 0)
		raw += 3;
	else
		return false;
	while (*raw == ' ')
		raw++;
	if (*raw == '\'') {
		raw++;
		while (*raw && v + 1 < vlen) {
			if (*raw == '\'' && raw[1] == '\'') {
				val[v++] = '\'';
				raw += 2;
				continue;
			}
			if (*raw == '\'')
				break;
			val[v++] = *raw++;
		}
		if (*raw != '\'')
			return false;
		raw++;
	} else {
		while (*raw && *raw != ' ' && v + 1 < vlen)
			val[v++] = *raw++;
	}
	val[v] = '\0';
	while (*raw == ' ')
		raw++;
	return k > 0 && *raw == '\0';
}

static void cmd_set(struct proxy_client *c, const char *raw)
{
	char key[64], val[1024], err[512];

	if (!parse_set(raw, key, sizeof(key), val, sizeof(val))) {
		syntax_error(c, "SET expects: SET key = value");
		return;
	}
	if (chatter_value(key)) {
		send_tag(c, "SET"); /* a driver's session setup: nothing to change */
		return;
	}
	if (!c->admin) {
		proxy_client_fail(c, PROXY_ERR_ADMIN_DENIED,
		                  "permission denied: only admin_users may run SET");
		return;
	}
	if (conf_set(c->ctx->conf, key, val, err, sizeof(err)) < 0) {
		proxy_client_fail(c, PROXY_ERR_ADMIN_SETTING, "SET %s failed: %s", key, err);
		return;
	}
	proxy_apply_conf(c->ctx);
	if (log_current_level >= LOG_LVL_INFO) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_info("%s: SET %s", who, key);
	}
	send_tag(c, "SET");
}

/* ---- dispatch ---- */

/*
 * Squeeze blanks in <in>, drop trailing ';' and blanks, into <out>;
 * lower-cased when <lower> (for matching), as written otherwise (for
 * arguments: database names and SET values keep their case).
 */
static void normalize(const char *in, char *out, size_t len, bool lower)
{
	size_t o = 0;
	bool blank = false;

	while (*in && isspace((unsigned char)*in))
		in++;
	for (; *in && o + 1 < len; in++) {
		if (isspace((unsigned char)*in)) {
			blank = true;
			continue;
		}
		if (blank && o > 0 && o + 1 < len)
			out[o++] = ' ';
		blank = false;
		if (o + 1 < len)
			out[o++] = lower ? (char)tolower((unsigned char)*in) : *in;
	}
	while (o > 0 && (out[o - 1] == ';' || out[o - 1] == ' '))
		o--;
	out[o] = '\0';
}

/* Does <cmd> start with the word <word>? Then <*arg> is what follows
 * (in <raw>, the original case), or NULL when nothing does. */
static bool word(const char *cmd, const char *raw, const char *w, const char **arg)
{
	size_t n = strlen(w);

	if (strncmp(cmd, w, n) != 0 ||
	    (cmd[n] != '\0' && cmd[n] != ' ')) // NOLINT: cmd matched n bytes, so cmd[n] is read
		return false;
	*arg = cmd[n] == ' ' ? raw + n + 1 : NULL;
	return true;
}

static bool admin_only(struct proxy_client *c)
{
	if (c->admin)
		return true;
	proxy_client_fail(c, PROXY_ERR_ADMIN_DENIED,
	                  "permission denied: only admin_users may run this command; "
	                  "stats_users may run SHOW");
	return false;
}

static void run_command(struct proxy_client *c, const char *sql)
{
	char cmd[1024], raw[1024];
	const char *arg;

	normalize(sql, cmd, sizeof(cmd), true);
	normalize(sql, raw, sizeof(raw), false);
	if (cmd[0] == '\0') {
		struct proto_buf b;

		proto_buf_init(&b);
		(void)proxy_client_send(
		        c, &b,
		        proto_put_msg(&b, 'I', NULL, 0) < 0 || proto_put_rfq(&b, 'I') < 0 ? -1 : 0);
		return;
	}
	if (word(cmd, raw, "show", &arg)) {
		const char *what = arg ? cmd + 5 : "";
		const char *v = chatter_value(what);

		if (v)
			show_param(c, what, v);
		else if (!proxy_admin_view(c, what) && !proxy_admin_stats_command(c, cmd))
			syntax_error(c, arg ? "unknown SHOW view" : "SHOW needs a view name");
		return;
	}
	if (strcmp(cmd, "begin") == 0 || strcmp(cmd, "start transaction") == 0) {
		send_tag(c, "BEGIN"); /* drivers in non-autocommit mode */
		return;
	}
	if (strcmp(cmd, "commit") == 0 || strcmp(cmd, "end") == 0) {
		send_tag(c, "COMMIT");
		return;
	}
	if (strcmp(cmd, "rollback") == 0 || strcmp(cmd, "abort") == 0) {
		send_tag(c, "ROLLBACK");
		return;
	}
	if (word(cmd, raw, "set", &arg)) {
		if (!arg)
			syntax_error(c, "SET expects: SET key = value");
		else
			cmd_set(c, arg);
		return;
	}
	if (strcmp(cmd, "reset stats") == 0 && c->admin) {
		struct pool *p, *tmp;

		HASH_ITER(hh, c->ctx->pools.by_key, p, tmp)
		{
			memset(&p->st, 0, sizeof(p->st));
			memset(&p->prev, 0, sizeof(p->prev));
			memset(&p->avg, 0, sizeof(p->avg));
		}
	}
	if (proxy_admin_stats_command(c, cmd))
		return;
	if (!admin_only(c))
		return;
	if (word(cmd, raw, "pause", &arg))
		cmd_pause(c, arg, false);
	else if (word(cmd, raw, "kill", &arg))
		cmd_pause(c, arg, true);
	else if (word(cmd, raw, "resume", &arg))
		cmd_resume(c, arg);
	else if (strcmp(cmd, "suspend") == 0)
		cmd_suspend(c);
	else if (word(cmd, raw, "disable", &arg))
		cmd_enable(c, arg, true);
	else if (word(cmd, raw, "enable", &arg))
		cmd_enable(c, arg, false);
	else if (word(cmd, raw, "reconnect", &arg))
		cmd_reconnect(c, arg);
	else if (word(cmd, raw, "kill_client", &arg))
		cmd_kill_client(c, arg);
	else if (word(cmd, raw, "wait_close", &arg)) {
		if (known_db(c, arg))
			wait_for(c, ADMIN_WAIT_CLOSE, arg);
	} else if (strcmp(cmd, "reload") == 0) {
		char err[600];

		if (proxy_reload(c->ctx, err, sizeof(err)) < 0)
			proxy_client_fail(c, PROXY_ERR_ADMIN_RELOAD, "reload failed: %s", err);
		else
			send_tag(c, "RELOAD");
	} else if (word(cmd, raw, "shutdown", &arg))
		cmd_shutdown(c, arg);
	else
		syntax_error(c, "unknown admin command");
}

void proxy_admin_tick(struct proxy_ctx *ctx)
{
	struct proxy_admin *a = admin_state(ctx);
	double now = proxy_now(ctx), period = ctx->conf->stats_period;

	if (!a)
		return;
	if (period < 1)
		period = 1; /* 0 would fold every tick: no period to average over */
	if (now - a->period_start >= period) {
		proxy_admin_stats_period(ctx, now - a->period_start);
		a->period_start = now;
	}
}

void proxy_admin_welcome(struct proxy_client *c)
{
	static const char *const params[][2] = {
	        {"server_version", "15.0 (sluice 0.1.0)"},
	        {"server_encoding", "UTF8"},
	        {"client_encoding", "UTF8"},
	        {"DateStyle", "ISO, MDY"},
	        {"TimeZone", "UTC"},
	        {"integer_datetimes", "on"},
	        {"standard_conforming_strings", "on"},
	        {"is_superuser", "off"},
	        {"application_name", ""},
	};
	struct proto_buf b;
	int rc = 0;

	proto_buf_init(&b);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]) && rc == 0; i++)
		rc = proto_put_param_status(&b, params[i][0], params[i][1]);
	if (rc == 0)
		rc = proto_put_backend_key(&b, 0, 0);
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	if (proxy_client_send(c, &b, rc) < 0)
		return;
	if (log_current_level >= LOG_LVL_INFO) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_info("%s: admin console login", who);
	}
	proxy_client_set_state(c, PROXY_CL_ADMIN);
}

void proxy_admin_message(struct proxy_client *c, const struct proto_msg *m)
{
	struct proto_reader r;
	const char *sql;

	if (c->admin_skip && m->type != 'S' && m->type != 'X')
		return; /* the rest of an extended-protocol batch */
	switch (m->type) {
	case 'Q':
		proto_reader_init(&r, m->body, m->body_len);
		sql = proto_get_str(&r);
		if (!sql) {
			proxy_client_fail(c, PROXY_ERR_PROTOCOL, "malformed Query message");
			return;
		}
		run_command(c, sql);
		return;
	case 'X':
		proxy_client_close(c);
		return;
	case 'S':
		if (!c->admin_skip) {
			struct proto_buf b;

			proto_buf_init(&b);
			(void)proxy_client_send(c, &b, proto_put_rfq(&b, 'I'));
			return;
		}
		c->admin_skip = false;
		proxy_client_fail(c, PROXY_ERR_ADMIN_EXTENDED,
		                  "the admin console supports only the simple query protocol");
		return;
	case 'H':
		return; /* Flush: nothing is pending */
	case 'P':
	case 'B':
	case 'D':
	case 'E':
	case 'C':
		/* answered at the batch's Sync, as PostgreSQL answers an error
		 * in a batch; the connection stays usable */
		c->admin_skip = true;
		return;
	case 'F':
		proxy_client_fail(c, PROXY_ERR_ADMIN_EXTENDED,
		                  "the admin console supports only the simple query protocol");
		return;
	default:
		proxy_client_fail(
		        c, PROXY_ERR_ADMIN_PROTOCOL,
		        "the admin console supports only simple queries (got message '%c')",
		        m->type >= 32 && m->type < 127 ? m->type : '?');
		return;
	}
}
