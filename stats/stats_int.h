/*
 * Internals shared by the statement-statistics files of stats/: stats.c
 * (context, scopes, shape memo, rows, read side), slow.c (slow-query log)
 * and nplus1.c (N+1 detector). Nothing outside stats/ includes it.
 *
 * Every allocation made for the tables goes through stats_alloc() and
 * stats_release(), which keep <mem> (SHOW MEM) to the byte; uthash's own
 * tables are added at read time with HASH_OVERHEAD.
 */
#ifndef SLUICE_STATS_INT_H
#define SLUICE_STATS_INT_H

#include "stats/stats.h"

/* out of memory loses the entry being added (hh.tbl left NULL), not the process */
#define HASH_NONFATAL_OOM 1
#include <string.h>
#include <xxhash.h>
/* The keys here are a fingerprint (8 bytes, already an XXH3 hash) or a
 * (pointer, fingerprint) pair (16 bytes): a multiply and two shifts spread
 * them over the buckets, inline, where uthash's default walks the bytes
 * one by one and a call of XXH3 costs more than the lookup; this runs for
 * every statement. Other lengths are hashed with XXH3. */
static inline unsigned stats_key_hash(const void *key, size_t n)
{
	uint64_t a, b = 0;

	if (n != 8 && n != 16)
		return (unsigned)XXH3_64bits(key, n);
	memcpy(&a, key, 8);
	if (n == 16)
		memcpy(&b, (const char *)key + 8, 8);
	a ^= b * 0x9e3779b97f4a7c15ull;
	a ^= a >> 31;
	a *= 0xbf58476d1ce4e5b9ull;
	a ^= a >> 29;
	return (unsigned)a;
}
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = stats_key_hash((keyptr), (size_t)(keylen)))
#include <uthash.h>

#define STATS_TEXT_MAX    2048 /* bytes of normalized text kept per shape, NUL included */
#define STATS_EXAMPLE_MAX 1024 /* bytes of the example with literals, NUL included */
#define STATS_ERR_SLOTS   4    /* SQLSTATE classes a row counts apart; the rest is "other" */
#define STATS_NAME_MAX    64   /* application_name and client address kept (NAMEDATALEN) */
#define STATS_MEMO_MIN    1000 /* shapes the memo keeps at least */
#define STATS_NP_MIN      100  /* N+1 records kept at least */
#define STATS_ROW_CACHE   256  /* slots of the row cache: a power of two */

/* Node of an intrusive circular list with a sentinel; head->next is the newest. */
struct stats_lru {
	struct stats_lru *prev, *next;
};

static inline void stats_lru_init(struct stats_lru *l)
{
	l->prev = l->next = l;
}

static inline bool stats_lru_empty(const struct stats_lru *l)
{
	return l->next == l;
}

