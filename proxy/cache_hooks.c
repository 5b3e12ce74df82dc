/*
 * The proxy's side of the result cache (cache/): which client Query or
 * extended-protocol group is looked up, serving a hit without a server, capturing a miss's reply as
 * it streams to the client, and bumping the generations of the tables a
 * committed write touched. relay.c, client.c and backrelay.c call in here
 * with one line each; everything else about the cache lives in this file.
 *
 * The rule above all is that a hit returns only what a direct connection
 * would have returned. What that takes here:
 *  - Only a whole Query of one statement is looked up, and only when the
 *    client's server (if it has one) is quiet: nothing in flight, status
 *    'I'. Its reply is then the next thing the client gets, so a hit goes
 *    out in order, and a leader's reply is the next one from the server.
 *  - The key holds the exact text of the statement as the client sent it
 *    (literals included: the normalized text would map "id = 1" and
 *    "id = 2" to one entry), the database, the role, and every session
 *    setting that shapes the bytes of a result and follows the client
 *    (client_encoding, DateStyle, TimeZone, IntervalStyle,
 *    standard_conforming_strings, track_extra_parameters). A SET of
 *    anything else, SET ROLE and SET SESSION AUTHORIZATION stop caching
 *    for the rest of that client's session.
 *  - Writes are collected per client as its statements are sent (the
 *    parser's written[] tables; the whole database when the parser cannot
 *    name them: DDL without a table, a function that is not PostgreSQL's
 *    own, DO, CALL, a FunctionCall, text it could not read) and bumped at the
 *    ReadyForQuery that ends their transaction with status 'I', unless
 *    the transaction was rolled back. A client that leaves with writes
 *    collected bumps them then: they may have committed.
 *  - While a lookup is pending the client's input is not read; the
 *    messages it pipelined stay buffered behind the Query.
 *
 * The extended protocol is looked up one group at a time: the messages
 * from the head of the client's input up to and including a Sync, all
 * already read, in the form drivers send for one statement:
 *     [Parse s] Bind "" s [Describe portal ""] Execute "" 0 Sync
 * with nothing else between. The text of <s> must be known: the group's
 * own Parse (unnamed or, in transaction mode, named), or a named statement
 * of the client's: in transaction mode prepared.c keeps its text, in
 * session mode this file does (see "named statements in session mode"
 * below). Any
 * other form (a named portal, a row limit, a Flush, several Executes
 * before one Sync, a group not read whole yet, a statement not known) goes
 * to PostgreSQL and, when marked, counts as "extended_protocol". The key
 * adds to a Query's the parameter types of the Parse, the Bind's
 * parameters and format codes, whether the portal is described, and the
 * shape the client was told of a named statement (so that it never gets
 * rows of another shape than the one it decodes by; a first Describe of a
 * named statement goes to PostgreSQL, which tells prepared.c the shape).
 * A hit replays ParseComplete (with a Parse), BindComplete, the
 * RowDescription (with a Describe), the rows and CommandComplete, then
 * ReadyForQuery. What a hit leaves undone at the server is made up:
 *  - a named Parse answered from the cache names the statement for the
 *    client in prepared.c's registry, which prepares it on any server
 *    that lacks it when a later Bind misses (transaction mode only: in
 *    session mode a named Parse is never answered from the cache);
 *  - an unnamed Parse answered from the cache leaves the server's unnamed
 *    statement another one: the Parse is kept, and sent first (its reply
 *    hidden, the tracker told of it) if the client later binds or
 *    describes the unnamed statement without parsing it again; a Close of
 *    it, a Parse of another or a Query (which replaces it at PostgreSQL)
 *    forgets it.
 *
 * Named statements in session mode. The client's own server holds them,
 * so a Bind of one may be answered from the cache once sluice knows, for
 * sure, what that name means at the server right now. Each client follows
 * its requests' replies for that (struct sess_*): a Parse of a name is
 * pending until its ParseComplete; an ErrorResponse makes the server skip
 * to the Sync, so a Parse not answered by then never happened. The replies
 * come in the order of the requests: a ring holds, in order, the requests
 * whose replies tell something (Parse: '1'; Describe: 'T' / 'n'; Sync,
 * Query and FunctionCall: 'Z'). While one of the first two is pending,
 * every reply is read (proxy_cache_capturing). A name is forgotten at once
 * when a request sent may drop it: a Close of it, a Parse of it (it
 * replaces, or fails), DEALLOCATE of any form or DISCARD ALL (everything
 * is forgotten), a call of a function that is not PostgreSQL's own, DO or
 * CALL (it may run DEALLOCATE as dynamic SQL), a statement sluice cannot
 * name. Its shape is that of the
 * first RowDescription PostgreSQL gave for it (Describe of the statement,
 * or of the unnamed portal bound to it); a statement not described yet is
 * not served, and the key holds the shape. A request sluice cannot follow
 * (more than the ring holds, a Query inside an unsynced extended batch,
 * replies that do not match) ends following for that client: nothing of
 * its is served from then on. Assumed: PostgreSQL's own functions do not
 * deallocate prepared statements.
 */
#include "proxy/proxy.h"
#include "proxy/stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cache/cache.h"
#include "stats/stats.h"

/* Tables written in the open transaction that are remembered by name;
 * beyond, the whole database is bumped. */
#define PEND_MAX 16
/* Session settings laid out for the key; longer values are not cached. */
#define SETTINGS_MAX 1024

/* Session mode: named statements followed per client, and their bytes. */
#define SESS_MAX_STMTS 1000
#define SESS_MAX_BYTES (1u << 20)
/* Requests awaiting a reply in the ring; beyond, the client is not followed. */
#define SESS_RING_MAX 1024

/* A named statement of a session-mode client: pending (owned by its ring
 * entry) until PostgreSQL accepted it, then in the client's map. */
struct sess_stmt {
	UT_hash_handle hh; /* by name */
	UT_hash_handle hs; /* by serial */
	uint64_t serial;   /* never 0; the same name parsed again is another */
	uint64_t shape;    /* of the first RowDescription given for it, if has_shape */
	bool has_shape;
	bool dead; /* pending: forgotten before its ParseComplete (Close, DEALLOCATE) */
	size_t bytes;
	uint8_t *types; /* int16 count, int32 OIDs */
	size_t types_len;
	char *text;
	char name[]; /* NUL-terminated */
};

enum sess_kind {
	SESS_PARSE = 1, /* answered by '1'; <st> is owned (NULL: not kept) */
	SESS_DESCRIBE,  /* answered by 'T' or 'n'; <serial> of the statement, 0 = none */
	SESS_SYNC,      /* answered by 'Z' (Sync, Query, FunctionCall) */
};

struct sess_req {
	uint8_t kind;
	uint64_t serial;
	struct sess_stmt *st;
};

enum cl_cache_state {
	CL_NONE = 0, /* nothing decided for the head message */
	CL_PENDING,  /* a lookup is out: the client is not read */
	CL_GO,       /* the head Query goes to PostgreSQL (a bypass, or a miss we lead) */
};

