/*
 * The result cache for the extended protocol (the proxy's side; the simple
 * Query, the writes and a client's lifetime are cache_hooks.c's).
 *
 * A group is looked up at a time: the messages from the head of the
 * client's input up to and including a Sync, all already read, in the
 * form drivers send for one statement:
 *     [Parse s] Bind "" s [Describe portal ""] Execute "" 0 Sync
 * with nothing else between. The text of <s> must be known: the group's
 * own Parse (unnamed or, in transaction mode, named), or a named statement
 * of the client's: in transaction mode prepared.c keeps its text, in
 * session mode this file does (see "named statements in session mode"
 * below). Any other form (a named portal, a row limit, a Flush, several
 * Executes before one Sync, a group not read whole yet, a statement not
 * known) goes to PostgreSQL and, when marked, counts as
 * "extended_protocol". The key adds to a Query's the parameter types of
 * the Parse, the Bind's parameters and format codes, whether the portal is
 * described, and the shape the client was told of a named statement (so
 * that it never gets rows of another shape than the one it decodes by; a
 * first Describe of a named statement goes to PostgreSQL, which tells
 * prepared.c the shape). A hit replays ParseComplete (with a Parse),
 * BindComplete, the RowDescription (with a Describe), the rows and
 * CommandComplete, then ReadyForQuery. What a hit leaves undone at the
 * server is made up:
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
 * sure, what that name means at the server right now. The replies say so,
 * and reply.c's request/reply tracker matches them with their requests:
 * a Parse of a name is stamped with the serial of a pending statement,
 * accepted at its ParseComplete, gone if it fails or the server skips it
 * after an error (proxy_cache_parse_settled); a Describe is stamped with
 * the serial of the statement it describes (proxy_cache_described). A
 * name is forgotten at once when a request sent may drop it: a Close of
 * it, a Parse of it (it replaces, or fails), DEALLOCATE of any form or
 * DISCARD ALL (everything is forgotten), a call of a function that is not
 * PostgreSQL's own, DO or CALL (it may run DEALLOCATE as dynamic SQL), a
 * statement sluice cannot name. Its shape is that of the first
 * RowDescription PostgreSQL gave for it (Describe of the statement, or of
 * the unnamed portal bound to it); a statement not described yet is not
 * served, and the key holds the shape. A client sluice cannot follow (a
 * Query inside an unsynced extended batch, a reply the tracker cannot
 * match) is followed no more: nothing of its is served from then on.
 * Assumed: PostgreSQL's own functions do not deallocate prepared
 * statements.
 */
#include "proxy/cache_int.h"
#include "proxy/stmt.h"

#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

/* Session mode: named statements followed per client, and their bytes. */
#define SESS_MAX_STMTS 1000
#define SESS_MAX_BYTES (1u << 20)

/* A named statement of a session-mode client: pending from its Parse
 * until PostgreSQL answers it, then accepted (or gone). */
struct proxy_sess_stmt {
	UT_hash_handle hh; /* by name: in stmts when accepted, in pending while live */
	UT_hash_handle hs; /* by serial, in by_serial (all of them) */
	uint64_t serial;   /* never 0; the same name parsed again is another */
	uint64_t shape;    /* of the first RowDescription given for it, if has_shape */
	bool has_shape;
	bool accepted; /* its ParseComplete came */
	bool dead;     /* pending: forgotten before its ParseComplete (Close, DEALLOCATE) */
	size_t bytes;
	uint8_t *types; /* int16 count, int32 OIDs */
	size_t types_len;
	char *text;
	char name[]; /* NUL-terminated */
};

static const uint8_t rfq_idle[6] = {'Z', 0, 0, 0, 5, 'I'};
static const uint8_t parse_complete[5] = {'1', 0, 0, 0, 4};
static const uint8_t bind_complete[5] = {'2', 0, 0, 0, 4};

/* ---- named statements in session mode (see the top of this file) ---- */

static void sess_stmt_free(struct proxy_cc_sess *ss, struct proxy_sess_stmt *st)
{
	HASH_DELETE(hs, ss->by_serial, st);
	ss->nstmts--;
	ss->bytes -= st->bytes;
	free(st->types);
	free(st->text);
	free(st);
}

/* A pending statement for a Parse of <name>; NULL (it is not served) when
 * the client holds as many as it may, or out of memory. */
