/*
 * invalidation = notify: writes made outside every sluice invalidate too.
 *
 * sql/sluice_notify.sql installs statement-level AFTER INSERT / UPDATE /
 * DELETE / TRUNCATE triggers that NOTIFY CACHE_NOTIFY_CHANNEL with the
 * schema-qualified name of the table written. PostgreSQL delivers a
 * notification when its transaction commits (never for one rolled back),
 * so a notification is a committed write, as a write through sluice is at
 * its COMMIT. For each "notify.<db> = <conninfo>" this file keeps one
 * libpq connection LISTENing and turns each notification into
 * cache_bump(<db>, table): the same generation bump, in Redis and
 * published to every instance, that a write through sluice makes.
 *
 * Everything runs on sluice's libev loop and never blocks it: the
 * connection is made with PQconnectStart / PQconnectPoll driven by an
 * ev_io on PQsocket() (re-armed after each poll: the socket may change
 * between the addresses libpq tries), LISTEN is sent with PQsendQuery and
 * flushed as the socket allows, notifications are read with
 * PQconsumeInput / PQnotifies. A connection that fails, times out or is
 * lost is retried after a wait that doubles from backoff_min to
 * backoff_max and starts again once a LISTEN succeeds.
 *
 * While a listener is not LISTENing, writes made outside sluice to its
 * database are not heard: their entries live until their TTL. So each
 * time a LISTEN takes effect (the first time too: writes made before
 * sluice started were not heard either), the database's generation is
 * bumped, dropping every entry of that database stored before.
 *
 * The conninfo may hold a password: it is never logged or shown; log
 * lines name the database and libpq's error text, escaped.
 */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <libpq-fe.h>

#include "conf/conf.h"
#include "stats/stats.h"

#define NAME_MAX_LEN 127 /* "schema.table", 63 bytes each */

enum listener_state {
	NL_WAIT = 0,   /* not connected: the timer starts the next attempt */
	NL_CONNECTING, /* PQconnectPoll in progress */
	NL_LISTEN,     /* connected; LISTEN sent, its result not yet read */
	NL_UP,         /* LISTENing: notifications bump generations */
};

struct listener {
	struct cache_notify *n;
	char *db;       /* owned: the database name clients use */
	char *conninfo; /* owned: may hold a password, never logged */
	PGconn *conn;   /* owned while connecting or connected */
	ev_io io;       /* on PQsocket(conn); events as libpq asks */
	ev_timer timer; /* NL_WAIT: the retry; NL_CONNECTING/NL_LISTEN: the deadline */
	enum listener_state state;
	double backoff;    /* the next wait after a failure */
	uint64_t received; /* notifications acted on */
	uint64_t failures; /* attempts that failed and connections lost */
	bool ever_up;
	char last_error[160]; /* escaped; "" when none */
};

struct cache_notify {
	struct ev_loop *loop;
	struct cache *cache; /* borrowed: the owner */
	double backoff_min, backoff_max, connect_timeout;
	size_t n;
	struct listener *l; /* owned array of <n> */
};

static const char *state_name(enum listener_state s)
{
	switch (s) {
	case NL_WAIT:
		return "waiting";
	case NL_CONNECTING:
		return "connecting";
	case NL_LISTEN:
		return "listening";
	case NL_UP:
		return "up";
	}
	return "unknown";
}

/* Stop the watchers and close the connection (if any). */
static void drop_conn(struct listener *l)
{
	ev_io_stop(l->n->loop, &l->io);
	ev_timer_stop(l->n->loop, &l->timer);
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
}

/*
 * The attempt or the connection failed because of <why> (libpq's text,
 * or ours): close it, say so, and try again after the backoff.
 */
static void fail(struct listener *l, const char *why)
{
	char db[80], line[160];
	bool was_up = l->state == NL_UP;

	/* libpq's first line says what failed; the rest are hints */
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(why, "\n"), why);
	log_escape(l->last_error, sizeof(l->last_error), line);
	drop_conn(l);
	l->failures++;
	l->state = NL_WAIT;
	log_warn("cache notify: %s: %s%s; writes made outside sluice to it are seen when "
	         "their entries' TTL ends until it listens again; retrying in %.1fs",
	         log_escape(db, sizeof(db), l->db), was_up ? "connection lost: " : "",
	         l->last_error, l->backoff);
	ev_timer_set(&l->timer, l->backoff, 0);
	ev_timer_start(l->n->loop, &l->timer);
	l->backoff *= 2;
	if (l->backoff > l->n->backoff_max)
		l->backoff = l->n->backoff_max;
}