struct proxy_cl_cache {
	struct cache_lookup lk; /* lk.leader: told CACHE_MISS, must store or abandon */
	struct cache_capture cap;
	uint32_t ttl_s;      /* of the statement led */
	uint64_t fp;         /* the scanner's fingerprint of the Query looked up */
	uint8_t st;          /* enum cl_cache_state */
	bool capturing;      /* the leader's reply is streaming through <cap> */
	bool role_changed;   /* SET ROLE / SET SESSION AUTHORIZATION was sent */
	bool state_changed;  /* a SET of a setting the key does not hold */
	bool pend_db;        /* a write the parser cannot name: bump the database */
	bool last_rollback;  /* the last CommandComplete since ReadyForQuery: ROLLBACK */
	bool saw_commit;     /* a COMMIT since the last ReadyForQuery */
	bool ext;            /* the lookup is of an extended-protocol group */
	bool p_decided;      /* the head Parse was decided here (counted, if at all) */
	uint8_t *lost_parse; /* owned: an unnamed Parse answered from the cache */
	size_t lost_len;
	uint8_t npend;        /* entries of <pend> */
	char *pend[PEND_MAX]; /* owned: tables written in the transaction */
	/* session mode: named statements (see the top of this file) */
	struct sess_stmt *stmts;     /* owned: accepted, by name (hh) */
	struct sess_stmt *by_serial; /* the same, by serial (hs) */
	unsigned nstmts;             /* accepted and pending */
	size_t stmt_bytes;           /* theirs */
	struct sess_req *ring;       /* owned: requests awaiting replies, in order */
	unsigned ring_cap, ring_head, ring_n;
	unsigned lead_z;        /* Z-answered requests before every ring entry */
	unsigned nwatch;        /* Parse and Describe entries in the ring */
	uint64_t portal_serial; /* the statement the unnamed portal was bound to */
	uint64_t next_serial;
	bool sess_on;   /* session mode when made: named statements are followed */
	bool ext_open;  /* an extended-protocol request since the last Sync */
	bool sess_lost; /* not followed: nothing named is served */
};

/* Per process: the scanner's buffer for the text of a Query looked up. */
static char scan_buf[8192];

bool proxy_cache_on(const struct proxy_ctx *ctx)
{
	return ctx->cache != NULL;
}

bool proxy_cache_waiting(const struct proxy_client *c)
{
	return c->cache && c->cache->st == CL_PENDING;
}

bool proxy_cache_capturing(const struct proxy_server *s)
{
	const struct proxy_cl_cache *cc = s->client ? s->client->cache : NULL;

	/* a Parse or Describe being followed: its reply must be seen */
	return cc && (cc->capturing || cc->nwatch > 0);
}

static struct proxy_cl_cache *cl_cache(struct proxy_client *c)
{
	if (!c->cache) {
		c->cache = calloc(1, sizeof(*c->cache));
		if (c->cache) {
			cache_capture_init(&c->cache->cap, c->ctx->conf->cache.max_result_bytes);
			/* named statements are followed from the start of a session
			 * (proxy_cache_sent checks that nothing came before) */
			c->cache->sess_on = c->pool && c->pool->mode == CONF_POOL_SESSION;
		}
	}
	return c->cache;
}

/* ---- startup, reload, exit (main.c) ---- */

int proxy_cache_init(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	const struct conf_cache *cc = &ctx->conf->cache;

	if (!cc->enabled)
		return 0;
	ctx->cache_rules = cache_rules_new();
	if (!ctx->cache_rules || cache_rules_load(ctx->cache_rules, cc) < 0) {
		snprintf(err, errlen, "cache: out of memory");
		return -1;
	}
	ctx->cache = cache_new(ctx->loop, cc, NULL, err, errlen);
	return ctx->cache ? 0 : -1;
}

void proxy_cache_start(struct proxy_ctx *ctx)
{
	if (ctx->cache) {
		cache_start(ctx->cache);
		log_info("cache: on, Redis at %s", ctx->conf->cache.redis_url);
	}
}

void proxy_cache_reload(struct proxy_ctx *ctx, const struct conf *nc)
{
	if (nc->cache.enabled != (ctx->cache != NULL))
		log_warn("[cache] enabled changes need a restart");
	if (ctx->cache_rules && cache_rules_load(ctx->cache_rules, &nc->cache) < 0)
		log_error("cache: out of memory loading the rules; the old ones stay");
}

void proxy_cache_free(struct proxy_ctx *ctx)
{
	if (ctx->cache)
		cache_free(ctx->cache);
	ctx->cache = NULL;
	cache_rules_free(ctx->cache_rules);
	ctx->cache_rules = NULL;
}

/* ---- writes ---- */

static void pend_table(struct proxy_cl_cache *cc, const char *t)
{
	for (unsigned i = 0; i < cc->npend; i++)
		if (strcmp(cc->pend[i], t) == 0)
			return;
	if (cc->npend == PEND_MAX || !(cc->pend[cc->npend] = strdup(t))) {
		cc->pend_db = true;
		return;
	}
	cc->npend++;
}

static void pend_clear(struct proxy_cl_cache *cc)
{
	for (unsigned i = 0; i < cc->npend; i++)
		free(cc->pend[i]);
	cc->npend = 0;
	cc->pend_db = false;
}

/* The writes collected are committed (or may be): bump them. */
static void pend_bump(struct proxy_client *c, struct proxy_cl_cache *cc)
{
	struct cache *ca = c->ctx->cache;

	if (cc->pend_db)
		cache_bump_db(ca, c->db_name);
	else if (cc->npend)
		cache_bump(ca, c->db_name, (const char *const *)cc->pend, cc->npend);
	pend_clear(cc);
}

/* What one statement sent to PostgreSQL may change: its tables, or the
 * whole database when they are not known. */
static void note_stmt(struct proxy_ctx *ctx, struct proxy_cl_cache *cc, uint64_t fp, uint32_t ss)
{
	const struct stats_shape_info *si = fp ? stats_shape_find(ctx->stats, fp) : NULL;

	if (ss & (STATS_SS_ROLE | STATS_SS_AUTH))
		cc->role_changed = true;
	if (ss & STATS_SS_SET)
		cc->state_changed = true;
	if (!si || !si->parsed || si->tables_cut) {
		cc->pend_db = true;
		return;
	}
	/* a function of the user's (or DO, CALL) may write anything, and the
	 * parser cannot see inside it; PostgreSQL's own (now(), random(),
	 * nextval()) write no table */
	if (si->unknown_fn)
		cc->pend_db = true;
	if (si->writes || si->modifying_cte) {
		if (si->nwritten == 0)
			cc->pend_db = true;
		for (unsigned i = 0; i < si->nwritten; i++)
			pend_table(cc, si->written[i]);
	}
}

/* ---- named statements in session mode (see the top of this file) ---- */

static bool sess_mode(const struct proxy_client *c)
{
	return c->pool && c->pool->mode == CONF_POOL_SESSION;
}

static struct sess_req *ring_at(struct proxy_cl_cache *cc, unsigned i)
{
	return &cc->ring[(cc->ring_head + i) % cc->ring_cap];
}

static void sess_stmt_free(struct proxy_cl_cache *cc, struct sess_stmt *st)
{
	if (!st)
		return;
	cc->nstmts--;
	cc->stmt_bytes -= st->bytes;
	free(st->types);
	free(st->text);
	free(st);
}

/* A pending statement for a Parse of <name>; NULL (it is not served) when
 * the client holds as many as it may, or out of memory. */
