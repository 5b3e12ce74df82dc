/* The L1: hits and misses, LRU eviction by bytes, expiry, drop by
 * generation (a bump), flush, and its counters. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"

static uint8_t body[] = {'C', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};

struct made {
	uint8_t *v;
	size_t len;
	struct cache_entry e;
};

/* An entry for key <n> depending on <tables> of database "app". */
static void make(struct made *m, uint64_t n, const char *const *tables, int ntables, size_t padding)
{
	struct cache_entry e = {0};
	uint8_t *big = NULL;

	e.key = (struct cache_key){.hi = n * 0x9e3779b97f4a7c15ull, .lo = n};
	e.created_ms = 1000000;
	e.ttl_s = 60;
	e.gens[e.ngens++] = (struct cache_gen){cache_gen_global(), 0};
	e.gens[e.ngens++] = (struct cache_gen){cache_gen_db("app"), 0};
	for (int i = 0; i < ntables; i++)
		e.gens[e.ngens++] = (struct cache_gen){cache_gen_table("app", tables[i]), 1};
	if (padding) {
		/* one DataRow of <padding> bytes before the CommandComplete */
		big = calloc(1, padding + 5 + sizeof(body));
		uint32_t l = (uint32_t)padding + 4;
		big[0] = 'D', big[1] = (uint8_t)(l >> 24), big[2] = (uint8_t)(l >> 16);
		big[3] = (uint8_t)(l >> 8), big[4] = (uint8_t)l;
		memcpy(big + 5 + padding, body, sizeof(body));
		e.body = big;
		e.body_len = (uint32_t)(padding + 5 + sizeof(body));
	} else {
		e.body = body;
		e.body_len = sizeof(body);
	}
	m->len = cache_entry_size(&e);
	m->v = malloc(m->len);
	cache_entry_encode(&e, m->v);
	free(big);
	cr_assert_eq(cache_entry_decode(m->v, m->len, &m->e), 0);
}

static void put(struct cache_l1 *l1, uint64_t n, const char *const *t, int nt, size_t pad)
{
	struct made m;

	make(&m, n, t, nt, pad);
	cr_assert_eq(cache_l1_put(l1, &m.e, m.v, m.len), 0);
	free(m.v);
}

static bool has(struct cache_l1 *l1, uint64_t n, double now)
{
	struct cache_key k = {.hi = n * 0x9e3779b97f4a7c15ull, .lo = n};

	return cache_l1_get(l1, &k, now) != NULL;
}

#define NOW 1000.0 /* created at 1000 s, ttl 60 */

Test(cache_l1, get_put_and_the_copy)
{
	struct cache_l1 *l1 = cache_l1_new(1 << 20);
	const char *t[] = {"users"};
	struct made m;

	make(&m, 1, t, 1, 0);
	cr_assert_eq(cache_l1_put(l1, &m.e, m.v, m.len), 0);
	memset(m.v, 0, m.len); /* the L1 keeps its own copy */
	free(m.v);
	struct cache_key k = {.hi = 0x9e3779b97f4a7c15ull, .lo = 1};
	const struct cache_entry *e = cache_l1_get(l1, &k, NOW);
	cr_assert_not_null(e);
	cr_assert_eq(e->body_len, sizeof(body));
	cr_assert_arr_eq(e->body, body, sizeof(body));
	cr_assert_eq(e->ngens, 3);
	cr_assert_not(has(l1, 2, NOW));

	struct cache_l1_stats st;
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.hits, 1);
	cr_assert_eq(st.misses, 1);
	cr_assert_eq(st.stores, 1);
	cr_assert_eq(st.entries, 1);
	cr_assert_gt(st.bytes, m.len);
	/* the same key again replaces it */
	put(l1, 1, t, 1, 0);
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.entries, 1);
	cache_l1_free(l1);
}

Test(cache_l1, expiry)
{
	struct cache_l1 *l1 = cache_l1_new(1 << 20);

	put(l1, 1, NULL, 0, 0);
	cr_assert(has(l1, 1, NOW + 59.9));
	cr_assert_not(has(l1, 1, NOW + 60), "expired at created + ttl");
	struct cache_l1_stats st;
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.entries, 0, "an expired entry is freed when met");
	cache_l1_free(l1);
}