static struct proxy_sess_stmt *sess_new(struct proxy_cc_sess *ss, const char *name,
                                        const char *text, const uint8_t *types, size_t types_len)
{
	size_t nlen = strlen(name), tlen = strlen(text);
	size_t bytes = sizeof(struct proxy_sess_stmt) + nlen + 1 + tlen + 1 + types_len;
	struct proxy_sess_stmt *st;

	if (ss->nstmts >= SESS_MAX_STMTS || ss->bytes + bytes > SESS_MAX_BYTES)
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
	st->serial = ++ss->next_serial;
	st->bytes = bytes;
	ss->nstmts++;
	ss->bytes += bytes;
	HASH_ADD(hs, ss->by_serial, serial, sizeof(st->serial), st);
	HASH_ADD_KEYPTR(hh, ss->pending, st->name, nlen, st);
	return st;
}

/* Forget accepted statement <st>. */
static void sess_drop(struct proxy_cc_sess *ss, struct proxy_sess_stmt *st)
{
	HASH_DELETE(hh, ss->stmts, st);
	sess_stmt_free(ss, st);
}

/* Pending statement <st> will name nothing: its reply frees it. */
static void sess_kill(struct proxy_cc_sess *ss, struct proxy_sess_stmt *st)
{
	HASH_DELETE(hh, ss->pending, st);
	st->dead = true;
}

/* Forget <name>, or every name when NULL: accepted, and Parses of it still
 * pending (their ParseComplete will name nothing). */
static void sess_forget(struct proxy_cc_sess *ss, const char *name)
{
	struct proxy_sess_stmt *st, *tmp;

	if (name) {
		size_t n = strlen(name);

		HASH_FIND(hh, ss->stmts, name, n, st);
		if (st)
			sess_drop(ss, st);
		HASH_FIND(hh, ss->pending, name, n, st);
		if (st)
			sess_kill(ss, st);
		return;
	}
	HASH_ITER(hh, ss->stmts, st, tmp)
	{
		sess_drop(ss, st);
	}
	HASH_ITER(hh, ss->pending, st, tmp)
	{
		sess_kill(ss, st);
	}
}

/* The client's requests can no longer be matched with their replies:
 * forget everything and follow it no more. */
static void sess_lose(struct proxy_cc_sess *ss)
{
	struct proxy_sess_stmt *st, *tmp;

	HASH_CLEAR(hh, ss->stmts);
	HASH_CLEAR(hh, ss->pending);
	HASH_ITER(hs, ss->by_serial, st, tmp)
	{
		sess_stmt_free(ss, st);
	}
	ss->lost = true;
}

static struct proxy_sess_stmt *sess_find(struct proxy_cl_cache *cc, const char *name)
{
	struct proxy_sess_stmt *st = NULL;

	if (cc && !cc->sess.lost)
		HASH_FIND(hh, cc->sess.stmts, name, strlen(name), st);
	return st;
}

/* The statement a Bind or Describe of <name> sent now refers to: a Parse
 * of it still pending (the accepted one was forgotten when it was sent),
 * else the accepted one; 0 if none is followed. */