static struct sess_stmt *sess_new(struct proxy_cl_cache *cc, const char *name, const char *text,
                                  const uint8_t *types, size_t types_len)
{
	size_t nlen = strlen(name), tlen = strlen(text);
	size_t bytes = sizeof(struct sess_stmt) + nlen + 1 + tlen + 1 + types_len;
	struct sess_stmt *st;

	if (cc->nstmts >= SESS_MAX_STMTS || cc->stmt_bytes + bytes > SESS_MAX_BYTES)
		return NULL;
	if (!(st = calloc(1, sizeof(*st) + nlen + 1)))
		return NULL;
	st->text = malloc(tlen + 1);
	st->types = malloc(types_len);
	if (!st->text || !st->types) {
		free(st->text);
		free(st->types);
		free(st);
		return NULL;
	}
	memcpy(st->name, name, nlen + 1);
	memcpy(st->text, text, tlen + 1);
	memcpy(st->types, types, types_len);
	st->types_len = types_len;
	st->serial = ++cc->next_serial;
	st->bytes = bytes;
	cc->nstmts++;
	cc->stmt_bytes += bytes;
	return st;
}

/* Forget accepted statement <st>. */
static void sess_drop(struct proxy_cl_cache *cc, struct sess_stmt *st)
{
	HASH_DELETE(hh, cc->stmts, st);
	HASH_DELETE(hs, cc->by_serial, st);
	sess_stmt_free(cc, st);
}

/* Forget <name>, or every name when NULL: accepted, and Parses of it still
 * pending (their ParseComplete will name nothing). */
static void sess_forget(struct proxy_cl_cache *cc, const char *name)
{
	struct sess_stmt *st, *tmp;

	if (name) {
		HASH_FIND(hh, cc->stmts, name, strlen(name), st);
		if (st)
			sess_drop(cc, st);
	} else {
		HASH_ITER(hh, cc->stmts, st, tmp)
		{
			sess_drop(cc, st);
		}
	}
	for (unsigned i = 0; i < cc->ring_n && cc->nwatch > 0; i++) {
		struct sess_req *q = ring_at(cc, i);

		if (q->kind == SESS_PARSE && q->st && (!name || strcmp(q->st->name, name) == 0))
			q->st->dead = true;
	}
}

/* The client's requests can no longer be matched with their replies:
 * forget everything and follow it no more. */
static void sess_lose(struct proxy_cl_cache *cc)
{
	sess_forget(cc, NULL);
	for (unsigned i = 0; i < cc->ring_n; i++) {
		struct sess_req *q = ring_at(cc, i);

		if (q->kind == SESS_PARSE)
			sess_stmt_free(cc, q->st);
	}
	free(cc->ring);
	cc->ring = NULL;
	cc->ring_cap = cc->ring_head = cc->ring_n = 0;
	cc->nwatch = cc->lead_z = 0;
	cc->sess_lost = true;
}

/* A request whose reply is followed was sent; <st> (pending) is the ring's
 * now. */
static void sess_push(struct proxy_cl_cache *cc, uint8_t kind, uint64_t serial,
                      struct sess_stmt *st)
{
	if (cc->sess_lost) {
		sess_stmt_free(cc, st);
		return;
	}
	if (kind == SESS_SYNC && cc->ring_n == 0) {
		cc->lead_z++; /* the common case costs a counter */
		return;
	}
	if (cc->ring_n == cc->ring_cap) {
		unsigned ncap = cc->ring_cap ? cc->ring_cap * 2 : 8;
		struct sess_req *nr = ncap <= SESS_RING_MAX ? malloc(ncap * sizeof(*nr)) : NULL;

		if (!nr) {
			sess_stmt_free(cc, st);
			sess_lose(cc);
			return;
		}
		for (unsigned i = 0; i < cc->ring_n; i++)
			nr[i] = *ring_at(cc, i);
		free(cc->ring);
		cc->ring = nr;
		cc->ring_cap = ncap;
		cc->ring_head = 0;
	}
	*ring_at(cc, cc->ring_n++) = (struct sess_req){.kind = kind, .serial = serial, .st = st};
	if (kind != SESS_SYNC)
		cc->nwatch++;
}

static struct sess_req sess_pop(struct proxy_cl_cache *cc)
{
	struct sess_req q = cc->ring[cc->ring_head];

	cc->ring_head = (cc->ring_head + 1) % cc->ring_cap;
	cc->ring_n--;
	if (q.kind != SESS_SYNC)
		cc->nwatch--;
	return q;
}

static struct sess_stmt *sess_find(struct proxy_cl_cache *cc, const char *name)
{
	struct sess_stmt *st = NULL;

	if (cc && !cc->sess_lost)
		HASH_FIND(hh, cc->stmts, name, strlen(name), st);
	return st;
}

/* The statement a Bind or Describe of <name> sent now refers to: a Parse
 * of it still pending (the accepted one was forgotten when it was sent),
 * else the accepted one; 0 if none is followed. */
static uint64_t sess_serial_of(struct proxy_cl_cache *cc, const char *name)
{
	struct sess_stmt *st;

	for (unsigned i = cc->ring_n; cc->nwatch > 0 && i-- > 0;) {
		struct sess_req *q = ring_at(cc, i);

		if (q->kind == SESS_PARSE && q->st && strcmp(q->st->name, name) == 0)
			return q->st->dead ? 0 : q->st->serial;
	}
	st = sess_find(cc, name);
	return st ? st->serial : 0;
}

/* May statement <fp> drop prepared statements (DEALLOCATE of any form,
 * DISCARD ALL; a function not PostgreSQL's own, DO or CALL may run
 * DEALLOCATE as dynamic SQL), or is it not known well enough to say? */
static bool sess_may_drop(struct proxy_ctx *ctx, uint64_t fp)
{
	const struct stats_shape_info *si = fp ? stats_shape_find(ctx->stats, fp) : NULL;

	return !si || !si->parsed || si->unknown_fn ||
	       (si->session &
	        (STATS_SS_DEALLOCATE | STATS_SS_DEALLOCATE_ALL | STATS_SS_DISCARD_ALL));
}

static void sess_parse(struct proxy_cl_cache *cc, const struct proxy_ps_msg *m)
{
	struct proto_reader r;
	const char *name, *text;
	struct sess_stmt *st = NULL;

	proto_reader_init(&r, m->body, m->avail);
	name = proto_get_str(&r);
	if (!name) {
		sess_forget(cc, NULL); /* the name it replaces is not known */
	} else if (*name) {
		/* it replaces the name, or fails (the name is taken): either
		 * way the statement known so far is not the server's */
		sess_forget(cc, name);
		text = proto_get_str(&r);
		if (m->avail == (size_t)m->len - 4 && text && r.n >= 2 &&
		    r.n == 2 + 4 * ((size_t)r.p[0] << 8 | r.p[1]))
			st = sess_new(cc, name, text, r.p, r.n);
	}
	sess_push(cc, SESS_PARSE, 0, st);
}

/* Session mode: what request <m>, sent to the client's server, does to
 * its named statements. ctx->note holds its statements. */
