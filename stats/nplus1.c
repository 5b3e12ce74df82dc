/*
 * N+1 detection: one client running the same SELECT shape over and over,
 * the loop an ORM makes when it loads a list and then each item's detail.
 *
 * Each client has a few slots (STATS_NP_SLOTS), one per SELECT shape it
 * ran lately, so that interleaved loops (author by id, books by author,
 * alternating) are both seen; a new shape takes a free slot or the one
 * least recently run. A slot counts the runs of its shape
 *  - inside one transaction (in_tx), with no time limit: the transaction
 *    ends at an event run outside one, or at a TCL statement other than
 *    SAVEPOINT / RELEASE (ORMs wrap single statements in savepoints);
 *  - outside a transaction, while they come within nplus1_window_ms of the
 *    first run; once a burst is reached it goes on while each run comes
 *    within the window of the one before.
 * When the count reaches nplus1_threshold the shape has a burst: its record
 * (per (database, user, shape), an LRU of max(100, max_statements)) counts
 * it, and keeps the largest burst (a burst that goes on growing updates
 * it), the latest one's time, application_name and client address, and the
 * statement the client ran before the shape's first run: the "1".
 * A threshold of 0 turns detection off; 1 is taken as 2 (a repeat needs two).
 */
#include "stats/stats_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATS_NP_SLOTS 4

struct np_slot {
	uint64_t fp;       /* the shape, 0 = free */
	uint64_t prev_fp;  /* what the client ran before its first run */
	uint64_t first_ns; /* first run counted */
	uint64_t last_ns;  /* latest run */
	uint32_t count;    /* runs counted */
	bool in_tx;        /* counted inside a transaction */
	bool burst;        /* reached the threshold: counted as a burst */
};

struct stats_client {
	uint64_t last_fp; /* the statement it ran last (any class) */
	uint32_t gen;     /* stats.gen when the slots were filled */
	uint32_t rec_gen; /* stats.np_gen when <rec> was looked up */
	/* the record of its burst in progress, so that each further run of a
	 * loop costs no lookup (valid while rec_gen == stats.np_gen) */
	struct stats_np_rec *rec;
	uint64_t rec_fp;
	bool tx_slots; /* some slot may be counting inside a transaction */
	struct np_slot slot[STATS_NP_SLOTS];
};

_Static_assert(sizeof(struct stats_client) <= 200, "a client's N+1 state stays small");

size_t stats_np_bound(const struct stats *st)
{
	return st->cfg.max_statements < STATS_NP_MIN ? STATS_NP_MIN : st->cfg.max_statements;
}

static void rec_free(struct stats *st, struct stats_np_rec *r)
{
	st->np_gen++;
	struct stats_scope *sc = r->key.scope;

	// NOLINTNEXTLINE(clang-analyzer-unix.Malloc,clang-analyzer-core.NullDereference)
	HASH_DEL(st->np, r);
	stats_lru_unlink(&r->lru);
	st->nnp--;
	stats_shape_unpin(st, r->shape);
	stats_shape_unpin(st, r->prev);
	stats_release(st, r, sizeof(*r));
	stats_scope_put(st, sc);
}

static void trim_to(struct stats *st, size_t bound)
{
	while (st->nnp > bound && !stats_lru_empty(&st->np_lru))
		rec_free(st, stats_lru_entry(st->np_lru.prev, struct stats_np_rec, lru));
}

void stats_np_trim(struct stats *st)
{
	trim_to(st, stats_np_bound(st));
}

void stats_np_clear(struct stats *st)
{
	trim_to(st, 0);
}

static struct stats_np_rec *rec_get(struct stats *st, struct stats_scope *sc, uint64_t fp,
                                    struct stats_shape *sh)
{
	struct stats_row_key key;
	struct stats_np_rec *r;

	memset(&key, 0, sizeof(key));
	key.scope = sc;
	key.fp = fp;
	HASH_FIND(hh, st->np, &key, sizeof(key), r);
	if (r) {
		stats_lru_touch(&st->np_lru, &r->lru);
		if (!r->shape && sh) {
			stats_shape_pin(st, sh);
			r->shape = sh;
		}
		return r;
	}
	trim_to(st, stats_np_bound(st) - 1);
	r = stats_alloc(st, sizeof(*r));
	if (!r)
		return NULL;
	r->key = key;
	stats_lru_init(&r->lru);
	HASH_ADD(hh, st->np, key, sizeof(r->key), r);
	if (!r->hh.tbl) {
		stats_release(st, r, sizeof(*r));
		return NULL;
	}
	stats_lru_push(&st->np_lru, &r->lru);
	st->nnp++;
	stats_scope_ref(sc);
	stats_shape_pin(st, sh);
	r->shape = sh;
	return r;
}

static void copy_name(char *dst, const char *src)
{
	size_t n = src ? strnlen(src, STATS_NAME_MAX - 1) : 0;

	while (n > 0 && src[n] && ((unsigned char)src[n] & 0xc0) == 0x80)
		n--;
	if (n)
		memcpy(dst, src, n);
	dst[n] = 0;
}

static void burst(struct stats *st, const struct stats_event *ev, struct stats_client *cl,
                  struct np_slot *s, struct stats_shape *sh)
{
	/* not the loop going on with the record the client has (stats_np_note) */
	struct stats_np_rec *r = rec_get(st, ev->scope, s->fp, sh);