static uint64_t sess_serial_of(struct proxy_cc_sess *ss, const char *name)
{
	struct proxy_sess_stmt *st;
	size_t n = strlen(name);

	HASH_FIND(hh, ss->pending, name, n, st);
	if (!st)
		HASH_FIND(hh, ss->stmts, name, n, st);
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

/*
 * Stamp <serial> on the entry the tracker queued last, for the request of
 * <kind> just sent to <s> (proxy_cache_sent comes after it), so that its
 * reply comes back here. False if that entry is not there (out of memory:
 * the client is being closed).
 */
static bool stamp(struct proxy_server *s, uint8_t kind, uint64_t serial)
{
	struct proxy_pending *h;

	if (!s || s->track || s->pq.n == 0)
		return false;
	h = proxy_reply_at(&s->pq, s->pq.n - 1);
	if (h->kind != kind || h->serial)
		return false;
	h->serial = serial;
	return true;
}

static void sess_parse(struct proxy_client *c, struct proxy_cc_sess *ss,
                       const struct proxy_ps_msg *m)
{
	struct proto_reader r;
	const char *name, *text;
	struct proxy_sess_stmt *st;

	proto_reader_init(&r, m->body, m->avail);
	name = proto_get_str(&r);
	if (!name) {
		sess_forget(ss, NULL); /* the name it replaces is not known */
		return;
	}
	if (!*name)
		return;
	/* it replaces the name, or fails (the name is taken): either way the
	 * statement known so far is not the server's */
	sess_forget(ss, name);
	text = proto_get_str(&r);
	if (m->avail != (size_t)m->len - 4 || !text || r.n < 2 ||
	    r.n != 2 + 4 * ((size_t)r.p[0] << 8 | r.p[1]))
		return;
	st = sess_new(ss, name, text, r.p, r.n);
	if (st && !stamp(c->server, PROXY_PEND_PARSE, st->serial)) {
		sess_kill(ss, st);
		sess_stmt_free(ss, st);
	}
}

/* Session mode: what request <m>, sent to the client's server, does to
 * its named statements. ctx->note holds its statements. */
static void sess_sent(struct proxy_client *c, struct proxy_cc_sess *ss,
                      const struct proxy_ps_msg *m)
{
	const struct proxy_note *nt = &c->ctx->note;
	struct proto_reader r;
	const char *portal, *name;
	uint64_t serial;
	uint8_t kind;

	if (ss->lost)
		return;
	proto_reader_init(&r, m->body, m->avail);
	switch (m->type) {
	case 'S':
		ss->ext_open = false;
		return;
	case 'Q':
	case 'F':
		if (ss->ext_open) {
			/* kept on the safe side, as when this file matched replies
			 * itself: after an error PostgreSQL skips it to the Sync */
			sess_lose(ss);
			return;
		}
		ss->portal_serial = 0; /* a Query runs in the unnamed portal */
		if (m->type == 'F')
			return;
		if (m->avail != (size_t)m->len - 4 || nt->n >= PROTO_SQL_MAX_STMTS ||
		    (nt->n == 0 && m->avail > 1)) {
			sess_forget(ss, NULL); /* statements not all known */
			return;
		}
		for (unsigned i = 0; i < nt->n; i++)
			if (sess_may_drop(c->ctx, nt->fp[i])) {
				sess_forget(ss, NULL);
				return;
			}
		return;
	case 'P':
		ss->ext_open = true;
		/* its Executes drop statements, if any does: the name is forgotten
		 * first, as the Parse does it */
		sess_parse(c, ss, m);
		if (nt->n > 0 && nt->fp[0] && sess_may_drop(c->ctx, nt->fp[0]))
			sess_forget(ss, NULL);
		return;
	case 'B':
		ss->ext_open = true;
		portal = proto_get_str(&r);
		name = proto_get_str(&r);
		if (!portal || !*portal)
			ss->portal_serial = name && *name ? sess_serial_of(ss, name) : 0;
		return;
	case 'D':
		ss->ext_open = true;
		kind = proto_get_u8(&r);
		name = proto_get_str(&r);
		serial = !name || r.err          ? 0
		         : kind == 'S' && *name  ? sess_serial_of(ss, name)
		         : kind == 'P' && !*name ? ss->portal_serial
		                                 : 0;
		if (serial)
			(void)stamp(c->server,
			            kind == 'S' ? PROXY_PEND_DESCRIBE_S : PROXY_PEND_DESCRIBE_P,
			            serial);
		return;
	case 'C':
		ss->ext_open = true;
		kind = proto_get_u8(&r);
		name = proto_get_str(&r);
		if (r.err || !name)
			sess_forget(ss, NULL);
		else if (kind == 'S' && *name)
			sess_forget(ss, name); /* at once: the safe side */
		return;
	case 'E':
		ss->ext_open = true;
		if (nt->n == 0 || sess_may_drop(c->ctx, nt->fp[0]))
			sess_forget(ss, NULL); /* what it runs is not known */
		return;
	default:
		return;
	}
}

/* The followed statement of serial <serial>, if <c> is followed. */
static struct proxy_sess_stmt *sess_by_serial(struct proxy_client *c, uint64_t serial)
{
	struct proxy_cl_cache *cc = c->cache;
	struct proxy_sess_stmt *st = NULL;

	if (cc && cc->sess.on && !cc->sess.lost)
		HASH_FIND(hs, cc->sess.by_serial, &serial, sizeof(serial), st);
	return st;
}

void proxy_cache_parse_settled(struct proxy_client *c, uint64_t serial, bool accepted)
{
	struct proxy_sess_stmt *st = sess_by_serial(c, serial), *old;
	struct proxy_cc_sess *ss;

	if (!st || st->accepted)
		return;
	ss = &c->cache->sess;
	if (!st->dead)
		HASH_DELETE(hh, ss->pending, st);
	if (!accepted || st->dead) {
		sess_stmt_free(ss, st);
		return;
	}
	/* PostgreSQL has it now */
	HASH_FIND(hh, ss->stmts, st->name, strlen(st->name), old);
	if (old)
		sess_drop(ss, old);
	st->accepted = true;
	HASH_ADD_KEYPTR(hh, ss->stmts, st->name, strlen(st->name), st);
}

/* PostgreSQL described statement <serial>: its shape is the first one
 * given; another one (or one too large to read) ends serving it. */
void proxy_cache_described(struct proxy_client *c, uint64_t serial, uint8_t type,
                           const uint8_t *body, size_t len)
{
	struct proxy_sess_stmt *st = sess_by_serial(c, serial);
	uint64_t shape = 0;
	bool known;

	if (!st || !st->accepted)
		return;
	known = (type == 'n' || body) && proxy_row_shape(type == 'n' ? NULL : body, len, &shape);
	if (!known || (st->has_shape && st->shape != shape)) {
		sess_drop(&c->cache->sess, st);
		return;
	}
	st->shape = shape;
	st->has_shape = true;
}

void proxy_cache_unmatched(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (cc && cc->sess.on && !cc->sess.lost)
		sess_lose(&cc->sess);
}

/* ---- a group up to its Sync ---- */

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
	const char *pname;           /* the Parse's statement name */
	struct proxy_cl_stmt *cs;    /* without a Parse: the client's named statement */
	struct proxy_sess_stmt *sst; /* likewise, in session mode */
	size_t total;                /* bytes of the group, its Sync included */
	bool describe;               /* Describe of the unnamed portal */
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
	} else if (*sname && c->cache && c->cache->sess.on && proxy_cc_sess_mode(c)) {
		/* session mode: a statement PostgreSQL accepted, and described */
		struct proxy_sess_stmt *st = sess_find(c->cache, sname);

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
size_t proxy_cc_group_len(const struct proxy_client *c)
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
int proxy_cc_replay_ext(struct proxy_client *c, const struct cache_entry *e, uint64_t fp)
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
	proxy_cc_count_hit(c, fp);
	return 0;
}