static void sess_sent(struct proxy_client *c, struct proxy_cl_cache *cc,
                      const struct proxy_ps_msg *m)
{
	const struct proxy_note *nt = &c->ctx->note;
	struct proto_reader r;
	const char *portal, *name;
	uint8_t kind;

	if (cc->sess_lost)
		return;
	proto_reader_init(&r, m->body, m->avail);
	switch (m->type) {
	case 'S':
		cc->ext_open = false;
		sess_push(cc, SESS_SYNC, 0, NULL);
		return;
	case 'Q':
	case 'F':
		if (cc->ext_open) {
			/* after an error PostgreSQL skips it to the Sync: its
			 * ReadyForQuery would come later than it seems */
			sess_lose(cc);
			return;
		}
		cc->portal_serial = 0; /* a Query runs in the unnamed portal */
		sess_push(cc, SESS_SYNC, 0, NULL);
		if (m->type == 'F')
			return;
		if (m->avail != (size_t)m->len - 4 || nt->n >= PROTO_SQL_MAX_STMTS ||
		    (nt->n == 0 && m->avail > 1)) {
			sess_forget(cc, NULL); /* statements not all known */
			return;
		}
		for (unsigned i = 0; i < nt->n; i++)
			if (sess_may_drop(c->ctx, nt->fp[i])) {
				sess_forget(cc, NULL);
				return;
			}
		return;
	case 'P':
		cc->ext_open = true;
		/* its Executes drop statements, if any does: the name is forgotten
		 * first, as the Parse does it */
		sess_parse(cc, m);
		if (nt->n > 0 && nt->fp[0] && sess_may_drop(c->ctx, nt->fp[0]))
			sess_forget(cc, NULL);
		return;
	case 'B':
		cc->ext_open = true;
		portal = proto_get_str(&r);
		name = proto_get_str(&r);
		if (!portal || !*portal)
			cc->portal_serial = name && *name ? sess_serial_of(cc, name) : 0;
		return;
	case 'D':
		cc->ext_open = true;
		kind = proto_get_u8(&r);
		name = proto_get_str(&r);
		sess_push(cc, SESS_DESCRIBE,
		          !name || r.err          ? 0
		          : kind == 'S' && *name  ? sess_serial_of(cc, name)
		          : kind == 'P' && !*name ? cc->portal_serial
		                                  : 0,
		          NULL);
		return;
	case 'C':
		cc->ext_open = true;
		kind = proto_get_u8(&r);
		name = proto_get_str(&r);
		if (r.err || !name)
			sess_forget(cc, NULL);
		else if (kind == 'S' && *name)
			sess_forget(cc, name); /* at once: the safe side */
		return;
	case 'E':
		cc->ext_open = true;
		if (nt->n == 0 || sess_may_drop(c->ctx, nt->fp[0]))
			sess_forget(cc, NULL); /* what it runs is not known */
		return;
	default:
		return;
	}
}

/* PostgreSQL described statement <serial>: its shape is the first one
 * given; another one (or one too large to read) ends serving it. */
static void sess_described(struct proxy_cl_cache *cc, uint64_t serial, uint8_t type,
                           const uint8_t *msg, size_t len)
{
	struct sess_stmt *st;
	uint64_t shape = 0;
	bool known;

	HASH_FIND(hs, cc->by_serial, &serial, sizeof(serial), st);
	if (!st)
		return;
	known = len <= PROXY_INSPECT_MAX + 1 &&
	        proxy_row_shape(type == 'n' ? NULL : msg + 5, len - 5, &shape);
	if (!known || (st->has_shape && st->shape != shape)) {
		sess_drop(cc, st);
		return;
	}
	st->shape = shape;
	st->has_shape = true;
}

/* Session mode: a reply relayed to the client, matched with the ring. */
static void sess_reply(struct proxy_cl_cache *cc, const uint8_t *msg, size_t len)
{
	struct sess_req q;
	struct sess_stmt *st;

	if (cc->sess_lost)
		return;
	switch (msg[0]) {
	case 'Z':
		if (cc->lead_z > 0) {
			cc->lead_z--;
			return;
		}
		/* the requests before the Sync that got no reply were skipped
		 * after an error: a Parse among them never happened */
		for (;;) {
			if (cc->ring_n == 0) {
				sess_lose(cc);
				return;
			}
			q = sess_pop(cc);
			if (q.kind == SESS_SYNC)
				return;
			if (q.kind == SESS_PARSE)
				sess_stmt_free(cc, q.st);
		}
	case 'E':
		/* PostgreSQL skips to the Sync (a Query's error: nothing skipped) */
		while (cc->lead_z == 0 && cc->ring_n > 0 && ring_at(cc, 0)->kind != SESS_SYNC) {
			q = sess_pop(cc);
			if (q.kind == SESS_PARSE)
				sess_stmt_free(cc, q.st);
		}
		return;
	case '1':
		if (cc->lead_z > 0 || cc->ring_n == 0 || ring_at(cc, 0)->kind != SESS_PARSE) {
			sess_lose(cc);
			return;
		}
		q = sess_pop(cc);
		if (!q.st)
			return;
		if (q.st->dead) {
			sess_stmt_free(cc, q.st);
			return;
		}
		/* PostgreSQL has it now */
		HASH_FIND(hh, cc->stmts, q.st->name, strlen(q.st->name), st);
		if (st)
			sess_drop(cc, st);
		HASH_ADD_KEYPTR(hh, cc->stmts, q.st->name, strlen(q.st->name), q.st);
		HASH_ADD(hs, cc->by_serial, serial, sizeof(q.st->serial), q.st);
		return;
	case 'T':
	case 'n':
		if (cc->lead_z > 0 || cc->ring_n == 0 || ring_at(cc, 0)->kind == SESS_SYNC)
			return; /* a Query's */
		if (ring_at(cc, 0)->kind != SESS_DESCRIBE) {
			sess_lose(cc);
			return;
		}
		q = sess_pop(cc);
		if (q.serial)
			sess_described(cc, q.serial, msg[0], msg, len);
		return;
	default:
		return;
	}
}

void proxy_cache_sent(struct proxy_client *c, const struct proxy_ps_msg *m)
{
	struct proxy_ctx *ctx = c->ctx;
	const struct proxy_note *nt = &ctx->note;
	struct proxy_cl_cache *cc;

	if (!ctx->cache)
		return;
	cc = c->cache;
	/* made now, with replies to earlier requests still to come: they
	 * cannot be matched */
	if (!cc && sess_mode(c) && (cc = cl_cache(c)) && c->server && c->server->pq.n > 1)
		sess_lose(cc);
	if (cc && cc->sess_on) {
		if (!sess_mode(c))
			sess_lose(cc); /* a reload changed the pool's mode */
		sess_sent(c, cc, m);
	}
	if (m->type == 'P' || m->type == 'Q') {
		cc = c->cache;
		/* the server's unnamed statement is this one's now */
		if (cc && cc->lost_parse && (m->type == 'Q' || (m->avail > 0 && m->body[0] == 0))) {
			free(cc->lost_parse);
			cc->lost_parse = NULL;
		}
	}
	if (m->type == 'P') {
		/* a marked Parse in a form that is not looked up (behind other
		 * requests, or not decided in proxy_cache_query) is counted */
		if (cc && cc->p_decided)
			cc->p_decided = false;
		else if ((nt->hints & PROTO_SQL_HINT_CACHE) &&
		         !(nt->hints & PROTO_SQL_HINT_NOCACHE))
			cache_count(ctx->cache, CACHE_EXTENDED);
		return;
	}
	if (m->type != 'Q' && m->type != 'E' && m->type != 'F')
		return;
	if (!(cc = cl_cache(c))) {
		/* out of memory: nothing can be remembered, so forget every entry
		 * of the database rather than risk a stale one */
		cache_bump_db(ctx->cache, c->db_name);
		return;
	}
	if (m->type == 'F' || nt->n == 0) {
		/* a fast-path call, an Execute of a statement not known, a Query
		 * whose statements could not be noted: anything may change */
		if (m->type != 'Q' || m->avail > 1)
			cc->pend_db = true;
		return;
	}
	/* a Query read only in part, or with more statements than noted */
	if (m->type == 'Q' && (m->avail != (size_t)m->len - 4 || nt->n >= PROTO_SQL_MAX_STMTS))
		cc->pend_db = true;
	for (unsigned i = 0; i < nt->n; i++)
		note_stmt(ctx, cc, nt->fp[i], nt->ss[i]);
}

