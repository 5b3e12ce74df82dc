/*
 * The request/reply tracker, in every pool mode.
 *
 * Each request a client sends that PostgreSQL answers (Query, FunctionCall,
 * Parse, Bind, Describe, Close, Execute, Sync) is an entry on its server's
 * queue, in order; each reply closes the entry at the head. After an error
 * the server skips to the next Sync, and so does the queue. prepared.c
 * queues its rewritten and injected requests here too (injected ones
 * hidden, local answers as FAKE entries emitted when they reach the head)
 * and hears back through proxy_ps_reply_*. The cache follows a
 * session-mode client's named statements on the same entries (it stamps
 * its Parses and Describes with a serial, cache_ext.c) and hears back
 * through proxy_cache_parse_settled / _described.
 *
 * Whether a client's Parse named its statement is settled here, for
 * prepared.c and the cache alike (parse_settled): yes at its
 * ParseComplete, no at the error that fails it or makes the server skip
 * it.
 *
 * Statement statistics hang off the same entries: before a client message
 * is queued, proxy_reply_note() finds which statements it runs (a Query's
 * or Parse's text is scanned; a Bind's statement and an Execute's portal
 * are looked up, so an Execute of a known statement costs no scanning), and
 * the entry carries their fingerprints and the time it left. When a
 * CommandComplete or ErrorResponse closes it, stats_record() gets the
 * figures. A Query of several statements is split by its CommandCompletes.
 * Each statement's time runs from its request leaving for the server to
 * the reply that closes it, as the client sees it: PostgreSQL holds the
 * replies of a pipeline until its Sync, so this is never less than what
 * the server spent.
 */
#include "proxy/stmt.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "stats/stats.h"

/* A session-mode client's named statement and its fingerprint. */
struct proxy_named_fp {
	uint64_t key; /* hash of the name */
	uint64_t fp;
	UT_hash_handle hh;
};

/* Named statements remembered per client; beyond, they count as <other>. */
#define NAMED_MAX 10000

/* ---- the queue ---- */

struct proxy_pending *proxy_reply_at(struct proxy_pq *q, size_t i)
{
	return &q->v[(q->head + i) & (q->cap - 1)];
}

static bool stats_on(const struct proxy_ctx *ctx)
{
	return ctx->stats && stats_enabled(ctx->stats);
}

int proxy_reply_push(struct proxy_server *s, uint8_t kind, uint8_t flags, const void *bytes,
                     size_t len)
{
	struct proxy_ctx *ctx = s->ctx;
	struct proxy_pq *q = &s->pq;
	const struct proxy_note *nt = &ctx->note;
	struct proxy_pending *e;

	if (q->n == q->cap) {
		/* a power of two: positions wrap with a mask, not a division */
		size_t ncap = q->cap ? q->cap * 2 : 8;
		struct proxy_pending *nv = malloc(ncap * sizeof(*nv));

		if (!nv)
			return -1;
		for (size_t i = 0; i < q->n; i++)
			nv[i] = *proxy_reply_at(q, i);
		free(q->v);
		q->v = nv;
		q->head = 0;
		q->cap = ncap;
	}
	e = &q->v[(q->head + q->n) & (q->cap - 1)];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->flags = flags;
	e->len = (uint8_t)(len < sizeof(e->bytes) ? len : sizeof(e->bytes));
	if (len)
		memcpy(e->bytes, bytes, e->len);
	if (nt->n > 0 && kind != PROXY_PEND_FAKE) {
		e->fp = nt->fp[0];
		if ((kind == PROXY_PEND_QUERY || kind == PROXY_PEND_EXECUTE) &&
		    !(flags & PROXY_PEND_HIDE)) {
			struct proxy_client *c = s->client;

			e->flags |= PROXY_PEND_TIMED;
			if (s->status == 'T' || s->status == 'E')
				e->flags |= PROXY_PEND_IN_TX;
			e->t0 = stats_clock_ns();
			if (c) {
				e->wait_ns = c->wait_ns;
				c->wait_ns = 0;
			}
			if (kind == PROXY_PEND_QUERY && nt->n > 1) {
				e->more = malloc((nt->n - 1) * sizeof(uint64_t));
				if (!e->more)
					return -1;
				memcpy(e->more, nt->fp + 1, (nt->n - 1) * sizeof(uint64_t));
				e->nmore = (uint16_t)(nt->n - 1);
			}
		}
	}
	q->n++;
	return 0;
}

