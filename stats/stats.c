/*
 * Statement statistics: the tables behind SHOW QUERIES, SHOW CLASSES and
 * /metrics. The proxy calls two hooks (stats_shape_seen at a scanned
 * statement, stats_record when a reply closes a request); the rest is
 * bookkeeping with no socket and no event loop.
 *
 * - The shape memo maps a fingerprint to what the parser said of it
 *   (stats_classify, run once per new fingerprint), its normalized text and
 *   optionally an example with literals. It is an LRU of
 *   max(1000, 2 * max_statements) shapes; a shape a row or an N+1 record
 *   shows is pinned (out of the LRU) so that a live row never loses its
 *   text, which bounds the memo at that plus the pins.
 * - A scope is one (database, user), referenced by its pool and by rows.
 * - A row is one (scope, fingerprint). At most max_statements of them, in
 *   an LRU: the least recently used folds (every counter, the Welford
 *   moments and the histogram merged) into its database's <other> row,
 *   which is keyed (database, user "") and is not counted in the bound:
 *   there is one per database and databases are few.
 * - calls counts the executions that succeeded, as pg_stat_statements
 *   does; times, rows and the histogram are theirs. An execution closed
 *   by an ErrorResponse counts in errors (by SQLSTATE class) and its wait
 *   time, not its run time. The slow log takes both.
 */
#include "stats/stats_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *stats_alloc(struct stats *st, size_t n)
{
	void *p = calloc(1, n);

	if (p)
		st->mem += n;
	return p;
}

void stats_release(struct stats *st, void *p, size_t n)
{
	if (!p)
		return;
	st->mem -= n;
	free(p);
}