/* "ROLLBACK": the tag of ROLLBACK, ABORT, ROLLBACK TO SAVEPOINT and of a
 * COMMIT of a failed transaction. */
static bool tag_is(const uint8_t *body, size_t len, const char *w)
{
	size_t n = strlen(w);

	return len == n + 1 && memcmp(body, w, n) == 0 && body[n] == 0;
}

/* ---- lookups and hits ---- */

static const uint8_t rfq_idle[6] = {'Z', 0, 0, 0, 5, 'I'};
static const uint8_t parse_complete[5] = {'1', 0, 0, 0, 4};
static const uint8_t bind_complete[5] = {'2', 0, 0, 0, 4};

/* A hit: the statement's row in SHOW QUERIES (a hit is no call). */
static void count_hit(struct proxy_client *c, uint64_t fp)
{
	if (c->pool) {
		c->pool->st.query_count++;
		/* the row reply.c's record() would have used */
		if (c->pool->stats_scope)
			stats_cache_hit(c->ctx->stats, c->pool->stats_scope, fp);
	}
}

/* Write <e> and a ReadyForQuery to the client in place of the Query at the
 * head of its input, which is consumed, and count the hit for statement
 * <fp> in SHOW QUERIES. -1 if the client cannot be written to (the caller
 * closes it). */
static int replay(struct proxy_client *c, const struct cache_entry *e, size_t msg_len, uint64_t fp)
{
	struct proxy_ctx *ctx = c->ctx;

	if (proxy_io_send(ctx, &c->io, e->rowdesc, e->rowdesc_len) < 0 ||
	    proxy_io_send(ctx, &c->io, e->body, e->body_len) < 0 ||
	    proxy_io_send(ctx, &c->io, rfq_idle, sizeof(rfq_idle)) < 0)
		return -1;
	proto_buf_consume(&c->io.in, msg_len);
	count_hit(c, fp);
	return 0;
}

static size_t head_msg_len(const struct proxy_client *c)
{
	const uint8_t *p = proto_buf_head(&c->io.in);

	return ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]) + 1;
}

/* ---- the extended protocol: one group up to its Sync ---- */

/* A group at the head of a client's input; views into that buffer (and
 * prepared.c's registry), valid while the client is not read. */
struct ext_group {
	const char *text;     /* the statement's text */
	const uint8_t *types; /* its parameter types: int16 count, int32 OIDs */
	size_t types_len;
	const uint8_t *bind; /* the Bind body after its portal and statement names */
	size_t bind_len;
	const uint8_t *parse; /* the group's Parse message, whole, or NULL */
	size_t parse_len;
	const char *pname;        /* the Parse's statement name */
	struct proxy_cl_stmt *cs; /* without a Parse: the client's named statement */
	struct sess_stmt *sst;    /* likewise, in session mode */
	size_t total;             /* bytes of the group, its Sync included */
	bool describe;            /* Describe of the unnamed portal */
};

enum { EXT_UNKNOWN = -1, EXT_FORM = 0, EXT_OK = 1 };

static int next_msg(const uint8_t *p, size_t n, size_t off, struct proto_msg *m)
{
	return proto_next(p + off, n - off, false, PROXY_INSPECT_MAX, m);
}

/*
 * Read the group at the head of <c>'s input (see the top of this file).
 * EXT_OK: <g> may be looked up. EXT_FORM: the statement's text is known
 * (g->text) but the group is not in a form served. EXT_UNKNOWN: the text
 * is not known (or not read yet). Reads only; O(messages of the group).
 */
static int ext_read(struct proxy_client *c, struct ext_group *g)
{
	const uint8_t *p = proto_buf_head(&c->io.in);
	size_t n = proto_buf_avail(&c->io.in), off = 0;
	bool txmode = c->pool && c->pool->mode != CONF_POOL_SESSION;
	struct proto_msg m;
	struct proto_reader r;
	const char *portal, *sname;

	memset(g, 0, sizeof(*g));
	if (next_msg(p, n, 0, &m) != PROTO_OK)
		return EXT_UNKNOWN;
	if (m.type == 'P') {
		size_t nt;

		proto_reader_init(&r, m.body, m.body_len);
		g->pname = proto_get_str(&r);
		g->text = proto_get_str(&r);
		if (!g->pname || !g->text || r.n < 2)
			return EXT_UNKNOWN;
		nt = (size_t)r.p[0] << 8 | r.p[1];
		if (r.n != 2 + 4 * nt)
			return EXT_UNKNOWN; /* PostgreSQL refuses it */
		g->types = r.p;
		g->types_len = r.n;
		g->parse = m.raw;
		g->parse_len = m.raw_len;
		/* a named Parse answered from the cache leaves the server without
		 * the statement: only transaction mode's registry makes up for it */
		if (*g->pname && !txmode)
			return EXT_FORM;
		off = m.raw_len;
		if (next_msg(p, n, off, &m) != PROTO_OK)
			return EXT_FORM;
	}
	if (m.type != 'B')
		return g->text ? EXT_FORM : EXT_UNKNOWN;
	proto_reader_init(&r, m.body, m.body_len);
	portal = proto_get_str(&r);
	sname = proto_get_str(&r);
	if (!portal || !sname)
		return g->text ? EXT_FORM : EXT_UNKNOWN;
	if (g->parse) {
		if (strcmp(sname, g->pname) != 0)
			return EXT_FORM;
	} else if (*sname && c->cache && c->cache->sess_on && sess_mode(c)) {
		/* session mode: a statement PostgreSQL accepted, and described */
		struct sess_stmt *st = sess_find(c->cache, sname);

		if (!st)
			return EXT_UNKNOWN;
		g->sst = st;
		g->text = st->text;
		g->types = st->types;
		g->types_len = st->types_len;
		if (!st->has_shape)
			return EXT_FORM;
	} else {
		/* the unnamed statement's text is not kept; a named one's is in
		 * transaction mode, once its Parse has been read whole */
		struct proxy_cl_stmt *cs = *sname && txmode ? proxy_cl_find(c, sname) : NULL;

		if (!cs || !cs->stmt->types || c->fill == cs->stmt)
			return EXT_UNKNOWN;
		g->cs = cs;
		g->text = cs->stmt->query;
		g->types = cs->stmt->types;
		g->types_len = cs->stmt->types_len;
		if (cs->stale)
			return EXT_FORM; /* prepared.c answers it with an error */
	}
	if (*portal)
		return EXT_FORM;
	g->bind = r.p;
	g->bind_len = r.n;
	off += m.raw_len;
	if (next_msg(p, n, off, &m) != PROTO_OK)
		return EXT_FORM;
	if (m.type == 'D') {
		if (m.body_len != 2 || m.body[0] != 'P' || m.body[1] != 0)
			return EXT_FORM;
		/* the first Describe of a named statement tells prepared.c the
		 * shape the client will decode its rows by: PostgreSQL answers it */
		if ((g->parse && *g->pname) || (g->cs && !g->cs->has_shape))
			return EXT_FORM;
		g->describe = true;
		off += m.raw_len;
		if (next_msg(p, n, off, &m) != PROTO_OK)
			return EXT_FORM;
	}
	/* Execute of the unnamed portal, all rows */
	if (m.type != 'E' || m.body_len != 5 || memcmp(m.body, "\0\0\0\0\0", 5) != 0)
		return EXT_FORM;
	off += m.raw_len;
	if (next_msg(p, n, off, &m) != PROTO_OK || m.type != 'S' || m.body_len != 0)
		return EXT_FORM;
	g->total = off + m.raw_len;
	return EXT_OK;
}

