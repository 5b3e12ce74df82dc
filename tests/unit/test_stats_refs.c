/*
 * The pointers stats/ keeps so that a statement seen before needs no hash
 * lookup: the row cache (a slot per fingerprint's bits, in front of the
 * row table) and the shape references callers hold (struct stats_ref).
 * Each must follow the row or shape it names out of existence: LRU
 * eviction into <other>, RESET STATS, a reload that lowers the bound or
 * turns rows off, the memo trimming unpinned shapes. Counts show a stale
 * pointer (a call lands in a freed row, or not in its own); run under ASan
 * (make asan) a stale pointer is a use after free.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "stats/stats.h"
#include "tests/unit/stats_seen.h"

static struct stats_config cfg(uint32_t max_statements)
{
	struct stats_config c = {
	        .track = true,
	        .max_statements = max_statements,
	        .slow_log_size = 10,
	        .nplus1_threshold = 10,
	        .nplus1_window_ms = 1000,
	};
	return c;
}

static void rec(struct stats *st, struct stats_scope *sc, uint64_t fp)
{
	struct stats_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.scope = sc;
	ev.fp = fp;
	ev.start_ns = 1000000000ull;
	ev.end_ns = ev.start_ns + 50000;
	ev.rows = 1;
	stats_record(st, &ev);
}

struct found {
	uint64_t fp;
	const char *user;
	uint64_t calls;
	bool other;
	bool seen;
};

static void find_cb(void *arg, const struct stats_row_view *v)
{
	struct found *f = arg;

	if (v->other == f->other && (f->other || (v->fp == f->fp && !strcmp(v->user, f->user)))) {
		f->calls = v->calls;
		f->seen = true;
	}
}

/* Calls of (<user>, <fp>)'s own row, or of the <other> row with other. */
static uint64_t calls_of(struct stats *st, const char *user, uint64_t fp, bool other)
{
	struct found f = {.fp = fp, .user = user, .other = other};

	stats_queries(st, STATS_ORDER_TOTAL, 0, find_cb, &f);
	return f.seen ? f.calls : 0;
}

/* Fingerprints that share a slot of the row cache (256 slots, by bits 1..8). */
#define SAME_SLOT(i) (0x100000ull + ((uint64_t)(i) << 9))

Test(stats_refs, an_evicted_row_is_not_found_again_through_its_slot)
{
	struct stats_config c = cfg(4);
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "u");

	rec(st, sc, 7);
	rec(st, sc, 7);
	cr_assert_eq(calls_of(st, "u", 7, false), 2);
	/* four more rows push 7 out of the bound: it folds into <other> */
	for (uint64_t fp = 100; fp < 104; fp++)
		rec(st, sc, fp);
	cr_assert_eq(calls_of(st, "u", 7, false), 0);
	cr_assert_eq(calls_of(st, "", 0, true), 2);
	/* 7 again: a new row of its own, not the freed one */
	rec(st, sc, 7);
	cr_assert_eq(calls_of(st, "u", 7, false), 1);
	cr_assert_eq(calls_of(st, "", 0, true), 3); /* 103 went, 1 call */
	stats_scope_put(st, sc);
	stats_free(st);
}

Test(stats_refs, rows_sharing_a_slot_and_scopes_sharing_a_fingerprint)
{
	struct stats_config c = cfg(100);
	struct stats *st = stats_new(&c);
	struct stats_scope *a = stats_scope_get(st, "db", "a");
	struct stats_scope *b = stats_scope_get(st, "db", "b");

	for (unsigned round = 0; round < 3; round++)
		for (unsigned i = 0; i < 5; i++) {
			rec(st, a, SAME_SLOT(i));
			rec(st, b, SAME_SLOT(i));
			rec(st, b, SAME_SLOT(i));
		}
	for (unsigned i = 0; i < 5; i++) {
		cr_assert_eq(calls_of(st, "a", SAME_SLOT(i), false), 3);
		cr_assert_eq(calls_of(st, "b", SAME_SLOT(i), false), 6);
	}
	stats_scope_put(st, a);
	stats_scope_put(st, b);
	stats_free(st);
}