char *stats_strndup(struct stats *st, const char *src, size_t n, size_t cap, size_t *size)
{
	char *p;

	if (n >= cap) {
		n = cap - 1;
		/* never end inside a UTF-8 sequence: back off its continuation bytes */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	p = stats_alloc(st, n + 1);
	if (!p)
		return NULL;
	memcpy(p, src, n);
	p[n] = 0;
	*size = n + 1;
	return p;
}

/* Unix time of the monotonic instant <ns>, given both clocks read now. */
static double wall_of(uint64_t ns, uint64_t mono_now, double wall_now)
{
	return wall_now - ((double)mono_now - (double)ns) / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- shape memo ---- */

static size_t memo_bound(const struct stats *st)
{
	size_t b = 2 * (size_t)st->cfg.max_statements;

	return b < STATS_MEMO_MIN ? STATS_MEMO_MIN : b;
}

struct stats_shape *stats_shape_lookup(struct stats *st, uint64_t fp, bool touch)
{
	struct stats_shape *sh;

	HASH_FIND(hh, st->shapes, &fp, sizeof(fp), sh);
	if (sh && touch && sh->refs == 0)
		stats_lru_touch(&st->shape_lru, &sh->lru);
	return sh;
}

void stats_shape_pin(struct stats *st, struct stats_shape *sh)
{
	(void)st;
	if (!sh)
		return;
	if (sh->refs++ == 0)
		stats_lru_unlink(&sh->lru);
}

static void shape_free(struct stats *st, struct stats_shape *sh)
{
	st->shape_gen++; /* every struct stats_ref set before may name it */
	/* the analyzer loses track of the table uthash frees with its last entry */
	// NOLINTNEXTLINE(clang-analyzer-unix.Malloc,clang-analyzer-core.NullDereference)
	HASH_DEL(st->shapes, sh);
	stats_lru_unlink(&sh->lru);
	st->nshapes--;
	stats_shape_info_free(&sh->info);
	stats_release(st, sh->text, sh->text_size);
	stats_release(st, sh->example, sh->example_size);
	stats_release(st, sh, sizeof(*sh));
}

static void memo_trim(struct stats *st)
{
	while (st->nshapes > memo_bound(st) && !stats_lru_empty(&st->shape_lru))
		shape_free(st, stats_lru_entry(st->shape_lru.prev, struct stats_shape, lru));
}

void stats_shape_unpin(struct stats *st, struct stats_shape *sh)
{
	if (!sh || --sh->refs > 0)
		return;
	stats_lru_push(&st->shape_lru, &sh->lru);
	memo_trim(st);
}

static void shape_example(struct stats *st, struct stats_shape *sh, const char *src, size_t len)
{
	if (!st->cfg.track_literals || sh->example || !src)
		return;
	sh->example = stats_strndup(st, src, len, STATS_EXAMPLE_MAX, &sh->example_size);
}

/* What a classifier may leave behind is made safe to read and to free. */
static void shape_sanitize(struct stats_shape_info *in)
{
	if (in->cls >= STATS_NCLASSES)
		in->cls = STATS_CL_OTHER;
	if (in->nread > STATS_MAX_TABLES)
		in->nread = STATS_MAX_TABLES;
	if (in->nwritten > STATS_MAX_TABLES)
		in->nwritten = STATS_MAX_TABLES;
}

static void ref_set(const struct stats *st, struct stats_ref *ref, const struct stats_shape *sh)
{
	if (!ref)
		return;
	ref->sh = sh;
	ref->gen = sh ? st->shape_gen : 0;
}

const struct stats_shape_info *stats_shape_seen(struct stats *st, const struct proto_sql_stmt *s,
                                                const char *norm, const char *src)
{
	return stats_shape_seen_ref(st, s, norm, src, NULL);
}

const struct stats_shape_info *stats_shape_seen_ref(struct stats *st,
                                                    const struct proto_sql_stmt *s,
                                                    const char *norm, const char *src,
                                                    struct stats_ref *ref)
{
	struct stats_shape *sh;
	const char *sql = src;
	size_t len;

	ref_set(st, ref, NULL);
	if (!st || (!st->cfg.track && !st->cfg.memo) || !s || s->fp == 0)
		return NULL;
	sh = stats_shape_lookup(st, s->fp, true);
	if (sh) {
		shape_example(st, sh, src, s->src_len);
		ref_set(st, ref, sh);
		return &sh->info;
	}
	sh = stats_alloc(st, sizeof(*sh));
	if (!sh)
		return NULL;
	sh->fp = s->fp;
	sh->keyword = s->keyword;
	stats_lru_init(&sh->lru);
	if (!norm)
		norm = "";
	sh->text = stats_strndup(st, norm, strlen(norm), STATS_TEXT_MAX, &sh->text_size);
	if (!sh->text) {
		stats_release(st, sh, sizeof(*sh));
		return NULL;
	}
	len = s->src_len;
	if (!sql) {
		sql = norm;
		len = strlen(norm);
	}
	/* its return says parsed or not; <info> holds a class either way */
	(void)stats_classify(sql, len, s->keyword, &sh->info);
	shape_sanitize(&sh->info);
	HASH_ADD(hh, st->shapes, fp, sizeof(sh->fp), sh);
	if (!sh->hh.tbl) {
		stats_shape_info_free(&sh->info);
		stats_release(st, sh->text, sh->text_size);
		stats_release(st, sh, sizeof(*sh));
		return NULL;
	}
	st->nshapes++;
	stats_lru_push(&st->shape_lru, &sh->lru);
	shape_example(st, sh, src, s->src_len);
	memo_trim(st);
	/* the trim frees from the far end of the LRU, not the newest */
	ref_set(st, ref, sh);
	return &sh->info;
}

const struct stats_shape_info *stats_shape_find(struct stats *st, uint64_t fp)
{
	struct stats_shape *sh;

	if (!st || fp == 0)
		return NULL;
	sh = stats_shape_lookup(st, fp, true);
	return sh ? &sh->info : NULL;
}

const struct stats_shape_info *stats_shape_again(struct stats *st, uint64_t fp, const char *src,
                                                 size_t len)
{
	struct stats_shape *sh;

	if (!st || (!st->cfg.track && !st->cfg.memo) || fp == 0)
		return NULL;
	sh = stats_shape_lookup(st, fp, true);
	if (!sh)
		return NULL;
	shape_example(st, sh, src, len);
	return &sh->info;
}

const struct stats_shape_info *stats_shape_again_ref(struct stats *st, uint64_t fp, const char *src,
                                                     size_t len, struct stats_ref *ref)
{
	struct stats_shape *sh;

	if (!st || (!st->cfg.track && !st->cfg.memo) || fp == 0) {
		ref_set(st, ref, NULL);
		return NULL;
	}
	/* a generation that has not moved: no shape was freed, so <ref>'s is
	 * alive (a zeroed ref has generation 0, which is never current) */
	if (ref->gen == st->shape_gen && ((const struct stats_shape *)ref->sh)->fp == fp) {
		sh = (struct stats_shape *)(uintptr_t)ref->sh;
		if (sh->refs == 0)
			stats_lru_touch(&st->shape_lru, &sh->lru);
	} else {
		sh = stats_shape_lookup(st, fp, true);
		ref_set(st, ref, sh);
		if (!sh)
			return NULL;
	}
	if (st->cfg.track_literals)
		shape_example(st, sh, src, len);
	return &sh->info;
}

static void drop_examples(struct stats *st)
{
	struct stats_shape *sh, *tmp;

	HASH_ITER(hh, st->shapes, sh, tmp)
	{
		stats_release(st, sh->example, sh->example_size);
		sh->example = NULL;
		sh->example_size = 0;
	}
}

/* ---- scopes ---- */

static struct stats_scope *scope_get(struct stats *st, const char *db, const char *user,
                                     bool db_only)
{
	struct stats_scope *sc;
	size_t dl = strlen(db), ul = db_only ? 0 : strlen(user);
	size_t kl = 1 + dl + 1 + (db_only ? 0 : ul + 1);
	char *key = malloc(kl);

	if (!key)
		return NULL;
	key[0] = db_only ? 'd' : 'u';
	memcpy(key + 1, db, dl + 1);
	if (!db_only)
		memcpy(key + 2 + dl, user, ul + 1);
	HASH_FIND(hh, st->scopes, key, kl, sc);
	if (sc) {
		free(key);
		sc->refs++;
		return sc;
	}
	sc = stats_alloc(st, sizeof(*sc));
	if (!sc) {
		free(key);
		return NULL;
	}
	st->mem += kl;
	sc->key = key;
	sc->key_len = kl;
	sc->db = key + 1;
	sc->user = db_only ? "" : key + 2 + dl;
	sc->db_only = db_only;
	sc->refs = 1;
	if (!db_only) {
		sc->hist = stats_hist_new();
		if (!sc->hist)
			goto oom;
		st->mem += stats_hist_size();
	}
	HASH_ADD_KEYPTR(hh, st->scopes, sc->key, sc->key_len, sc);
	if (!sc->hh.tbl)
		goto oom;
	return sc;
oom:
	if (sc->hist) {
		stats_hist_free(sc->hist);
		st->mem -= stats_hist_size();
	}
	stats_release(st, sc->key, sc->key_len);
	stats_release(st, sc, sizeof(*sc));
	return NULL;
}

static void scope_unref(struct stats *st, struct stats_scope *sc)
{
	if (!sc || --sc->refs > 0)
		return;
	/* the analyzer loses track of the table uthash frees with its last entry */
	// NOLINTNEXTLINE(clang-analyzer-unix.Malloc,clang-analyzer-core.NullDereference)
	HASH_DEL(st->scopes, sc);
	if (sc->hist) {
		stats_hist_free(sc->hist);
		st->mem -= stats_hist_size();
	}
	stats_release(st, sc->key, sc->key_len);
	stats_release(st, sc, sizeof(*sc));
}

void stats_scope_ref(struct stats_scope *sc)
{
	sc->refs++;
}

struct stats_scope *stats_scope_get(struct stats *st, const char *db, const char *user)
{
	if (!st)
		return NULL;
	return scope_get(st, db ? db : "", user ? user : "", false);
}

void stats_scope_put(struct stats *st, struct stats_scope *sc)
{
	if (st)
		scope_unref(st, sc);
}

/* ---- rows ---- */

static void agg_fold(struct stats_agg *d, const struct stats_agg *s)
{
	uint64_t n = d->calls + s->calls;

	if (s->calls) {
		if (d->calls == 0) {
			d->mean_ns = s->mean_ns;
			d->m2 = s->m2;
			d->min_ns = s->min_ns;
			d->max_ns = s->max_ns;
		} else {
			/* Chan et al.: the moments of the union */
			double delta = s->mean_ns - d->mean_ns;

			d->mean_ns += delta * (double)s->calls / (double)n;
			d->m2 += s->m2 +
			         delta * delta * (double)d->calls * (double)s->calls / (double)n;
			if (s->min_ns < d->min_ns)
				d->min_ns = s->min_ns;
			if (s->max_ns > d->max_ns)
				d->max_ns = s->max_ns;
		}
	}
	d->calls = n;
	d->errors += s->errors;
	d->rows += s->rows;
	d->total_ns += s->total_ns;
	d->wait_ns += s->wait_ns;
}

static void row_error(struct stats_row *r, const char *sqlstate, uint64_t n)
{
	char c0 = sqlstate[0], c1 = sqlstate[1];
	bool valid = ((c0 >= '0' && c0 <= '9') || (c0 >= 'A' && c0 <= 'Z')) &&
	             ((c1 >= '0' && c1 <= '9') || (c1 >= 'A' && c1 <= 'Z'));

	if (valid)
		for (unsigned i = 0; i < STATS_ERR_SLOTS; i++) {
			if (r->err_n[i] == 0) {
				r->err_cls[i][0] = c0;
				r->err_cls[i][1] = c1;
			}
			if (r->err_cls[i][0] == c0 && r->err_cls[i][1] == c1) {
				r->err_n[i] += n;
				return;
			}
		}
	r->err_other += n;
}

/* <s> folds into <d>: every count, the moments, the histogram and the errors. */
static void row_fold(struct stats_row *d, const struct stats_row *s)
{
	agg_fold(&d->a, &s->a);
	stats_hist_merge(d->hist, s->hist);
	for (unsigned i = 0; i < STATS_ERR_SLOTS; i++)
		if (s->err_n[i])
			row_error(d, s->err_cls[i], s->err_n[i]);
	d->err_other += s->err_other;
	if (!d->first_ns || (s->first_ns && s->first_ns < d->first_ns))
		d->first_ns = s->first_ns;
	if (s->last_ns > d->last_ns)
		d->last_ns = s->last_ns;
	d->cache_hits += s->cache_hits;
}

static struct stats_row *row_new(struct stats *st, struct stats_scope *sc, uint64_t fp)
{
	struct stats_row *r = stats_alloc(st, sizeof(*r));

	if (!r)
		return NULL;
	r->hist = stats_hist_new();
	if (!r->hist) {
		stats_release(st, r, sizeof(*r));
		return NULL;
	}
	st->mem += stats_hist_size();
	r->key.scope = sc;
	r->key.fp = fp;
	r->cls = STATS_CL_OTHER;
	stats_lru_init(&r->lru);
	HASH_ADD(hh, st->rows, key, sizeof(r->key), r);
	if (!r->hh.tbl) {
		stats_hist_free(r->hist);
		st->mem -= stats_hist_size();
		stats_release(st, r, sizeof(*r));
		return NULL;
	}
	stats_scope_ref(sc);
	return r;
}

static struct stats_row **row_slot(struct stats *st, uint64_t fp)
{
	/* a fingerprint is a hash already; its low bit may be forced to 1 */
	return &st->row_cache[(fp >> 1) & (STATS_ROW_CACHE - 1)];
}

static void row_free(struct stats *st, struct stats_row *r)
{
	struct stats_scope *sc = r->key.scope;
	struct stats_row **slot = row_slot(st, r->key.fp);

	if (*slot == r)
		*slot = NULL;

	// NOLINTNEXTLINE(clang-analyzer-unix.Malloc,clang-analyzer-core.NullDereference)
	HASH_DEL(st->rows, r);
	if (r->other) {
		st->nother--;
		sc->other = NULL;
	} else {
		stats_lru_unlink(&r->lru);
		st->nrows--;
	}
	stats_shape_unpin(st, r->shape);
	stats_hist_free(r->hist);
	st->mem -= stats_hist_size();
	stats_release(st, r, sizeof(*r));
	scope_unref(st, sc);
}

/* The <other> row of <sc>'s database, made on first use; NULL on OOM. */
static struct stats_row *other_row(struct stats *st, struct stats_scope *sc)
{
	struct stats_scope *dbs;
	struct stats_row *r;

	if (sc->other)
		return sc->other;
	dbs = scope_get(st, sc->db, "", true);
	if (!dbs)
		return NULL;
	if (dbs->other) {
		r = dbs->other;
	} else {
		r = row_new(st, dbs, 0);
		if (r) {
			r->other = true;
			st->nother++;
			dbs->other = r;
		}
	}
	/* the row holds its own reference to the database scope */
	scope_unref(st, dbs);
	if (r && sc != dbs)
		sc->other = r; /* borrowed: row_free of the <other> row clears it */
	return r;
}

static void row_evict(struct stats *st, struct stats_row *r)
{
	struct stats_row *o = other_row(st, r->key.scope);

	if (o)
		row_fold(o, r);
	row_free(st, r);
}

static void rows_trim(struct stats *st, size_t bound)
{
	while (st->nrows > bound && !stats_lru_empty(&st->row_lru))
		row_evict(st, stats_lru_entry(st->row_lru.prev, struct stats_row, lru));
}

/* The row an event counts in: its own, made (and the LRU one folded) when new. */
static struct stats_row *row_for(struct stats *st, struct stats_scope *sc, uint64_t fp)
{
	struct stats_row_key key;
	struct stats_row *r;

	struct stats_row **slot;

	if (fp == 0 || st->cfg.max_statements == 0)
		return other_row(st, sc);
	slot = row_slot(st, fp);
	r = *slot;
	/* only rows in the bound are cached, never an <other> row (fp 0) */
	if (r && r->key.fp == fp && r->key.scope == sc) {
		stats_lru_touch(&st->row_lru, &r->lru);
		return r;
	}
	memset(&key, 0, sizeof(key));
	key.scope = sc;
	key.fp = fp;
	HASH_FIND(hh, st->rows, &key, sizeof(key), r);
	if (r) {
		stats_lru_touch(&st->row_lru, &r->lru);
		*slot = r;
		return r;
	}
	rows_trim(st, (size_t)st->cfg.max_statements - 1);
	r = row_new(st, sc, fp);
	if (!r)
		return other_row(st, sc);
	stats_lru_push(&st->row_lru, &r->lru);
	st->nrows++;
	*slot = r;
	return r;
}

/* Before a scope goes (other rows cache a borrowed pointer in user scopes). */
static void scopes_forget_other(struct stats *st)
{
	struct stats_scope *sc, *tmp;

	HASH_ITER(hh, st->scopes, sc, tmp)
	{
		if (!sc->db_only)
			sc->other = NULL;
	}
}

static void rows_clear(struct stats *st)
{
	struct stats_row *r, *tmp;

	scopes_forget_other(st);
	HASH_ITER(hh, st->rows, r, tmp)
	{
		row_free(st, r);
	}
}

/* ---- context ---- */

struct stats *stats_new(const struct stats_config *cfg)
{
	struct stats *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->cfg = *cfg;
	st->shape_gen = 1;
	stats_lru_init(&st->shape_lru);
	stats_lru_init(&st->row_lru);
	stats_lru_init(&st->np_lru);
	for (unsigned i = 0; i < STATS_NCLASSES; i++) {
		st->cls[i].hist = stats_hist_new();
		if (!st->cls[i].hist) {
			stats_free(st);
			return NULL;
		}
		st->mem += stats_hist_size();
	}
	stats_slow_resize(st, cfg->slow_log_size);
	return st;
}

void stats_configure(struct stats *st, const struct stats_config *cfg)
{
	bool literals = st->cfg.track_literals;

	st->cfg = *cfg;
	if (literals && !cfg->track_literals)
		drop_examples(st);
	rows_trim(st, cfg->max_statements);
	stats_np_trim(st);
	memo_trim(st);
	stats_slow_resize(st, cfg->slow_log_size);
}

void stats_reset(struct stats *st)
{
	struct stats_scope *sc, *tmp;

	rows_clear(st);
	stats_np_clear(st);
	stats_slow_clear(st);
	for (unsigned i = 0; i < STATS_NCLASSES; i++) {
		struct stats_hist *h = st->cls[i].hist;

		memset(h, 0, stats_hist_size());
		memset(&st->cls[i], 0, sizeof(st->cls[i]));
		st->cls[i].hist = h;
	}
	HASH_ITER(hh, st->scopes, sc, tmp)
	{
		sc->calls = sc->errors = sc->rows = sc->total_ns = sc->wait_ns = 0;
		if (sc->hist)
			memset(sc->hist, 0, stats_hist_size());
	}
	st->gen++;
}

void stats_free(struct stats *st)
{
	struct stats_scope *sc, *stmp;
	struct stats_shape *sh, *htmp;

	if (!st)
		return;
	rows_clear(st);
	stats_np_clear(st);
	stats_slow_clear(st);
	stats_slow_resize(st, 0);
	HASH_ITER(hh, st->shapes, sh, htmp)
	{
		sh->refs = 0;
		shape_free(st, sh);
	}
	/* scopes pools did not put back */
	HASH_ITER(hh, st->scopes, sc, stmp)
	{
		sc->refs = 1;
		scope_unref(st, sc);
	}
	for (unsigned i = 0; i < STATS_NCLASSES; i++)
		stats_hist_free(st->cls[i].hist);
	free(st);
}

bool stats_enabled(const struct stats *st)
{
	return st && st->cfg.track;
}

/* ---- hook 2 ---- */

/* The shape of <fp>, pinned by row <r> (NULL is fine) the first time:
 * a row holds its shape, so a known row needs no second lookup. */
static inline struct stats_shape *row_shape(struct stats *st, struct stats_row *r, uint64_t fp)
{
	struct stats_shape *sh = NULL;

	if (r && r->shape && !r->other)
		sh = r->shape;
	else if (fp)
		sh = stats_shape_lookup(st, fp, true);
	if (r && !r->shape && sh && !r->other) {
		stats_shape_pin(st, sh);
		r->shape = sh;
		r->cls = sh->info.cls;
	}
	return sh;
}

void stats_record(struct stats *st, const struct stats_event *ev)
{
	struct stats_shape *sh = NULL;
	struct stats_scope *sc;
	struct stats_class_tally *ct;
	struct stats_row *r;
	uint64_t exec = 0;
	uint8_t cls = STATS_CL_OTHER;
	bool ok;

	if (!st || !st->cfg.track || !ev || !ev->scope)
		return;
	sc = ev->scope;
	if (ev->end_ns > ev->start_ns)
		exec = ev->end_ns - ev->start_ns;
	ok = ev->sqlstate[0] == 0;
	r = row_for(st, sc, ev->fp);
	sh = row_shape(st, r, ev->fp);
	if (r) {
		if (ok) {
			struct stats_agg *a = &r->a;
			double x = (double)exec, d;

			a->calls++;
			d = x - a->mean_ns;
			a->mean_ns += d / (double)a->calls;
			a->m2 += d * (x - a->mean_ns);
			a->total_ns += exec;
			if (a->calls == 1 || exec < a->min_ns)
				a->min_ns = exec;
			if (exec > a->max_ns)
				a->max_ns = exec;
			if (ev->rows > 0)
				a->rows += (uint64_t)ev->rows;
		} else {
			r->a.errors++;
			row_error(r, ev->sqlstate, 1);
		}
		r->a.wait_ns += ev->wait_ns;
		if (!r->first_ns)
			r->first_ns = ev->end_ns ? ev->end_ns : 1;
		r->last_ns = ev->end_ns;
		if (!r->other)
			cls = r->cls;
	}
	if (sh)
		cls = sh->info.cls;
	ct = &st->cls[cls];
	sc->wait_ns += ev->wait_ns;
	if (ok) {
		ct->calls++;
		ct->total_ns += exec;
		sc->calls++;
		sc->total_ns += exec;
		/* one bucket for the row's, the class's and the pool's */
		stats_hist_add3(r ? r->hist : NULL, ct->hist, sc->hist, exec);
		if (ev->rows > 0) {
			ct->rows += (uint64_t)ev->rows;
			sc->rows += (uint64_t)ev->rows;
		}
	} else {
		ct->errors++;
		sc->errors++;
	}
	if (st->cfg.slow_ms && exec >= (uint64_t)st->cfg.slow_ms * 1000000ull)
		stats_slow_note(st, ev, exec, cls,
		                sh       ? sh->text
		                : ev->fp ? "<unknown>"
		                         : "<other>");
	if (ev->client && st->cfg.nplus1_threshold)
		stats_np_note(st, ev, cls, sh);
}

/*
 * A hit of the result cache answered statement <fp> without PostgreSQL:
 * its row counts the hit, and nothing else. No call, time, rows or
 * histogram sample: it did not run, and calls stay comparable with
 * pg_stat_statements'. It is seen, so last_seen moves.
 */
void stats_cache_hit(struct stats *st, struct stats_scope *scope, uint64_t fp)
{
	struct stats_row *r;
	uint64_t now;

	if (!st || !st->cfg.track || !scope)
		return;
	r = row_for(st, scope, fp);
	if (!r)
		return;
	(void)row_shape(st, r, fp);
	r->cache_hits++;
	now = stats_clock_ns();
	if (!r->first_ns)
		r->first_ns = now ? now : 1;
	r->last_ns = now;
}

/* ---- read side ---- */

struct row_order {
	struct stats_row *r;
	double key;
};

static double row_key(const struct stats_row *r, enum stats_order order)
{
	switch (order) {
	case STATS_ORDER_CALLS:
		return (double)r->a.calls;
	case STATS_ORDER_MEAN:
		return r->a.calls ? r->a.mean_ns : 0;
	case STATS_ORDER_MAX:
		return (double)r->a.max_ns;
	case STATS_ORDER_P95:
		return (double)stats_hist_quantile(r->hist, 0.95);
	case STATS_ORDER_P99:
		return (double)stats_hist_quantile(r->hist, 0.99);
	case STATS_ORDER_ERRORS:
		return (double)r->a.errors;
	case STATS_ORDER_ROWS:
		return (double)r->a.rows;
	case STATS_ORDER_WAIT:
		return (double)r->a.wait_ns;
	case STATS_ORDER_TOTAL:
	default:
		return (double)r->a.total_ns;
	}
}

static int cmp_order(const void *pa, const void *pb)
{
	const struct row_order *a = pa, *b = pb;

	if (a->key != b->key)
		return a->key > b->key ? -1 : 1;
	if (a->r->a.calls != b->r->a.calls)
		return a->r->a.calls > b->r->a.calls ? -1 : 1;
	if (a->r->key.fp != b->r->key.fp)
		return a->r->key.fp < b->r->key.fp ? -1 : 1;
	return strcmp(a->r->key.scope->key, b->r->key.scope->key);
}

/* A heap whose root is the row that comes last in cmp_order. */
static void heap_up(struct row_order *h, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		struct row_order t;

		if (cmp_order(&h[parent], &h[i]) >= 0)
			break;
		t = h[parent];
		h[parent] = h[i];
		h[i] = t;
		i = parent;
	}
}

static void heap_down(struct row_order *h, size_t n)
{
	size_t i = 0;

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct row_order t;

		if (l < n && cmp_order(&h[l], &h[m]) > 0)
			m = l;
		if (l + 1 < n && cmp_order(&h[l + 1], &h[m]) > 0)
			m = l + 1;
		if (m == i)
			break;
		t = h[m];
		h[m] = h[i];
		h[i] = t;
		i = m;
	}
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void error_classes(const struct stats_row *r, char *buf, size_t n)
{
	size_t o = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < STATS_ERR_SLOTS && o < n; i++)
		if (r->err_n[i])
			o += (size_t)snprintf(buf + o, n - o, "%s%c%c:%llu", o ? " " : "",
			                      r->err_cls[i][0], r->err_cls[i][1],
			                      (unsigned long long)r->err_n[i]);
	if (r->err_other && o < n)
		snprintf(buf + o, n - o, "%sother:%llu", o ? " " : "",
		         (unsigned long long)r->err_other);
}