static inline void stats_lru_unlink(struct stats_lru *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

static inline void stats_lru_push(struct stats_lru *head, struct stats_lru *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

static inline void stats_lru_touch(struct stats_lru *head, struct stats_lru *n)
{
	if (head->next == n)
		return;
	stats_lru_unlink(n);
	stats_lru_push(head, n);
}

#define stats_lru_entry(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* One memoized shape (fingerprint). */
struct stats_shape {
	UT_hash_handle hh;
	uint64_t fp;          /* key */
	struct stats_lru lru; /* in stats.shape_lru while refs == 0; else alone */
	unsigned refs;        /* rows and N+1 records showing its text: never evicted then */
	uint8_t keyword;      /* enum proto_sql_kw, for the N+1 transaction ends */
	struct stats_shape_info info; /* owned (stats_shape_info_free) */
	char *text;                   /* owned: normalized, cut at STATS_TEXT_MAX - 1 bytes */
	char *example;                /* owned, or NULL: the first source text, track_literals */
	size_t text_size, example_size;
};

/* Counters and times that merge: two rows fold into one with no loss. */
struct stats_agg {
	uint64_t calls;  /* executions that succeeded: the timed ones */
	uint64_t errors; /* executions an ErrorResponse closed */
	uint64_t rows;
	uint64_t total_ns, wait_ns, min_ns, max_ns;
	double mean_ns, m2; /* Welford: running mean and sum of squared deviations */
};

struct stats_scope {
	UT_hash_handle hh;
	char *key; /* owned: 'u' db NUL user NUL, or 'd' db NUL for a database's own */
	size_t key_len;
	const char *db, *user;   /* into <key>; user "" for a database's own */
	unsigned refs;           /* pools (stats_scope_get), rows and N+1 records */
	bool db_only;            /* holds a database's <other> row; not listed by stats_scopes */
	struct stats_row *other; /* borrowed: its database's <other> row once made */
	uint64_t calls, errors, rows, total_ns, wait_ns;
	struct stats_hist *hist; /* owned; NULL for db_only */
};

struct stats_row_key {
	struct stats_scope *scope; /* referenced */
	uint64_t fp;               /* 0 for an <other> row */
};

struct stats_row {
	UT_hash_handle hh;
	struct stats_row_key key;
	struct stats_lru lru;      /* in stats.row_lru; an <other> row is in none */
	struct stats_shape *shape; /* pinned, or NULL when the memo did not know it */
	struct stats_agg a;
	struct stats_hist *hist; /* owned */
	char err_cls[STATS_ERR_SLOTS][2];
	uint64_t err_n[STATS_ERR_SLOTS];
	uint64_t err_other;
	uint64_t first_ns, last_ns; /* CLOCK_MONOTONIC; shown as Unix time */
	uint64_t cache_hits;
	uint8_t cls;
	bool other;
};

struct stats_class_tally {
	uint64_t calls, errors, rows, total_ns;
	struct stats_hist *hist; /* owned */
};

struct stats_slow_entry {
	double at;
	uint64_t fp;
	uint64_t wait_ns, exec_ns;
	uint32_t server_pid;
	uint8_t cls;
	char sqlstate[6];
	char *strs; /* owned: db, user, app, addr, text, each NUL-terminated */
	size_t strs_size;
	const char *db, *user, *app, *addr, *text; /* into <strs> */
};

struct stats_np_rec {
	UT_hash_handle hh;
	struct stats_row_key key;  /* (scope, fp) */
	struct stats_lru lru;      /* in stats.np_lru */
	struct stats_shape *shape; /* pinned or NULL */
	struct stats_shape *prev;  /* pinned or NULL */
	uint64_t prev_fp;
	uint64_t bursts, largest;
	uint64_t last_ns;
	char app[STATS_NAME_MAX], addr[STATS_NAME_MAX];
};

struct stats {
	struct stats_config cfg;
	size_t mem;   /* bytes allocated through stats_alloc, uthash tables aside */
	uint32_t gen; /* bumped by stats_reset: clients' N+1 state from before is stale */

	struct stats_scope *scopes;

	struct stats_shape *shapes;
	struct stats_lru shape_lru;
	size_t nshapes;
	uint64_t shape_gen; /* from 1, bumped when a shape is freed: struct stats_ref */

	struct stats_row *rows; /* every row, <other> ones too */
	struct stats_lru row_lru;
	size_t nrows;  /* rows in row_lru: the ones max_statements bounds */
	size_t nother; /* <other> rows, one per database */
	/* Rows counted in lately, by their fingerprint's bits: a statement
	 * seen before finds its row here without the hash lookup. Each slot
	 * is NULL or a live row (row_free empties its slot); a hit is checked
	 * against the row's own key. */
	struct stats_row *row_cache[STATS_ROW_CACHE];

	struct stats_class_tally cls[STATS_NCLASSES];

	struct stats_slow_entry *slow; /* ring of slow_cap; owned */
	uint32_t slow_cap, slow_n, slow_next;

	struct stats_np_rec *np;
	struct stats_lru np_lru;
	size_t nnp;
	uint32_t np_gen; /* bumped when an N+1 record is freed: cached pointers to one die */
	size_t nclients; /* live struct stats_client */
};

void *stats_alloc(struct stats *st, size_t n);           /* zeroed, counted; NULL on OOM */
void stats_release(struct stats *st, void *p, size_t n); /* NULL is fine */
/* A copy of <n> bytes of <src>, cut at <cap> - 1 bytes on a UTF-8 boundary; *size = allocated. */
char *stats_strndup(struct stats *st, const char *src, size_t n, size_t cap, size_t *size);

/* The memoized shape of <fp> or NULL; <touch> makes it the most recently used. */
struct stats_shape *stats_shape_lookup(struct stats *st, uint64_t fp, bool touch);
void stats_shape_pin(struct stats *st, struct stats_shape *sh);   /* NULL is fine */
void stats_shape_unpin(struct stats *st, struct stats_shape *sh); /* NULL is fine */
void stats_scope_ref(struct stats_scope *sc);

/* slow.c */
void stats_slow_note(struct stats *st, const struct stats_event *ev, uint64_t exec_ns, uint8_t cls,
                     const char *text);
void stats_slow_resize(struct stats *st, uint32_t cap);
void stats_slow_clear(struct stats *st);

/* nplus1.c */
void stats_np_note(struct stats *st, const struct stats_event *ev, uint8_t cls,
                   struct stats_shape *sh);
void stats_np_trim(struct stats *st); /* to the bound of the current settings */
void stats_np_clear(struct stats *st);
size_t stats_np_bound(const struct stats *st);

#endif /* SLUICE_STATS_INT_H */