Test(stats_refs, reset_and_reload_leave_no_cached_row)
{
	struct stats_config c = cfg(10);
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "u");

	rec(st, sc, 7);
	stats_reset(st);
	rec(st, sc, 7);
	cr_assert_eq(calls_of(st, "u", 7, false), 1);
	/* a reload to no rows at all: everything counts in <other> */
	c.max_statements = 0;
	stats_configure(st, &c);
	rec(st, sc, 7);
	cr_assert_eq(calls_of(st, "u", 7, false), 0);
	cr_assert_eq(calls_of(st, "", 0, true), 2);
	/* and back: a new row */
	c.max_statements = 10;
	stats_configure(st, &c);
	rec(st, sc, 7);
	cr_assert_eq(calls_of(st, "u", 7, false), 1);
	/* a lower bound evicts the least recently used */
	for (uint64_t fp = 20; fp < 30; fp++)
		rec(st, sc, fp);
	c.max_statements = 2;
	stats_configure(st, &c);
	rec(st, sc, 20);
	cr_assert_eq(calls_of(st, "u", 20, false), 1);
	stats_scope_put(st, sc);
	stats_free(st);
}

static const struct stats_shape_info *note(struct stats *st, uint64_t fp, const char *text,
                                           struct stats_ref *ref)
{
	struct proto_sql_stmt s;

	memset(&s, 0, sizeof(s));
	s.fp = fp;
	s.keyword = PROTO_KW_SELECT;
	s.src_len = (uint32_t)strlen(text);
	s.norm_len = s.src_len;
	return stats_shape_seen_ref(st, &s, text, text, ref);
}

Test(stats_refs, a_shape_reference_holds_until_a_shape_is_freed)
{
	struct stats_config c = cfg(10);
	struct stats *st = stats_new(&c);
	struct stats_ref ref = {0}, zero = {0};
	const struct stats_shape_info *si, *again;
	char text[64];
	uint64_t gen;

	si = note(st, 42, "select 42", &ref);
	cr_assert_not_null(si);
	gen = ref.gen;
	cr_assert_neq(gen, 0);
	again = stats_shape_again_ref(st, 42, "select 42", 9, &ref);
	cr_assert_eq(again, si);
	cr_assert_eq(ref.gen, gen, "a reference that holds is kept as it is");
	/* a zeroed reference is never taken for one that holds */
	again = stats_shape_again_ref(st, 42, "select 42", 9, &zero);
	cr_assert_eq(again, si);
	cr_assert_eq(zero.gen, gen);
	/* a reference asked for another fingerprint looks that one up */
	cr_assert_null(stats_shape_again_ref(st, 43, "select 43", 9, &zero));
	cr_assert_eq(zero.gen, 0);
	/* the memo keeps max(1000, 2 * 10) unpinned shapes: 1,000 new ones
	 * free 42 (no row pins it), and the reference must not be followed */
	for (uint64_t fp = 1000; fp < 2001; fp++) {
		snprintf(text, sizeof(text), "select %llu", (unsigned long long)fp);
		cr_assert_not_null(note(st, fp, text, NULL));
	}
	cr_assert_null(stats_shape_find(st, 42));
	cr_assert_null(stats_shape_again_ref(st, 42, "select 42", 9, &ref));
	cr_assert_eq(ref.gen, 0);
	/* seen again: a new shape and a new reference to it */
	si = note(st, 42, "select 42", &ref);
	cr_assert_not_null(si);
	cr_assert_gt(ref.gen, gen);
	cr_assert_eq(stats_shape_again_ref(st, 42, "select 42", 9, &ref), si);
	stats_free(st);
}

Test(stats_refs, a_pinned_shape_outlives_the_trim)
{
	struct stats_config c = cfg(10);
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "u");
	struct stats_ref ref = {0};
	const struct stats_shape_info *si;
	char text[64];

	si = note(st, 42, "select 42", &ref);
	rec(st, sc, 42); /* its row pins it */
	for (uint64_t fp = 1000; fp < 2001; fp++) {
		snprintf(text, sizeof(text), "select %llu", (unsigned long long)fp);
		note(st, fp, text, NULL);
	}
	/* other shapes were freed, so the reference is looked up again, and
	 * finds the same shape */
	cr_assert_eq(stats_shape_again_ref(st, 42, "select 42", 9, &ref), si);
	stats_scope_put(st, sc);
	stats_free(st);
}