static double clamp_ms(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void row_view(struct stats *st, struct stats_row *r, uint64_t mono, double wall,
                     struct stats_row_view *v, char *errbuf, size_t errlen)
{
	struct stats_shape *sh = r->shape;

	if (!sh && !r->other && (sh = stats_shape_lookup(st, r->key.fp, false)) != NULL) {
		/* learnt after the row was made: keep it from now on */
		stats_shape_pin(st, sh);
		r->shape = sh;
		r->cls = sh->info.cls;
	}
	memset(v, 0, sizeof(*v));
	v->fp = r->key.fp;
	v->pg_fp = sh ? sh->info.pg_fp : 0;
	v->db = r->key.scope->db;
	v->user = r->key.scope->user;
	v->text = r->other ? "<other>" : sh ? sh->text : "<unknown>";
	v->example = sh && st->cfg.track_literals ? sh->example : NULL;
	v->cls = r->other ? STATS_CL_OTHER : r->cls;
	v->other = r->other;
	v->calls = r->a.calls;
	v->errors = r->a.errors;
	v->rows = r->a.rows;
	v->total_ms = ms(r->a.total_ns);
	if (r->a.calls) {
		v->mean_ms = r->a.mean_ns / 1e6;
		v->min_ms = ms(r->a.min_ns);
		v->max_ms = ms(r->a.max_ns);
		v->stddev_ms = sqrt(r->a.m2 / (double)r->a.calls) / 1e6;
		uint64_t p[3];

		stats_hist_p50_p95_p99(r->hist, p);
		v->p50_ms = ms(p[0]);
		v->p95_ms = ms(p[1]);
		v->p99_ms = ms(p[2]);
		/* a bucket's representative may lie past the exact extremes:
		 * a percentile never shows outside what was seen */
		v->p50_ms = clamp_ms(v->p50_ms, v->min_ms, v->max_ms);
		v->p95_ms = clamp_ms(v->p95_ms, v->min_ms, v->max_ms);
		v->p99_ms = clamp_ms(v->p99_ms, v->min_ms, v->max_ms);
	}
	v->wait_ms = ms(r->a.wait_ns);
	v->cache_hits = r->cache_hits;
	v->first_seen = r->first_ns ? wall_of(r->first_ns, mono, wall) : 0;
	v->last_seen = r->last_ns ? wall_of(r->last_ns, mono, wall) : 0;
	error_classes(r, errbuf, errlen);
	v->error_classes = errbuf;
}

size_t stats_queries(struct stats *st, enum stats_order order, size_t limit, stats_row_cb cb,
                     void *arg)
{
	size_t n = 0, seen = 0, cap, total = st->nrows + st->nother;
	struct row_order *ord;
	struct stats_row *r, *tmp;
	struct stats_row_view v;
	char errbuf[STATS_ERR_SLOTS * 24 + 32];
	uint64_t mono = stats_clock_ns();
	double wall = wall_now();

	if (total == 0)
		return 0;
	/* with a limit only <limit> rows are kept, the last in the order on
	 * top of a heap: a scrape of the top 50 of 5,000 rows walks them once
	 * instead of sorting them all */
	cap = limit && limit < total ? limit : total;
	ord = malloc(cap * sizeof(*ord));
	if (!ord)
		return 0;
	HASH_ITER(hh, st->rows, r, tmp)
	{
		struct row_order x;

		if (seen++ == total)
			break;
		x.r = r;
		x.key = row_key(r, order);
		if (n < cap) {
			ord[n++] = x;
			if (cap < total)
				heap_up(ord, n - 1);
		} else if (cmp_order(&x, &ord[0]) < 0) {
			ord[0] = x;
			heap_down(ord, n);
		}
	}
	qsort(ord, n, sizeof(*ord), cmp_order);
	for (size_t i = 0; i < n; i++) {
		row_view(st, ord[i].r, mono, wall, &v, errbuf, sizeof(errbuf));
		cb(arg, &v);
	}
	free(ord);
	return n;
}

void stats_classes(struct stats *st, stats_class_cb cb, void *arg)
{
	for (unsigned i = 0; i < STATS_NCLASSES; i++) {
		const struct stats_class_tally *t = &st->cls[i];
		struct stats_class_view v;

		memset(&v, 0, sizeof(v));
		v.cls = (uint8_t)i;
		v.calls = t->calls;
		v.errors = t->errors;
		v.rows = t->rows;
		v.total_ms = ms(t->total_ns);
		if (t->calls) {
			v.mean_ms = v.total_ms / (double)t->calls;
			uint64_t p[3];

			stats_hist_p50_p95_p99(t->hist, p);
			v.p50_ms = ms(p[0]);
			v.p95_ms = ms(p[1]);
			v.p99_ms = ms(p[2]);
		}
		v.hist = t->hist;
		cb(arg, &v);
	}
}

void stats_scopes(struct stats *st, stats_scope_cb cb, void *arg)
{
	struct stats_scope *sc, *tmp;

	HASH_ITER(hh, st->scopes, sc, tmp)
	{
		struct stats_scope_view v;

		if (sc->db_only)
			continue;
		v.db = sc->db;
		v.user = sc->user;
		v.calls = sc->calls;
		v.errors = sc->errors;
		v.rows = sc->rows;
		v.total_ms = ms(sc->total_ns);
		v.wait_ms = ms(sc->wait_ns);
		v.hist = sc->hist;
		cb(arg, &v);
	}
}

size_t stats_mem(const struct stats *st)
{
	if (!st)
		return 0;
	return sizeof(*st) + st->mem + HASH_OVERHEAD(hh, st->scopes) +
	       HASH_OVERHEAD(hh, st->shapes) + HASH_OVERHEAD(hh, st->rows) +
	       HASH_OVERHEAD(hh, st->np);
}