/*
 * The client binds or describes the unnamed statement without parsing it
 * again, and the server's unnamed statement is not the one the client last
 * parsed (that Parse was answered from the cache): send that Parse first,
 * its ParseComplete hidden. A Close of the unnamed statement forgets it.
 * -1 if <c> was closed.
 */
int proxy_cc_restore_parse(struct proxy_client *c, struct proxy_server *s)
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

int proxy_cc_ext_query(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	bool parse = proto_buf_head(&c->io.in)[0] == 'P';
	struct proxy_cl_cache *cc;
	struct ext_group g;
	struct cache_verdict v;
	struct cache_key_input in = {0};
	char settings[PROXY_CC_SETTINGS_MAX];
	const struct stats_shape_info *si;
	uint64_t fp = 0;
	int form = ext_read(c, &g);
	size_t tlen;

	if (form == EXT_UNKNOWN)
		return PROXY_CACHE_GO;
	tlen = strlen(g.text);
	if (!proxy_cc_may_be_marked(ctx, g.text, tlen) || !(cc = proxy_cc_get(c)))
		return PROXY_CACHE_GO;
	if (!s)
		cc->st = PROXY_CC_GO; /* whatever follows, it is decided */
	else
		cc->p_decided = parse; /* proxy_cache_sent must not count it again */
	if (!(si = proxy_cc_decide(c, s, cc, g.text, tlen, &v, &fp)))
		return PROXY_CACHE_GO;
	if (form != EXT_OK) {
		cache_count(ctx->cache, CACHE_EXTENDED);
		return PROXY_CACHE_GO;
	}
	if (proxy_cc_key_session(c, &in, settings, sizeof(settings)) < 0)
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
	return proxy_cc_lookup(c, cc, si, v.ttl_s, fp);
}

/* ---- requests sent, and a client's state ---- */

void proxy_cc_ext_sent(struct proxy_client *c, struct proxy_cl_cache *cc,
                       const struct proxy_ps_msg *m)
{
	const struct proxy_note *nt = &c->ctx->note;

	if (cc && cc->sess.on) {
		if (!proxy_cc_sess_mode(c) && !cc->sess.lost)
			sess_lose(&cc->sess); /* a reload changed the pool's mode */
		sess_sent(c, &cc->sess, m);
	}
	/* the server's unnamed statement is this one's now */
	if (cc && cc->lost_parse &&
	    (m->type == 'Q' || (m->type == 'P' && m->avail > 0 && m->body[0] == 0))) {
		free(cc->lost_parse);
		cc->lost_parse = NULL;
	}
	if (m->type != 'P')
		return;
	/* a marked Parse in a form that is not looked up (behind other
	 * requests, or not decided in proxy_cache_query) is counted */
	if (cc && cc->p_decided)
		cc->p_decided = false;
	else if ((nt->hints & PROTO_SQL_HINT_CACHE) && !(nt->hints & PROTO_SQL_HINT_NOCACHE))
		cache_count(c->ctx->cache, CACHE_EXTENDED);
}

void proxy_cc_ext_init(struct proxy_client *c, struct proxy_cl_cache *cc)
{
	/* named statements are followed from the start of a session
	 * (proxy_cache_sent makes <cc> at its first request) */
	cc->sess.on = proxy_cc_sess_mode(c);
}

void proxy_cc_ext_free(struct proxy_cl_cache *cc)
{
	free(cc->lost_parse);
	cc->lost_parse = NULL;
	sess_lose(&cc->sess);
}