static const char *conn_error(const struct listener *l, const char *dflt)
{
	const char *m = l->conn ? PQerrorMessage(l->conn) : NULL;

	return m && m[0] ? m : dflt;
}

/* Watch PQsocket() for <events>, moving the watcher if the socket changed. */
static void watch(struct listener *l, int events)
{
	int fd = PQsocket(l->conn);

	if (fd < 0) {
		fail(l, "libpq has no socket");
		return;
	}
	if (ev_is_active(&l->io) && l->io.fd == fd &&
	    (l->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(l->n->loop, &l->io);
	ev_io_set(&l->io, fd, events);
	ev_io_start(l->n->loop, &l->io);
}

/* libpq's notices (a WARNING from the server) go to the log, not stderr. */
static void on_notice(void *arg, const char *msg)
{
	struct listener *l = arg;
	char db[80], line[256], m[256];

	snprintf(line, sizeof(line), "%.*s", (int)strcspn(msg, "\n"), msg);
	log_info("cache notify: %s: %s", log_escape(db, sizeof(db), l->db),
	         log_escape(m, sizeof(m), line));
}

static void start_attempt(struct listener *l)
{
	/* libpq makes the connection as the conninfo says; the keywords a
	 * LISTEN connection always wants come first, so the conninfo can
	 * override application_name */
	const char *const keys[] = {"application_name", "dbname", NULL};
	const char *const vals[] = {"sluice-notify", l->conninfo, NULL};

	l->state = NL_CONNECTING;
	l->conn = PQconnectStartParams(keys, vals, 1);
	if (!l->conn) {
		fail(l, "out of memory");
		return;
	}
	if (PQstatus(l->conn) == CONNECTION_BAD) {
		fail(l, conn_error(l, "cannot start the connection"));
		return;
	}
	PQsetNoticeProcessor(l->conn, on_notice, l);
	ev_timer_set(&l->timer, l->n->connect_timeout, 0);
	ev_timer_start(l->n->loop, &l->timer);
	/* before the first poll, libpq's documentation says to wait for
	 * writability */
	watch(l, EV_WRITE);
}

/* Send what libpq has buffered; watch for writability while some is left. */
static void flush_out(struct listener *l)
{
	int r = PQflush(l->conn);

	if (r < 0)
		fail(l, conn_error(l, "cannot send LISTEN"));
	else
		watch(l, r > 0 ? EV_READ | EV_WRITE : EV_READ);
}

static void connected(struct listener *l)
{
	if (PQsetnonblocking(l->conn, 1) != 0 ||
	    !PQsendQuery(l->conn, "LISTEN " CACHE_NOTIFY_CHANNEL)) {
		fail(l, conn_error(l, "cannot send LISTEN"));
		return;
	}
	l->state = NL_LISTEN;
	flush_out(l);
}

static void poll_connect(struct listener *l)
{
	switch (PQconnectPoll(l->conn)) {
	case PGRES_POLLING_READING:
		watch(l, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		watch(l, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		connected(l);
		break;
	case PGRES_POLLING_FAILED:
	default:
		fail(l, conn_error(l, "connection failed"));
		break;
	}
}

/* The LISTEN took effect: from now on every committed write is heard. */
static void listening(struct listener *l)
{
	const char *host = PQhost(l->conn), *port = PQport(l->conn);
	char db[80], h[80];

	ev_timer_stop(l->n->loop, &l->timer);
	l->state = NL_UP;
	l->backoff = l->n->backoff_min;
	l->last_error[0] = 0;
	log_info("cache notify: %s: listening on %s (host %s, port %s)%s",
	         log_escape(db, sizeof(db), l->db), CACHE_NOTIFY_CHANNEL,
	         log_escape(h, sizeof(h), host), port ? port : "-", l->ever_up ? " again" : "");
	l->ever_up = true;
	/* writes made while nobody here listened were not heard */
	cache_bump_db(l->n->cache, l->db);
}

/*
 * A notification's payload names the table written ("schema.table", as
 * the helper's trigger sends it). Anything else on the channel (no
 * payload, one too long or with control characters) still means that
 * something in the database changed: the whole database is bumped.
 */
static void on_notification(struct listener *l, const PGnotify *nt)
{
	const char *t = nt->extra;
	size_t len = t ? strlen(t) : 0;
	bool plain = len > 0 && len <= NAME_MAX_LEN && t[0] != '.' && t[len - 1] != '.';

	if (strcmp(nt->relname, CACHE_NOTIFY_CHANNEL) != 0)
		return;
	for (size_t i = 0; plain && i < len; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			plain = false;
	l->received++;
	if (plain)
		cache_bump(l->n->cache, l->db, &t, 1);
	else
		cache_bump_db(l->n->cache, l->db);
}

static void read_input(struct listener *l)
{
	PGnotify *nt;

	if (!PQconsumeInput(l->conn)) {
		fail(l, conn_error(l, "connection lost"));
		return;
	}
	while (l->state == NL_LISTEN && !PQisBusy(l->conn)) {
		PGresult *res = PQgetResult(l->conn);

		if (!res) {
			listening(l);
			break;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char why[200];

			snprintf(why, sizeof(why), "LISTEN failed: %s", PQresultErrorMessage(res));
			PQclear(res);
			fail(l, why);
			return;
		}
		PQclear(res);
	}
	while ((nt = PQnotifies(l->conn))) {
		if (l->state == NL_UP)
			on_notification(l, nt);
		PQfreemem(nt);
	}
	if (PQstatus(l->conn) == CONNECTION_BAD)
		fail(l, conn_error(l, "connection lost"));
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = w->data;

	(void)loop;
	if (l->state == NL_CONNECTING) {
		poll_connect(l);
		return;
	}
	if (revents & EV_WRITE) {
		flush_out(l);
		if (l->state == NL_WAIT)
			return;
	}
	if (revents & EV_READ)
		read_input(l);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	(void)loop, (void)revents;
	if (l->state == NL_WAIT)
		start_attempt(l);
	else if (l->state != NL_UP)
		fail(l, "timed out connecting and sending LISTEN");
}

struct cache_notify *cache_notify_new(struct ev_loop *loop, struct cache *c,
                                      const struct conf_cache *cc, const struct cache_opts *opts)
{
	struct cache_notify *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->loop = loop;
	n->cache = c;
	n->backoff_min =
	        (opts && opts->notify_backoff_min_ms > 0 ? opts->notify_backoff_min_ms : 500) /
	        1000.0;
	n->backoff_max =
	        (opts && opts->notify_backoff_max_ms > 0 ? opts->notify_backoff_max_ms : 30000) /
	        1000.0;
	n->connect_timeout = 10;
	n->l = calloc(cc->nnotify ? cc->nnotify : 1, sizeof(*n->l));
	if (!n->l)
		goto oom;
	for (size_t i = 0; i < cc->nnotify; i++) {
		struct listener *l = &n->l[i];

		l->n = n;
		l->backoff = n->backoff_min;
		l->db = strdup(cc->notify[i].db);
		l->conninfo = strdup(cc->notify[i].conninfo);
		n->n++;
		if (!l->db || !l->conninfo)
			goto oom;
		ev_io_init(&l->io, io_cb, -1, EV_READ);
		ev_timer_init(&l->timer, timer_cb, 0, 0);
		l->io.data = l->timer.data = l;
	}
	return n;
oom:
	cache_notify_free(n);
	return NULL;
}

void cache_notify_start(struct cache_notify *n)
{
	for (size_t i = 0; n && i < n->n; i++)
		if (n->l[i].state == NL_WAIT && !n->l[i].conn && !ev_is_active(&n->l[i].timer))
			start_attempt(&n->l[i]);
}

void cache_notify_free(struct cache_notify *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++) {
		struct listener *l = &n->l[i];

		drop_conn(l);
		free(l->db);
		if (l->conninfo)
			explicit_bzero(l->conninfo, strlen(l->conninfo));
		free(l->conninfo);
	}
	free(n->l);
	free(n);
}

void cache_notify_each(const struct cache_notify *n,
                       void (*fn)(void *arg, const struct cache_notify_view *v), void *arg)
{
	for (size_t i = 0; n && i < n->n; i++) {
		const struct listener *l = &n->l[i];
		struct cache_notify_view v = {
		        .db = l->db,
		        .state = state_name(l->state),
		        .up = l->state == NL_UP,
		        .received = l->received,
		        .failures = l->failures,
		        .last_error = l->last_error[0] ? l->last_error : NULL,
		};

		fn(arg, &v);
	}
}

void cache_notify_counts(const struct cache_notify *n, struct cache_notify_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; n && i < n->n; i++) {
		out->listeners++;
		out->up += n->l[i].state == NL_UP;
		out->received += n->l[i].received;
		out->failures += n->l[i].failures;
	}
}