static void pop(struct proxy_pq *q)
{
	struct proxy_pending *h;

	if (q->n == 0)
		return;
	h = proxy_reply_at(q, 0);
	free(h->more);
	h->more = NULL;
	q->head = (q->head + 1) & (q->cap - 1);
	q->n--;
}

void proxy_reply_copy_in(struct proxy_server *s, unsigned n)
{
	struct proxy_pq *q = &s->pq;
	struct proxy_pending h;
	size_t drop = 0;

	while (drop < n && drop + 1 < q->n && proxy_reply_at(q, drop + 1)->kind == PROXY_PEND_SYNC)
		drop++;
	if (!drop)
		return;
	/* they own nothing (only a Query's entry has <more>): the head moves
	 * over them */
	h = *proxy_reply_at(q, 0);
	q->head = (q->head + drop) & (q->cap - 1);
	q->n -= drop;
	*proxy_reply_at(q, 0) = h;
}

void proxy_pq_free(struct proxy_pq *q)
{
	while (q->n > 0)
		pop(q);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

/* ---- what a client message runs ---- */

/* The memo's entry for <key> when it is there and stats/ still knows its
 * shape: its fingerprint and hints are then the note's. The shape's bits
 * for pin.c are kept in the entry while its reference holds (the same
 * shape, so the same bits). */
static struct proxy_text_memo *memo_hit(struct proxy_ctx *ctx, uint64_t key, const uint8_t *p,
                                        size_t len)
{
	struct proxy_text_memo *m = &ctx->text_memo[key % PROXY_TEXT_MEMO];
	struct proxy_note *nt = &ctx->note;
	const struct stats_shape_info *si;
	uint64_t gen = m->ref.gen;

	if (m->key != key ||
	    !(si = stats_shape_again_ref(ctx->stats, m->fp, (const char *)p, len, &m->ref)))
		return NULL;
	if (m->ref.gen != gen) {
		m->ss = proxy_pin_shape_bits(si);
		m->nh = si->obj_hash;
	}
	nt->ss[nt->n] = m->ss;
	nt->nh[nt->n] = m->nh;
	nt->fp[nt->n++] = m->fp;
	nt->hints = m->hints;
	nt->cache_ttl = m->cache_ttl;
	return m;
}

/*
 * Scan the statement text at <p> (at most <n> bytes, NUL-terminated within
 * them when the message is whole) into ctx->note, noting each shape with
 * stats/ (its session-state bits too, for pin.c). Returns the first
 * statement's fingerprint, 0 if none.
 *
 * Most texts come again with other literal values, or (a driver's Parse)
 * as they were: a text of one statement is remembered by its skeleton
 * (proto_sql_skeleton), so that seeing it again costs one light pass and
 * no full scan. A Parse text the skeleton does not follow (it holds $n) is
 * remembered by a hash of its raw bytes instead, which no skeleton of
 * another text can equal (see proto.h). <remember> asks for that.
 */
/*
 * The skeleton key of the Query text <p, len>, by way of the client's
 * last one (<t>, NULL is fine) when it is that text but for an integer;
 * else by a skeleton pass, keeping the text as <t>'s last when it can be
 * compared with.
 */
static uint64_t query_key(struct proxy_cl_track *t, const uint8_t *p, size_t len)
{
	const char *sql = (const char *)p;
	struct proto_sql_lits lits;
	uint64_t key;

	if (!t)
		return proto_sql_skeleton(sql, len);
	if (t->rep_key && proto_sql_again(sql, len, t->rep_text, t->rep_len, &t->rep_lits))
		return t->rep_key;
	key = proto_sql_skeleton_lits(sql, len, &lits);
	if (key && lits.kind != PROTO_SQL_LITS_OTHER && len <= PROXY_REPEAT_MAX &&
	    (t->rep_text || (t->rep_text = malloc(PROXY_REPEAT_MAX)))) {
		memcpy(t->rep_text, sql, len);
		t->rep_len = (uint32_t)len;
		t->rep_lits = lits;
		t->rep_key = key;
	}
	return key;
}

static uint64_t scan_text(struct proxy_ctx *ctx, struct proxy_cl_track *t, const uint8_t *p,
                          size_t n, bool whole, bool remember)
{
	/* a whole Query ends in its text's NUL; a NUL inside it ends the text
	 * for the scanner (it looks) and gets no skeleton */
	const uint8_t *nul =
	        whole && !remember && n > 0 && p[n - 1] == '\0' ? p + n - 1 : memchr(p, '\0', n);
	size_t len = nul ? (size_t)(nul - p) : n;
	struct proto_sql_scan sc;
	struct proxy_note *nt = &ctx->note;
	struct proxy_text_memo *m = NULL;
	struct stats_ref ref = {0};
	uint64_t key = 0;

	nt->n = 0;
	nt->hints = 0;
	nt->cache_ttl = 0;
	if (nul || whole) {
		/* a Parse text mostly comes again as it was, and holds $n,
		 * which the skeleton does not follow: its raw bytes first */
		if (remember && (m = memo_hit(ctx, XXH3_64bits(p, len) | 1, p, len)))
			return m->fp;
		key = remember ? proto_sql_skeleton((const char *)p, len) : query_key(t, p, len);
		if (key && (m = memo_hit(ctx, key, p, len)))
			return m->fp;
		if (!key && remember)
			key = XXH3_64bits(p, len) | 1;
		m = key ? &ctx->text_memo[key % PROXY_TEXT_MEMO] : NULL;
	}
	proto_sql_scan((const char *)p, len, nul != NULL || whole, ctx->scan_buf,
	               sizeof(ctx->scan_buf), &sc);
	for (unsigned i = 0; i < sc.nstmts; i++) {
		const struct proto_sql_stmt *st = &sc.stmt[i];

		const struct stats_shape_info *si =
		        stats_shape_seen_ref(ctx->stats, st, ctx->scan_buf + st->norm_off,
		                             (const char *)p + st->src_off, &ref);

		nt->ss[nt->n] = proxy_pin_shape_bits(si);
		/* a DO block: its own body says what state it may make (every
		 * DO has one shape); never memoized, as the text is what counts */
		if (nt->ss[nt->n] & STATS_SS_CODE)
			nt->ss[nt->n] |=
			        stats_code_session((const char *)p + st->src_off, st->src_len) &
			        ~STATS_SS_SET_UNNAMED;
		nt->nh[nt->n] = si ? si->obj_hash : 0;
		nt->fp[nt->n++] = st->fp;
	}
	if (sc.nstmts) {
		nt->hints = sc.stmt[0].hints;
		nt->cache_ttl = sc.stmt[0].cache_ttl;
	}
	if (m && sc.nstmts == 1 && !sc.stmt[0].cut && !(nt->ss[0] & STATS_SS_CODE)) {
		m->key = key;
		m->fp = sc.stmt[0].fp;
		m->hints = sc.stmt[0].hints;
		m->cache_ttl = sc.stmt[0].cache_ttl;
		m->ss = nt->ss[0];
		m->nh = nt->nh[0];
		m->ref = ref;
	}
	return nt->n ? nt->fp[0] : 0;
}

/* proxy_reply_text_fp, with the first statement's session bits in <ss>. */
static uint64_t text_fp_ss(struct proxy_ctx *ctx, const char *sql, size_t len, bool complete,
                           uint32_t *ss)
{
	struct proxy_note saved = ctx->note;
	uint64_t fp;

	fp = scan_text(ctx, NULL, (const uint8_t *)sql, len, complete, false);
	*ss = ctx->note.n ? ctx->note.ss[0] : 0;
	ctx->note = saved;
	return fp;
}

uint64_t proxy_reply_text_fp(struct proxy_ctx *ctx, const char *sql, size_t len, bool complete)
{
	uint32_t ss;

	return text_fp_ss(ctx, sql, len, complete, &ss);
}

/* A statement or portal name's key; its low bits hash the named table
 * (an XXH3 hash needs no second one). */
static uint64_t name_key(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

static void named_set(struct proxy_client *c, const char *name, uint64_t fp)
{
	struct proxy_named_fp *e = NULL;
	uint64_t key = name_key(name);

	HASH_FIND_BYHASHVALUE(hh, c->track->named, &key, sizeof(key), (unsigned)key, e);
	if (e) {
		e->fp = fp;
		return;
	}
	if (c->track->nnamed >= NAMED_MAX || !(e = malloc(sizeof(*e))))
		return; /* its executions count as <other> */
	e->key = key;
	e->fp = fp;
	HASH_ADD_BYHASHVALUE(hh, c->track->named, key, sizeof(e->key), (unsigned)key, e);
	c->track->nnamed++;
}

static struct proxy_named_fp *named_find(struct proxy_client *c, const char *name)
{
	struct proxy_named_fp *e = NULL;
	uint64_t key = name_key(name);

	HASH_FIND_BYHASHVALUE(hh, c->track->named, &key, sizeof(key), (unsigned)key, e);
	return e;
}

/* The fingerprint of the client's statement <name> ("" = unnamed), and
 * its session-state bits in <ss> (none for session mode's named ones:
 * session mode takes no pins). */
static uint64_t stmt_fp(struct proxy_client *c, struct proxy_server *s, const char *name,
                        uint32_t *ss)
{
	struct proxy_named_fp *e;

	*ss = 0;
	if (!*name) {
		*ss = c->track->unnamed_ss;
		return c->track->unnamed_fp;
	}
	if (s->track) {
		/* transaction mode: the registry knows the text, scanned once */
		struct proxy_cl_stmt *cs = proxy_cl_find(c, name);
		struct proxy_stmt *st = cs ? cs->stmt : NULL;

		if (!st || !st->query)
			return 0;
		/* scanned again only if its shape was not known then (out of memory) */
		if ((!st->fp || !(st->ss & PROXY_SS_KNOWN)) && !c->fill)
			st->fp = text_fp_ss(c->ctx, st->query, strlen(st->query), true, &st->ss);
		*ss = st->ss;
		return st->fp;
	}
	e = named_find(c, name);
	return e ? e->fp : 0;
}

/* What a statement of bits <ss> and text <sql> (at most <n> bytes, 0 when
 * not all there) does to extra_float_digits: a PROXY_EFD_* code, 0 for
 * nothing sluice can follow (pin_hooks.c). */
static int16_t efd_code(uint32_t ss, const char *sql, size_t n)
{
	if (ss & PROXY_SS_EFD_ALL)
		return PROXY_EFD_RESET;
	if (!(ss & PROXY_SS_EFD) || n == 0)
		return 0;
	return proxy_efd_parse(sql, strnlen(sql, n));
}

void proxy_reply_note(struct proxy_client *c, struct proxy_server *s, const struct proxy_ps_msg *m)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_note *nt = &ctx->note;
	struct proto_reader r;
	bool whole = m->avail == (size_t)m->len - 4;
	uint64_t fp = 0;
	uint32_t ss = 0;

	nt->n = 0;
	nt->efd = 0;
	/* pins need the statements even when statistics are off */
	if (!stats_on(ctx) && !proxy_pin_wanted(s) && !ctx->cache && !(s->track && c->start_mask))
		return;
	if (!c->track && !(c->track = calloc(1, sizeof(*c->track))))
		return; /* out of memory: its statements count as <other> */
	proto_reader_init(&r, m->body, m->avail);
	switch (m->type) {
	case 'Q':
		if (m->avail > 0)
			scan_text(ctx, c->track, m->body, m->avail, whole, false);
		/* the value is in this text, not in its shape (pin_hooks.c) */
		if (nt->n == 1)
			nt->efd = efd_code(nt->ss[0], (const char *)m->body, whole ? m->avail : 0);
		return;
	case 'P': {
		const char *name = proto_get_str(&r);

		if (!name)
			return;
		fp = r.n > 0 ? scan_text(ctx, NULL, r.p, r.n, whole, true) : 0;
		ss = fp ? nt->ss[0] : 0;
		if (!*name) {
			c->track->unnamed_fp = fp;
			c->track->unnamed_ss = ss;
			c->track->unnamed_efd = efd_code(ss, (const char *)r.p, whole ? r.n : 0);
		} else if (!s->track)
			named_set(c, name, fp);
		break;
	}
	case 'B': {
		const char *portal = proto_get_str(&r);
		const char *name = proto_get_str(&r);

		if (!portal || !name)
			return;
		fp = stmt_fp(c, s, name, &ss);
		if (ss & PROXY_SS_EFD_ANY) {
			/* the value its text gives, each time it is bound */
			if (!*name) {
				nt->efd = c->track->unnamed_efd;
			} else if (s->track) {
				struct proxy_cl_stmt *cs = proxy_cl_find(c, name);

				if (cs && cs->stmt && cs->stmt->query)
					nt->efd = efd_code(ss, cs->stmt->query,
					                   strlen(cs->stmt->query) + 1);
			}
		}
		if (!*portal) {
			c->track->portal_fp = fp;
			c->track->portal_ss = ss;
		} else {
			c->track->nportal_hash = name_key(portal);
			c->track->nportal_fp = fp;
			c->track->nportal_ss = ss;
		}
		break;
	}
	case 'E': {
		const char *portal = proto_get_str(&r);

		if (!portal)
			return;
		if (!*portal) {
			fp = c->track->portal_fp;
			ss = c->track->portal_ss;
		} else if (name_key(portal) == c->track->nportal_hash) {
			fp = c->track->nportal_fp;
			ss = c->track->nportal_ss;
		}
		break;
	}
	case 'C': {
		uint8_t kind = proto_get_u8(&r);
		const char *name = proto_get_str(&r);
		struct proxy_named_fp *e;

		if (kind == 'S' && name && *name && !s->track && (e = named_find(c, name))) {
			HASH_DEL(c->track->named, e); // NOLINT(clang-analyzer-unix.Malloc)
			free(e);
			c->track->nnamed--;
		}
		return;
	}
	default:
		return;
	}
	nt->fp[0] = fp;
	nt->ss[0] = ss;
	nt->n = fp != 0;
}

int proxy_reply_request(struct proxy_client *c, struct proxy_server *s, struct proxy_ps_msg *m)
{
	struct proto_reader r;
	uint8_t kind;

	(void)c;
	switch (m->type) {
	case 'Q':
	case 'F':
		kind = PROXY_PEND_QUERY;
		break;
	case 'S':
		kind = PROXY_PEND_SYNC;
		break;
	case 'E':
		kind = PROXY_PEND_EXECUTE;
		break;
	case 'P':
		kind = PROXY_PEND_PARSE;
		break;
	case 'B':
		kind = PROXY_PEND_BIND;
		break;
	case 'C':
		kind = PROXY_PEND_CLOSE;
		break;
	case 'D':
		proto_reader_init(&r, m->body, m->avail);
		kind = proto_get_u8(&r) == 'S' ? PROXY_PEND_DESCRIBE_S : PROXY_PEND_DESCRIBE_P;
		break;
	default:
		return PROXY_PS_FORWARD;
	}
	return proxy_reply_push(s, kind, 0, NULL, 0) < 0 ? -1 : PROXY_PS_FORWARD;
}

/* ---- replies ---- */

/*
 * A client's Parse (entry <h>, its <serial> the statement it names) is
 * settled: accepted at its ParseComplete; refused when it fails or the
 * server skips it after an error (it names nothing, as in PostgreSQL).
 * prepared.c names the statement when the Parse is sent (a Parse of the
 * name behind it is PostgreSQL's 42P05) and forgets it if refused; the
 * cache holds it pending until accepted.
 */
static void parse_settled(struct proxy_server *s, const struct proxy_pending *h, bool accepted)
{
	struct proxy_client *c = s->client;

	if (h->kind != PROXY_PEND_PARSE || !h->serial || !c)
		return;
	if (s->track) {
		if (!accepted)
			proxy_ps_parse_refused(c, h->serial);
	} else if (c->cache) {
		proxy_cache_parse_settled(c, h->serial, accepted);
	}
}

/* A reply that fits no entry (a ParseComplete, RowDescription or
 * ReadyForQuery without the request it answers): what the cache follows
 * on this session-mode link can no longer be trusted. */
static void unmatched(struct proxy_server *s)
{
	if (!s->track && s->client && s->client->cache)
		proxy_cache_unmatched(s->client);
}

bool proxy_reply_wants_body(const struct proxy_server *s)
{
	const struct proxy_pending *h;

	if (s->pq.n == 0)
		return false;
	h = &s->pq.v[s->pq.head];
	return (h->kind == PROXY_PEND_DESCRIBE_S || h->kind == PROXY_PEND_DESCRIBE_P) &&
	       ((h->flags & (PROXY_PEND_SHAPE_KEEP | PROXY_PEND_SHAPE_CHECK)) ||
	        (h->serial && !s->track));
}

/* Whether the tag at <p> (<n> bytes) starts with the word <w> and a space. */
#define TAG_IS(p, n, w) ((n) > sizeof(w) && memcmp((p), w " ", sizeof(w)) == 0)

/* Whether the 7 or more bytes at <p> start with "SELECT ": two loads
 * (bytes 0-3 and 3-6) and two comparisons, where memcmp is a call. */
static inline bool is_select(const uint8_t *p)
{
	static const char sel[] = "SELECT ";
	uint32_t a, b, x, y;

	memcpy(&a, p, 4);
	memcpy(&b, p + 3, 4);
	memcpy(&x, sel, 4);
	memcpy(&y, sel + 3, 4);
	return a == x && b == y;
}

/* Rows of a CommandComplete tag ("SELECT 5", "INSERT 0 5"); -1 if none. */
static int64_t tag_rows(const uint8_t *body, size_t len)
{
	const uint8_t *end, *p;
	int64_t rows = 0;
	size_t n;
	bool ok;

	if (!body || len == 0)
		return -1;
	/* most tags are a SELECT's: "SELECT <rows>" and its NUL, the digits
	 * read at once */
	if (len > 8 && body[len - 1] == '\0' && is_select(body)) {
		for (p = body + 7, end = body + len - 1; p < end && rows < (INT64_MAX - 9) / 10;
		     p++) {
			if (*p < '0' || *p > '9')
				goto slow;
			rows = rows * 10 + (*p - '0');
		}
		return rows;
	}
slow:
	rows = 0;
	/* the tag is the whole message: its NUL is the last byte */
	end = body[len - 1] == '\0' ? body + len - 1 : memchr(body, '\0', len);
	if (!end)
		return -1;
	n = (size_t)(end - body);
	switch (body[0]) {
	case 'S':
		ok = TAG_IS(body, n, "SELECT");
		break;
	case 'I':
		ok = TAG_IS(body, n, "INSERT");
		break;
	case 'U':
		ok = TAG_IS(body, n, "UPDATE");
		break;
	case 'D':
		ok = TAG_IS(body, n, "DELETE");
		break;
	case 'M':
		ok = TAG_IS(body, n, "MERGE") || TAG_IS(body, n, "MOVE");
		break;
	case 'C':
		ok = TAG_IS(body, n, "COPY");
		break;
	case 'F':
		ok = TAG_IS(body, n, "FETCH");
		break;
	default:
		ok = false;
		break;
	}
	if (!ok)
		return -1;
	p = end;
	while (p > body && p[-1] >= '0' && p[-1] <= '9')
		p--;
	if (p == end)
		return -1;
	for (; p < end && rows < (INT64_MAX - 9) / 10; p++)
		rows = rows * 10 + (*p - '0');
	return rows;
}

/* Hand one closed statement to stats/. */
static void record(struct proxy_server *s, const struct proxy_pending *h, uint64_t fp, uint64_t t0,
                   uint64_t wait_ns, int64_t rows, const char *sqlstate)
{
	struct proxy_client *c = s->client;
	struct stats_event ev;

	/* stats_record itself returns when tracking is off */
	if (!fp || !c || !c->pool || !c->pool->stats_scope || !s->ctx->stats)
		return;
	/* every field is set: no memset of the whole event per statement */
	ev.scope = c->pool->stats_scope;
	ev.fp = fp;
	ev.end_ns = stats_clock_ns();
	ev.start_ns = t0 && t0 <= ev.end_ns ? t0 : ev.end_ns;
	ev.wait_ns = wait_ns;
	ev.rows = rows;
	if (sqlstate) {
		memcpy(ev.sqlstate, sqlstate, 5);
		ev.sqlstate[5] = '\0';
	} else {
		memset(ev.sqlstate, 0, sizeof(ev.sqlstate));
	}
	ev.in_tx = (h->flags & PROXY_PEND_IN_TX) != 0;
	ev.app_name = c->vars[PROXY_VAR_APPLICATION_NAME];
	ev.client_addr = c->addr;
	ev.server_pid = s->be_pid;
	ev.client = c->track ? &c->track->stats : NULL;
	stats_record(s->ctx->stats, &ev);
}

/* The fingerprint of a Query's statement that the next reply closes. */
static uint64_t query_fp(const struct proxy_pending *h)
{
	if (h->sub == 0)
		return h->fp;
	return h->sub <= h->nmore ? h->more[h->sub - 1] : 0;
}

static void error_closes(struct proxy_server *s, struct proxy_pending *h, const uint8_t *body,
                         size_t len)
{
	struct proto_msg m = {.type = 'E', .body = body, .body_len = len};
	struct proto_error e;
	const char *state = body && proto_parse_error(&m, &e) == 0 ? e.sqlstate : "XX000";
	struct proxy_client *c = s->client;

	if (h->kind == PROXY_PEND_QUERY) {
		if (h->flags & PROXY_PEND_TIMED)
			record(s, h, query_fp(h), h->t0, h->sub == 0 ? h->wait_ns : 0, -1, state);
		h->sub = (uint16_t)(h->nmore + 1); /* the rest of the string does not run */
		return;
	}
	if (h->kind == PROXY_PEND_EXECUTE && c && c->track && c->track->susp_fp) {
		c->track->susp_fp = 0;
		c->track->susp_ns = 0;
		c->track->susp_rows = 0;
	}
	/* a failed Parse or Bind of a client's statement is an error of it */
	if ((h->flags & PROXY_PEND_TIMED) || h->kind == PROXY_PEND_PARSE ||
	    h->kind == PROXY_PEND_BIND)
		record(s, h, h->fp, h->t0, h->wait_ns, -1, state);
}

/* CommandComplete (<body> its tag) or EmptyQueryResponse closes the
 * statement at the head. */
static void complete(struct proxy_server *s, struct proxy_pending *h, uint8_t type,
                     const uint8_t *body, size_t len)
{
	struct proxy_client *c = s->client;
	int64_t rows;

	if (!(h->flags & PROXY_PEND_TIMED))
		return;
	rows = type == 'C' ? tag_rows(body, len) : -1;
	if (h->kind == PROXY_PEND_QUERY) {
		if (type == 'C')
			record(s, h, query_fp(h), h->t0, h->sub == 0 ? h->wait_ns : 0, rows, NULL);
		h->sub++;
		return;
	}
	if (type != 'C')
		return; /* an empty query: PostgreSQL counts nothing either */
	if (c && c->track && c->track->susp_fp && c->track->susp_fp == h->fp) {
		/* the last part of a portal run with a row limit: one call in all */
		uint64_t now = stats_clock_ns();
		uint64_t took = c->track->susp_ns + (h->t0 && h->t0 < now ? now - h->t0 : 0);

		rows = (int64_t)c->track->susp_rows + h->rows;
		c->track->susp_fp = 0;
		c->track->susp_ns = 0;
		c->track->susp_rows = 0;
		record(s, h, h->fp, now - took, h->wait_ns, rows, NULL);
		return;
	}
	record(s, h, h->fp, h->t0, h->wait_ns, rows, NULL);
}

/* PortalSuspended: the Execute's row limit was reached; a later Execute
 * of the portal goes on with it. */
static void suspended(struct proxy_server *s, const struct proxy_pending *h)
{
	struct proxy_client *c = s->client;
	uint64_t now;

	if (!(h->flags & PROXY_PEND_TIMED) || !c || !c->track || !h->fp)
		return;
	now = stats_clock_ns();
	if (c->track->susp_fp != h->fp) {
		c->track->susp_ns = 0;
		c->track->susp_rows = 0;
	}
	c->track->susp_fp = h->fp;
	c->track->susp_ns += h->t0 && h->t0 < now ? now - h->t0 : 0;
	c->track->susp_rows += h->rows;
}

int proxy_reply_track(struct proxy_server *s, uint8_t type, const uint8_t *body, size_t len)
{
	struct proxy_pq *q = &s->pq;
	struct proxy_pending *h;
	bool hide;

	if (q->n == 0) {
		if (type == '1' || type == 'Z')
			unmatched(s);
		return 0;
	}
	h = proxy_reply_at(q, 0);
	hide = (h->flags & PROXY_PEND_HIDE) != 0;
	switch (type) {
	case 'D':
		h->rows++;
		return 0;
	case 'E': {
		int rc;

		proxy_ps_reply_error(s, body, len);
		error_closes(s, h, body, len);
		/* a Query's error skips nothing; nor does a Sync's own (the
		 * implicit transaction failed to commit: a deferred constraint),
		 * and its ReadyForQuery follows */
		if (h->kind == PROXY_PEND_QUERY || h->kind == PROXY_PEND_SYNC)
			return 0;
		/* the client must learn why its statement fails, even if we injected it */
		if (h->kind == PROXY_PEND_PARSE)
			hide = false;
		rc = (h->flags & PROXY_PEND_STALE) ? PROXY_PS_STALE_ERROR : hide ? 1 : 0;
		/* the failed request, then everything up to Sync is skipped */
		do {
			h = proxy_reply_at(q, 0);
			proxy_ps_reply_skipped(s, h);
			parse_settled(s, h, false);
			pop(q);
		} while (q->n > 0 && proxy_reply_at(q, 0)->kind != PROXY_PEND_SYNC);
		return rc;
	}
	case '1':
		if (h->kind != PROXY_PEND_PARSE)
			unmatched(s);
		proxy_ps_reply_parsed(s, h);
		parse_settled(s, h, true);
		/* fall through */
	case '2':
	case '3':
		if (h->kind == PROXY_PEND_QUERY)
			return 0;
		pop(q);
		return hide ? 1 : 0;
	case 't':
		/* ParameterDescription comes first in the answer to a Describe */
		return h->kind == PROXY_PEND_DESCRIBE_S && hide ? 1 : 0;
	case 'T':
	case 'n':
		if (h->kind != PROXY_PEND_DESCRIBE_S && h->kind != PROXY_PEND_DESCRIBE_P) {
			if (h->kind != PROXY_PEND_QUERY && h->kind != PROXY_PEND_SYNC)
				unmatched(s);
			/* a Query's RowDescription; NoData only answers a Describe */
			if (type == 'n' && h->kind != PROXY_PEND_QUERY)
				pop(q);
			return 0;
		}
		if (h->flags & (PROXY_PEND_SHAPE_KEEP | PROXY_PEND_SHAPE_CHECK))
			proxy_ps_reply_described(s, h, type, body, len);
		else if (h->serial && !s->track && s->client && s->client->cache)
			proxy_cache_described(s->client, h->serial, type, body, len);
		pop(q);
		return hide ? 1 : 0;
	case 'C':
	case 'I':
		if (h->kind == PROXY_PEND_EXECUTE || h->kind == PROXY_PEND_QUERY)
			complete(s, h, type, body, len);
		if (h->kind == PROXY_PEND_EXECUTE)
			pop(q);
		return 0;
	case 's':
		if (h->kind == PROXY_PEND_EXECUTE) {
			suspended(s, h);
			pop(q);
		}
		return 0;
	case 'Z':
		if (h->kind == PROXY_PEND_SYNC || h->kind == PROXY_PEND_QUERY)
			pop(q);
		else
			unmatched(s);
		return 0;
	default:
		return 0;
	}
}

int proxy_reply_take_fake(struct proxy_server *s, uint8_t *buf, size_t *len)
{
	struct proxy_pq *q = &s->pq;
	struct proxy_pending *h;

	if (q->n == 0)
		return 0;
	h = proxy_reply_at(q, 0);
	if (h->kind != PROXY_PEND_FAKE)
		return 0;
	if (h->flags & PROXY_PEND_FAKE_LISTEN) {
		struct proto_buf b;

		proto_buf_init(&b);
		if (proxy_put_err(&b, PROXY_ERR_LISTEN_IN_TX_MODE,
		                  "LISTEN is not supported in transaction pooling mode",
		                  "notifications are delivered to one server connection, which "
		                  "this client does not keep") < 0 ||
		    proto_put_rfq(&b, s->status ? s->status : 'I') < 0 ||
		    proto_buf_avail(&b) > PROXY_FAKE_MAX) {
			proto_buf_free(&b);
			return 0;
		}
		*len = proto_buf_avail(&b);
		memcpy(buf, proto_buf_head(&b), *len);
		proto_buf_free(&b);
		pop(q);
		return 1;
	}
	memcpy(buf, h->bytes, h->len);
	*len = h->len;
	if (h->flags & PROXY_PEND_FAKE_RFQ)
		buf[*len - 1] = (uint8_t)(s->status ? s->status : 'I');
	pop(q);
	return 1;
}

void proxy_reply_client_free(struct proxy_client *c)
{
	struct proxy_cl_track *t = c->track;
	struct proxy_named_fp *e, *tmp;

	if (!t)
		return;
	HASH_ITER(hh, t->named, e, tmp)
	{
		HASH_DEL(t->named, e); // NOLINT(clang-analyzer-unix.Malloc)
		free(e);
	}
	stats_client_free(c->ctx->stats, t->stats);
	free(t->rep_text);
	free(t);
	c->track = NULL;
}