/* The bytes of the group at the head of <c>'s input, its Sync included;
 * the group was read whole (it was looked up). */
static size_t group_len(const struct proxy_client *c)
{
	const uint8_t *p = proto_buf_head(&c->io.in);
	size_t n = proto_buf_avail(&c->io.in), off = 0;
	struct proto_msg m;

	while (off < n && next_msg(p, n, off, &m) == PROTO_OK) {
		off += m.raw_len;
		if (m.type == 'S')
			break;
	}
	return off;
}

/*
 * Answer the group at the head of <c>'s input with <e>, consuming it, and
 * do at sluice what its Parse would have done at the server (see the top
 * of this file). 0 done; 1 when it cannot be answered (nothing was sent:
 * it goes to PostgreSQL); -1 if the client cannot be written to (the
 * caller closes it).
 */
static int replay_ext(struct proxy_client *c, const struct cache_entry *e, uint64_t fp)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_cl_cache *cc = c->cache;
	struct ext_group g;

	if (ext_read(c, &g) != EXT_OK ||
	    !cache_entry_replay(e, g.describe ? CACHE_REPLAY_DESCRIBE : CACHE_REPLAY_EXECUTE))
		return 1;
	if (g.parse && *g.pname) {
		/* transaction mode: the client's name, prepared on a server when
		 * a Bind of it reaches one (prepared.c's ensure_prepared) */
		struct proxy_stmt *st = proxy_stmt_get(ctx, g.text, g.types, g.types_len);

		if (!st)
			return 1;
		if (proxy_cl_set(c, g.pname, st) < 0) {
			if (st->refs == 0)
				proxy_stmt_unref_new(ctx, st);
			return 1;
		}
	} else if (g.parse) {
		uint8_t *keep = malloc(g.parse_len);

		if (!keep)
			return 1;
		memcpy(keep, g.parse, g.parse_len);
		free(cc->lost_parse);
		cc->lost_parse = keep;
		cc->lost_len = g.parse_len;
	}
	if ((g.parse && proxy_io_send(ctx, &c->io, parse_complete, sizeof(parse_complete)) < 0) ||
	    proxy_io_send(ctx, &c->io, bind_complete, sizeof(bind_complete)) < 0 ||
	    (g.describe && proxy_io_send(ctx, &c->io, e->rowdesc, e->rowdesc_len) < 0) ||
	    proxy_io_send(ctx, &c->io, e->body, e->body_len) < 0 ||
	    proxy_io_send(ctx, &c->io, rfq_idle, sizeof(rfq_idle)) < 0)
		return -1;
	proto_buf_consume(&c->io.in, g.total);
	cc->p_decided = false;
	count_hit(c, fp);
	return 0;
}

/*
 * The client binds or describes the unnamed statement without parsing it
 * again, and the server's unnamed statement is not the one the client last
 * parsed (that Parse was answered from the cache): send that Parse first,
 * its ParseComplete hidden. A Close of the unnamed statement forgets it.
 * -1 if <c> was closed.
 */
static int restore_parse(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_cl_cache *cc = c->cache;
	const uint8_t *head = proto_buf_head(&c->io.in);
	struct proto_reader r;
	const char *portal = "", *sname;

	proto_reader_init(&r, head + 5, proto_buf_avail(&c->io.in) - 5);
	if (head[0] == 'B')
		portal = proto_get_str(&r);
	else if (proto_get_u8(&r) != 'S')
		return 0; /* a portal's Describe or Close */
	sname = proto_get_str(&r);
	if (r.err || !portal || !sname || *sname)
		return 0; /* a named statement, or the names not read yet */
	if (head[0] == 'C') {
		free(cc->lost_parse);
		cc->lost_parse = NULL;
		return 0;
	}
	if (proxy_io_send(c->ctx, &s->io, cc->lost_parse, cc->lost_len) < 0 ||
	    proxy_reply_push(s, PROXY_PEND_PARSE, PROXY_PEND_HIDE, NULL, 0) < 0) {
		proxy_client_fail(c, PROXY_ERR_SERVER_LOST, "write to server failed");
		return -1;
	}
	c->unsynced = true; /* the server must stay until the client's Sync */
	s->pool->st.server_parses++;
	{
		/* the tracker learns the statement, so that its Executes are known
		 * reads (an unknown one bumps the whole database) */
		struct proxy_ps_msg pm = {.type = 'P',
		                          .len = (uint32_t)(cc->lost_len - 1),
		                          .body = cc->lost_parse + 5,
		                          .avail = cc->lost_len - 5};

		proxy_reply_note(c, s, &pm);
		c->ctx->note.n = 0;
	}
	free(cc->lost_parse);
	cc->lost_parse = NULL;
	return 0;
}

/* Answer the head of <c>'s input (a Query or a group) with a hit: as
 * replay_ext. */
static int replay_head(struct proxy_client *c, const struct cache_entry *e)
{
	struct proxy_cl_cache *cc = c->cache;

	if (cc->ext)
		return replay_ext(c, e, cc->fp);
	if (!cache_entry_replay(e, CACHE_REPLAY_QUERY))
		return 1; /* stored without a RowDescription: it cannot answer a Query */
	return replay(c, e, head_msg_len(c), cc->fp) < 0 ? -1 : 0;
}

static void lookup_cb(struct cache_lookup *lk, enum cache_result r)
{
	struct proxy_client *c = lk->arg;
	struct proxy_cl_cache *cc = c->cache;
	struct proxy_ctx *ctx = c->ctx;
	int rc = 1;

	if (c->state == PROXY_CL_CLOSING || cc->st != CL_PENDING)
		return;
	cc->st = CL_NONE;
	if (r == CACHE_HIT)
		rc = replay_head(c, &lk->entry);
	if (rc < 0) {
		proxy_client_close(c);
		return;
	}
	/* a bypass, a miss we lead, or a hit that cannot answer this request */
	if (rc > 0)
		cc->st = CL_GO;
	/* what was queued here leaves with the next loop iteration */
	ev_idle_start(ctx->loop, &ctx->kick);
	if (c->state == PROXY_CL_ACTIVE || c->state == PROXY_CL_IDLE)
		proxy_io_start_read(ctx, &c->io);
	proxy_client_process(c);
}