Test(cache_l1, lru_eviction_by_bytes)
{
	struct cache_l1 *probe = cache_l1_new(1 << 20);
	struct cache_l1_stats st;
	size_t one;

	put(probe, 1, NULL, 0, 2000);
	cache_l1_stats(probe, &st);
	one = st.bytes;
	cache_l1_free(probe);

	/* room for four and a half */
	struct cache_l1 *l1 = cache_l1_new(one * 9 / 2);
	for (uint64_t i = 1; i <= 4; i++)
		put(l1, i, NULL, 0, 2000);
	cr_assert(has(l1, 1, NOW), "1 is now the most recent");
	put(l1, 5, NULL, 0, 2000);
	cr_assert_not(has(l1, 2, NOW), "the least recently used goes first");
	cr_assert(has(l1, 1, NOW));
	cr_assert(has(l1, 3, NOW));
	cr_assert(has(l1, 5, NOW));
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.evictions, 1);
	cr_assert_leq(st.bytes, one * 9 / 2);

	/* one bigger than the whole L1 is refused, nothing else lost */
	struct made m;
	make(&m, 9, NULL, 0, 20000);
	cr_assert_eq(cache_l1_put(l1, &m.e, m.v, m.len), -1);
	free(m.v);
	cr_assert(has(l1, 5, NOW));
	cache_l1_free(l1);
}

Test(cache_l1, drop_by_generation_and_flush)
{
	struct cache_l1 *l1 = cache_l1_new(1 << 20);
	const char *u[] = {"users"}, *o[] = {"orders"}, *uo[] = {"public.users", "orders"};
	struct cache_l1_stats st;

	put(l1, 1, u, 1, 0);
	put(l1, 2, o, 1, 0);
	put(l1, 3, uo, 2, 0);
	put(l1, 4, NULL, 0, 0);
	cr_assert_eq(cache_l1_drop_gen(l1, cache_gen_table("app", "users")), 2);
	cr_assert_not(has(l1, 1, NOW));
	cr_assert(has(l1, 2, NOW));
	cr_assert_not(has(l1, 3, NOW), "an entry of users and orders goes with users");
	cr_assert(has(l1, 4, NOW));
	cr_assert_eq(cache_l1_drop_gen(l1, cache_gen_table("app", "users")), 0);
	cr_assert_eq(cache_l1_drop_gen(l1, cache_gen_table("other", "orders")), 0,
	             "another database's table");
	cr_assert_eq(cache_l1_drop_gen(l1, cache_gen_db("app")), 2, "a database bump: all");
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.invalidations, 4);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.bytes, 0);

	put(l1, 1, u, 1, 0);
	put(l1, 2, o, 1, 0);
	cache_l1_flush(l1);
	cr_assert_not(has(l1, 1, NOW));
	cr_assert_not(has(l1, 2, NOW));
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.bytes, 0);
	/* entries come back after a flush */
	put(l1, 1, u, 1, 0);
	cr_assert(has(l1, 1, NOW));
	cache_l1_free(l1);
}

/* Many entries over many tables, dropped in a mixed order: the lists and
 * the byte count stay consistent (ASan checks the links). */
Test(cache_l1, churn)
{
	struct cache_l1 *l1 = cache_l1_new(200 * 1024);
	const char *names[] = {"a", "b", "c", "d", "e", "f", "g"};
	struct cache_l1_stats st;

	for (uint64_t i = 1; i <= 3000; i++) {
		const char *t[3] = {names[i % 7], names[(i / 7) % 7], names[(i / 49) % 7]};
		put(l1, i % 500 + 1, t, 3, i % 300);
		if (i % 97 == 0)
			(void)cache_l1_drop_gen(l1, cache_gen_table("app", names[i % 7]));
		(void)has(l1, (i * 7) % 500 + 1, NOW);
	}
	cache_l1_stats(l1, &st);
	cr_assert_leq(st.bytes, 200 * 1024);
	cr_assert_gt(st.entries, 0);
	for (size_t i = 0; i < 7; i++)
		(void)cache_l1_drop_gen(l1, cache_gen_table("app", names[i]));
	cache_l1_stats(l1, &st);
	cr_assert_eq(st.entries, 0);
	cr_assert_eq(st.bytes, 0);
	cache_l1_free(l1);
}