	if (!r)
		return;
	cl->rec = r;
	cl->rec_fp = s->fp;
	cl->rec_gen = st->np_gen;
	if (!s->burst) {
		s->burst = true;
		r->bursts++;
		if (r->prev_fp != s->prev_fp || (!r->prev && s->prev_fp)) {
			stats_shape_unpin(st, r->prev);
			r->prev = s->prev_fp ? stats_shape_lookup(st, s->prev_fp, false) : NULL;
			stats_shape_pin(st, r->prev);
			r->prev_fp = s->prev_fp;
		}
	}
	if (s->count > r->largest)
		r->largest = s->count;
	r->last_ns = ev->end_ns;
	copy_name(r->app, ev->app_name);
	copy_name(r->addr, ev->client_addr);
}

/* A transaction is over: what was counted inside it starts again. */
static void end_tx(struct stats_client *cl)
{
	cl->tx_slots = false;
	for (unsigned i = 0; i < STATS_NP_SLOTS; i++)
		if (cl->slot[i].fp && cl->slot[i].in_tx)
			memset(&cl->slot[i], 0, sizeof(cl->slot[i]));
}

static void slot_start(struct np_slot *s, struct stats_client *cl, uint64_t fp, bool in_tx,
                       uint64_t now)
{
	/* a restart right after a run of the same shape keeps the "1" it had */
	uint64_t prev = cl->last_fp != fp || s->fp != fp ? cl->last_fp : s->prev_fp;

	s->prev_fp = prev;
	s->fp = fp;
	s->first_ns = now;
	s->count = 0;
	s->in_tx = in_tx;
	s->burst = false;
	if (in_tx)
		cl->tx_slots = true;
}

/* Outside a transaction: the runs so far are too far apart to go on counting. */
static bool out_of_window(const struct np_slot *s, uint64_t now, uint64_t window)
{
	uint64_t since = s->burst ? s->last_ns : s->first_ns;

	return now < since || now - since > window;
}

static struct np_slot *slot_for(struct stats_client *cl, uint64_t fp)
{
	struct np_slot *pick = NULL;

	for (unsigned i = 0; i < STATS_NP_SLOTS; i++)
		if (cl->slot[i].fp == fp)
			return &cl->slot[i];
	for (unsigned i = 0; i < STATS_NP_SLOTS; i++) {
		struct np_slot *s = &cl->slot[i];

		if (!s->fp)
			return s;
		if (!pick || s->last_ns < pick->last_ns)
			pick = s;
	}
	return pick;
}

void stats_np_note(struct stats *st, const struct stats_event *ev, uint8_t cls,
                   struct stats_shape *sh)
{
	struct stats_client *cl = *ev->client;
	uint64_t now = ev->end_ns;
	struct np_slot *s;

	if (!cl) {
		cl = stats_alloc(st, sizeof(*cl));
		if (!cl)
			return;
		cl->gen = st->gen;
		st->nclients++;
		*ev->client = cl;
	}
	if (cl->gen != st->gen) {
		memset(cl, 0, sizeof(*cl));
		cl->gen = st->gen;
	}
	/* a transaction ends outside one, or at a TCL statement other than
	 * SAVEPOINT / RELEASE; nothing to do unless a slot counts inside one */
	if (cl->tx_slots &&
	    (!ev->in_tx || (cls == STATS_CL_TCL && !(sh && (sh->keyword == PROTO_KW_SAVEPOINT ||
	                                                    sh->keyword == PROTO_KW_RELEASE)))))
		end_tx(cl);
	if (cls == STATS_CL_SELECT && ev->fp) {
		uint32_t threshold = st->cfg.nplus1_threshold < 2 ? 2 : st->cfg.nplus1_threshold;

		s = slot_for(cl, ev->fp);
		if (s->fp != ev->fp || s->in_tx != ev->in_tx ||
		    (!ev->in_tx &&
		     out_of_window(s, now, (uint64_t)st->cfg.nplus1_window_ms * 1000000ull)))
			slot_start(s, cl, ev->fp, ev->in_tx, now);
		s->count++;
		s->last_ns = now;
		if (s->count >= threshold) {
			struct stats_np_rec *r = cl->rec;

			if (s->burst && r && cl->rec_fp == s->fp && cl->rec_gen == st->np_gen) {
				/* the loop goes on: the same record, no lookup, same client */
				stats_lru_touch(&st->np_lru, &r->lru);
				if (s->count > r->largest)
					r->largest = s->count;
				r->last_ns = now;
			} else {
				burst(st, ev, cl, s, sh);
			}
		}
	}
	cl->last_fp = ev->fp;
}

void stats_client_free(struct stats *st, struct stats_client *cl)
{
	if (!cl)
		return;
	if (!st) {
		free(cl);
		return;
	}
	st->nclients--;
	stats_release(st, cl, sizeof(*cl));
}

static const char *shape_text(struct stats *st, struct stats_shape *sh, uint64_t fp,
                              const char *unknown)
{
	if (!sh && fp)
		sh = stats_shape_lookup(st, fp, false);
	return sh ? sh->text : unknown;
}

void stats_nplus1(struct stats *st, stats_nplus1_cb cb, void *arg)
{
	struct timespec ts;
	double wall;
	uint64_t mono = stats_clock_ns();

	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	/* most recently burst first */
	for (struct stats_lru *n = st->np_lru.next; n != &st->np_lru; n = n->next) {
		struct stats_np_rec *r = stats_lru_entry(n, struct stats_np_rec, lru);
		struct stats_nplus1_view v;

		v.fp = r->key.fp;
		v.db = r->key.scope->db;
		v.user = r->key.scope->user;
		v.text = shape_text(st, r->shape, r->key.fp, "<unknown>");
		v.bursts = r->bursts;
		v.largest = r->largest;
		v.last_at = wall - ((double)mono - (double)r->last_ns) / 1e9;
		v.last_app = r->app;
		v.last_addr = r->addr;
		v.prev_fp = r->prev_fp;
		v.prev_text = r->prev_fp ? shape_text(st, r->prev, r->prev_fp, "") : "";
		cb(arg, &v);
	}
}