/* The session's settings that shape the bytes of a result, laid out as
 * "name=value\0" for each one set, then the startup parameters as
 * "startup:name=value\0". -1 if they do not fit. */
static int settings_of(const struct proxy_client *c, char *buf, size_t cap, size_t *len)
{
	size_t o = 0;

	for (int v = 0; v < PROXY_NVARS; v++) {
		const char *val = c->vars[v], *name;
		int n;

		/* application_name reaches a result only through functions that
		 * are not immutable, which are never cached */
		if (!val || v == PROXY_VAR_APPLICATION_NAME)
			continue;
		name = proxy_var_name(v);
		n = snprintf(buf + o, cap - o, "%s=%s", name ? name : "?", val);
		if (n < 0 || (size_t)n + 1 >= cap - o)
			return -1;
		o += (size_t)n + 1; /* the NUL stays: it separates */
	}
	/* session mode: the startup parameters its server was opened with
	 * (options -c search_path=..., any GUC) shape results too */
	if (c->sp) {
		size_t pos = 0;
		const char *name, *val;

		while ((name = proxy_sparams_next(c->sp, &pos, &val)) != NULL) {
			int n = snprintf(buf + o, cap - o, "startup:%s=%s", name, val ? val : "");

			if (n < 0 || (size_t)n + 1 >= cap - o)
				return -1;
			o += (size_t)n + 1;
		}
	}
	*len = o;
	return 0;
}

/* After the key is made: look it up. The returns of proxy_cache_query. */
static int lookup(struct proxy_client *c, struct proxy_cl_cache *cc,
                  const struct stats_shape_info *si, uint32_t ttl_s, uint64_t fp)
{
	int rc;

	cc->lk.db = c->db_name;
	cc->lk.tables = (const char *const *)si->read;
	cc->lk.ntables = si->nread;
	cc->lk.cb = lookup_cb;
	cc->lk.arg = c;
	cc->ttl_s = ttl_s;
	/* the fingerprint reply.c notes for this statement when it is sent:
	 * the same scan of the same text */
	cc->fp = fp;
	switch (cache_lookup(c->ctx->cache, &cc->lk)) {
	case CACHE_HIT:
		rc = replay_head(c, &cc->lk.entry);
		if (rc > 0)
			return PROXY_CACHE_GO;
		cc->st = CL_NONE;
		if (rc < 0) {
			proxy_client_close(c);
			return PROXY_CACHE_CLOSED;
		}
		return PROXY_CACHE_DONE;
	case CACHE_PENDING:
		cc->st = CL_PENDING;
		proxy_io_stop_read(c->ctx, &c->io);
		return PROXY_CACHE_WAIT;
	default:
		return PROXY_CACHE_GO;
	}
}

/* Scan <text> and decide for its first statement; NULL (counted when
 * marked) if it is not served. */
static const struct stats_shape_info *decide(struct proxy_client *c, struct proxy_server *s,
                                             struct proxy_cl_cache *cc, const char *text,
                                             size_t tlen, struct cache_verdict *v, uint64_t *fp)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proto_sql_scan sc;
	const struct stats_shape_info *si;
	struct cache_session sess = {0};

	proto_sql_scan(text, tlen, true, scan_buf, sizeof(scan_buf), &sc);
	if (sc.nstmts == 0)
		return NULL;
	si = stats_shape_seen(ctx->stats, &sc.stmt[0], scan_buf + sc.stmt[0].norm_off,
	                      text + sc.stmt[0].src_off);
	sess.in_tx = s && s->status != 'I';
	sess.role_changed = cc->role_changed;
	sess.state_changed = cc->state_changed;
	sess.multi_stmt = sc.nstmts > 1;
	if (!cache_decide(ctx->cache_rules, ctx->conf->cache.default_ttl, &sc.stmt[0], si, &sess,
	                  v)) {
		cache_count(ctx->cache, v->reason);
		return NULL;
	}
	*fp = sc.stmt[0].fp;
	return si;
}

/* Cheap for the statements that are not marked: no hint in the text and
 * no rule that could mark it. */
static bool may_be_marked(const struct proxy_ctx *ctx, const char *text, size_t tlen)
{
	return ctx->cache_nrules || ctx->conf->cache.nrules || memmem(text, tlen, "sluice:", 7);
}

/* The key's fields that are not the statement's: -1 if they do not fit. */
static int key_session(const struct proxy_client *c, struct cache_key_input *in, char *settings,
                       size_t cap)
{
	size_t slen = 0;

	if (settings_of(c, settings, cap, &slen) < 0)
		return -1;
	in->db = c->db_name;
	in->role = c->user;
	in->client_encoding = c->vars[PROXY_VAR_CLIENT_ENCODING];
	in->settings = settings;
	in->settings_len = slen;
	return 0;
}

/* An extended-protocol group at the head of <c>'s input (proxy_cache_query). */
static int ext_query(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	bool parse = proto_buf_head(&c->io.in)[0] == 'P';
	struct proxy_cl_cache *cc;
	struct ext_group g;
	struct cache_verdict v;
	struct cache_key_input in = {0};
	char settings[SETTINGS_MAX];
	const struct stats_shape_info *si;
	uint64_t fp = 0;
	int form = ext_read(c, &g);
	size_t tlen;

	if (form == EXT_UNKNOWN)
		return PROXY_CACHE_GO;
	tlen = strlen(g.text);
	if (!may_be_marked(ctx, g.text, tlen) || !(cc = cl_cache(c)))
		return PROXY_CACHE_GO;
	if (!s)
		cc->st = CL_GO; /* whatever follows, it is decided */
	else
		cc->p_decided = parse; /* proxy_cache_sent must not count it again */
	if (!(si = decide(c, s, cc, g.text, tlen, &v, &fp)))
		return PROXY_CACHE_GO;
	if (form != EXT_OK) {
		cache_count(ctx->cache, CACHE_EXTENDED);
		return PROXY_CACHE_GO;
	}
	if (key_session(c, &in, settings, sizeof(settings)) < 0)
		return PROXY_CACHE_GO;
	in.text = g.text; /* the exact text, as for a Query */
	in.text_len = tlen;
	in.extended = true;
	in.param_types = g.types;
	in.param_types_len = g.types_len;
	in.describe = g.describe;
	if (g.cs && g.cs->has_shape) {
		in.has_shape = true;
		in.shape = g.cs->shape;
	} else if (g.sst) {
		in.has_shape = true;
		in.shape = g.sst->shape;
	}
	if (cache_key_bind(&in, g.bind, g.bind_len, &cc->lk.key) < 0)
		return PROXY_CACHE_GO; /* malformed: PostgreSQL says so */
	cc->ext = true;
	return lookup(c, cc, si, v.ttl_s, fp);
}

int proxy_cache_query(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_cl_cache *cc = c->cache;
	const uint8_t *head = proto_buf_head(&c->io.in);
	size_t avail = proto_buf_avail(&c->io.in), mlen;
	const char *text;
	size_t tlen;
	const struct stats_shape_info *si;
	struct cache_verdict v;
	struct cache_key_input in = {0};
	char settings[SETTINGS_MAX];
	uint64_t fp = 0;

	if (!ctx->cache || avail < 5)
		return PROXY_CACHE_GO;
	if (head[0] == 'D' || head[0] == 'C') {
		/* never looked up; they may need the unnamed statement back */
		if (s && cc && cc->lost_parse && cc->st != CL_PENDING && restore_parse(c, s) < 0)
			return PROXY_CACHE_CLOSED;
		return PROXY_CACHE_GO;
	}
	if (head[0] != 'Q' && head[0] != 'P' && head[0] != 'B')
		return PROXY_CACHE_GO;
	if (cc && cc->st == CL_PENDING)
		return PROXY_CACHE_WAIT;
	if (head[0] == 'B' && s && cc && cc->lost_parse && restore_parse(c, s) < 0)
		return PROXY_CACHE_CLOSED;
	if (cc && cc->st == CL_GO) {
		/* decided before it waited for a server: it goes now */
		if (s) {
			cc->st = CL_NONE;
			cc->p_decided = head[0] == 'P';
			if (cc->lk.leader) {
				cache_capture_reset(&cc->cap);
				cc->capturing = true;
			}
		}
		return PROXY_CACHE_GO;
	}
	/* a server with anything in flight answers that first: a hit now
	 * would overtake it */
	if (s && (s->outstanding > 0 || s->inflight > 0 || s->internal > 0 || s->pq.n > 0 ||
	          s->status != 'I' || s->in_copy_out || c->unsynced || c->in_copy))
		return PROXY_CACHE_GO;
	if (head[0] != 'Q')
		return ext_query(c, s);
	mlen = head_msg_len(c);
	if (avail < mlen || mlen < 6 || head[mlen - 1] != 0)
		return PROXY_CACHE_GO; /* not whole yet: it streams to PostgreSQL */
	text = (const char *)head + 5;
	tlen = mlen - 6;
	if (memchr(text, 0, tlen))
		return PROXY_CACHE_GO; /* PostgreSQL refuses it */
	if (!may_be_marked(ctx, text, tlen) || !(cc = cl_cache(c)))
		return PROXY_CACHE_GO;
	if (!s)
		cc->st = CL_GO; /* whatever follows, it is decided */
	if (!(si = decide(c, s, cc, text, tlen, &v, &fp)))
		return PROXY_CACHE_GO;
	if (key_session(c, &in, settings, sizeof(settings)) < 0)
		return PROXY_CACHE_GO;
	in.text = text; /* the exact text: its literals are part of the question */
	in.text_len = tlen;
	cache_key_make(&in, &cc->lk.key);
	cc->ext = false;
	return lookup(c, cc, si, v.ttl_s, fp);
}

/* ---- replies (backrelay.c) ---- */

static void capture_end(struct proxy_ctx *ctx, struct proxy_cl_cache *cc, bool ok)
{
	cc->capturing = false;
	if (ok)
		cache_store(ctx->cache, &cc->lk, &cc->cap, cc->ttl_s);
	else
		cache_abandon(ctx->cache, &cc->lk);
	cache_capture_reset(&cc->cap);
}

void proxy_cache_reply_part(struct proxy_server *s, const uint8_t *p, size_t n)
{
	struct proxy_cl_cache *cc = s->client->cache;

	if (cc->capturing)
		cache_capture_more(&cc->cap, p, n);
}

void proxy_cache_reply(struct proxy_server *s, const uint8_t *msg, size_t len)
{
	struct proxy_client *c = s->client;
	struct proxy_cl_cache *cc = c->cache;
	uint8_t type = msg[0];

	if (cc->sess_on)
		sess_reply(cc, msg, len); /* named statements: before the capture ends */
	if (cc->capturing) {
		if (type == 'Z')
			/* cache_store refuses what is incomplete, failed or too big
			 * (and counts the last) */
			capture_end(s->ctx, cc, s->status == 'I');
		else if (len <= PROXY_INSPECT_MAX + 1)
			cache_capture_msg(&cc->cap, msg, len);
		else /* streamed past in pieces: proxy_cache_reply_part brings them */
			cache_capture_begin(&cc->cap, type, len);
	}
	if (len > PROXY_INSPECT_MAX + 1)
		return; /* streaming past: not a message read whole */
	if (type == 'C') {
		cc->last_rollback = tag_is(msg + 5, len - 5, "ROLLBACK");
		cc->saw_commit |= tag_is(msg + 5, len - 5, "COMMIT");
	} else if (type == 'Z') {
		if (s->status == 'I' && (cc->npend || cc->pend_db)) {
			if (cc->last_rollback && !cc->saw_commit)
				pend_clear(cc); /* nothing of it committed */
			else
				pend_bump(c, cc);
		}
		cc->last_rollback = cc->saw_commit = false;
	}
}

/* ---- a client that goes ---- */

void proxy_cache_client_gone(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc || !c->ctx->cache)
		return;
	if (cc->capturing)
		capture_end(c->ctx, cc, false);
	cache_lookup_cancel(c->ctx->cache, &cc->lk);
	cc->st = CL_NONE;
	/* an autocommit write may have committed after all */
	if (cc->npend || cc->pend_db)
		pend_bump(c, cc);
}

/* The head Query was consumed without going to a server (poolmgr.c drops
 * a queued one on a cancel). A lead of it would otherwise stay open: its
 * waiters would wait for this client's next statement, and take that
 * statement's reply for this one's. Ending it sends them to PostgreSQL. */
void proxy_cache_dropped(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc || !c->ctx->cache)
		return;
	if (cc->capturing)
		capture_end(c->ctx, cc, false);
	cache_lookup_cancel(c->ctx->cache, &cc->lk);
	cc->st = CL_NONE;
}

/* A cancel for a client whose lookup is pending: it waits on another
 * client's query of the same statement (single flight) or on Redis, and
 * nothing of its own runs anywhere. PostgreSQL would cancel its query, so
 * it leaves the flight, gets query_canceled and goes on with what it
 * pipelined. May close <c>. */
void proxy_cache_cancel_wait(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;
	struct proxy_ctx *ctx = c->ctx;

	if (!cc || cc->st != CL_PENDING)
		return;
	cache_lookup_cancel(ctx->cache, &cc->lk);
	cc->st = CL_NONE;
	/* the Query, or the group up to its Sync, was whole when it was looked
	 * up: all of it is answered by the error (what is left of a group
	 * would run at PostgreSQL on another statement or portal) */
	proto_buf_consume(&c->io.in, cc->ext ? group_len(c) : head_msg_len(c));
	proxy_client_fail(c, PROXY_ERR_CANCELED, "canceling statement due to user request");
	if (c->state == PROXY_CL_CLOSING)
		return;
	ev_idle_start(ctx->loop, &ctx->kick);
	if (c->state == PROXY_CL_ACTIVE || c->state == PROXY_CL_IDLE)
		proxy_io_start_read(ctx, &c->io);
	proxy_client_process(c);
}

void proxy_cache_client_free(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc)
		return;
	pend_clear(cc);
	cache_capture_reset(&cc->cap);
	free(cc->lost_parse);
	sess_lose(cc);
	free(cc);
	c->cache = NULL;
}
