/*
 * The in-process L1: an LRU of encoded entries bounded by the bytes they
 * take. A uthash table finds an entry by its key (the key is already a
 * hash, so uthash uses its bits as they are), an intrusive list orders
 * entries by use, and each entry is linked into one list per generation
 * it depends on, so a bump drops exactly that table's entries without a
 * scan. Get, put and evict are O(1); a get allocates nothing.
 *
 * The L1 does not check generations itself: the cache object only puts
 * entries it has just seen to be current and drops them on every bump it
 * hears of, and serves from the L1 only while its subscription to other
 * instances' bumps is up.
 */
#include "cache/cache.h"

#include <stdlib.h>
#include <string.h>

#include "cache/cache_hash.h"

struct l1_ent;
struct l1_tab;

/* One entry's membership in one generation's list. */
struct l1_link {
	struct l1_ent *e;
	struct l1_tab *tab;
	struct l1_link *prev, *next;
};

/* The entries that depend on one generation id. */
struct l1_tab {
	uint64_t id;
	struct l1_link *head;
	UT_hash_handle hh;
};

struct l1_ent {
	struct cache_key key;
	UT_hash_handle hh;
	struct l1_ent *older, *newer; /* LRU list */
	double expires;               /* wall clock seconds */
	size_t bytes;                 /* counted against max_bytes */
	struct cache_entry view;      /* points into data[] */
	uint8_t nlinks;
	struct l1_link *links; /* nlinks, right after the struct */
	uint8_t *data;         /* the encoded entry, after the links */
};

struct cache_l1 {
	size_t max;
	struct l1_ent *by_key;
	struct l1_tab *tabs;
	struct l1_ent *newest, *oldest;
	struct cache_l1_stats st;
};

struct cache_l1 *cache_l1_new(size_t max_bytes)
{
	struct cache_l1 *l1 = calloc(1, sizeof(*l1));

	if (l1)
		l1->max = max_bytes;
	return l1;
}

static void lru_unlink(struct cache_l1 *l1, struct l1_ent *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		l1->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		l1->oldest = e->newer;
	e->older = e->newer = NULL;
}

static void lru_push(struct cache_l1 *l1, struct l1_ent *e)
{
	e->older = l1->newest;
	e->newer = NULL;
	if (l1->newest)
		l1->newest->newer = e;
	l1->newest = e;
	if (!l1->oldest)
		l1->oldest = e;
}

static void remove_ent(struct cache_l1 *l1, struct l1_ent *e)
{
	for (unsigned i = 0; i < e->nlinks; i++) {
		struct l1_link *k = &e->links[i];

		if (k->prev)
			k->prev->next = k->next;
		else
			k->tab->head = k->next;
		if (k->next)
			k->next->prev = k->prev;
		if (!k->tab->head) {
			HASH_DEL(l1->tabs, k->tab); // NOLINT(clang-analyzer-core.NullDereference)
			free(k->tab);
		}
	}
	HASH_DEL(l1->by_key, e); // NOLINT(clang-analyzer-core.NullDereference)
	lru_unlink(l1, e);
	l1->st.bytes -= e->bytes;
	l1->st.entries--;
	free(e);
}

void cache_l1_flush(struct cache_l1 *l1)
{
	while (l1->oldest)
		remove_ent(l1, l1->oldest);
}

void cache_l1_free(struct cache_l1 *l1)
{
	if (!l1)
		return;
	cache_l1_flush(l1);
	free(l1);
}

const struct cache_entry *cache_l1_get(struct cache_l1 *l1, const struct cache_key *k, double now)
{
	struct l1_ent *e;

	HASH_FIND(hh, l1->by_key, k, sizeof(*k), e);
	if (e && now >= e->expires) {
		remove_ent(l1, e);
		e = NULL;
	}
	if (!e) {
		l1->st.misses++;
		return NULL;
	}
	l1->st.hits++;
	if (l1->newest != e) {
		lru_unlink(l1, e);
		lru_push(l1, e);
	}
	return &e->view;
}

void cache_l1_drop_key(struct cache_l1 *l1, const struct cache_key *k)
{
	struct l1_ent *e;

	HASH_FIND(hh, l1->by_key, k, sizeof(*k), e);
	if (e)
		remove_ent(l1, e);
}

int cache_l1_put(struct cache_l1 *l1, const struct cache_entry *e, const uint8_t *v, size_t len)
{
	size_t bytes = sizeof(struct l1_ent) + e->ngens * sizeof(struct l1_link) + len;
	struct l1_ent *n;

	cache_l1_drop_key(l1, &e->key);
	if (bytes > l1->max)
		return -1;
	while (l1->st.bytes + bytes > l1->max && l1->oldest) {
		remove_ent(l1, l1->oldest);
		l1->st.evictions++;
	}
	n = malloc(bytes);
	if (!n)
		return -1;
	memset(n, 0, sizeof(*n));
	n->key = e->key;
	n->bytes = bytes;
	n->expires = (double)e->created_ms / 1000.0 + e->ttl_s;
	n->links = (struct l1_link *)(n + 1);
	n->data = (uint8_t *)(n->links + e->ngens);
	memcpy(n->data, v, len);
	n->view = *e;
	n->view.rowdesc = n->data + (e->rowdesc - v);
	n->view.body = n->data + (e->body - v);
	for (unsigned i = 0; i < e->ngens; i++) {
		struct l1_link *k = &n->links[i];
		struct l1_tab *t;

		HASH_FIND(hh, l1->tabs, &e->gens[i].id, sizeof(uint64_t), t);
		if (!t) {
			t = calloc(1, sizeof(*t));
			if (!t) {
				n->nlinks = (uint8_t)i;
				HASH_ADD(hh, l1->by_key, key, sizeof(n->key), n);
				lru_push(l1, n);
				l1->st.bytes += bytes;
				l1->st.entries++;
				remove_ent(l1, n);
				return -1;
			}
			t->id = e->gens[i].id;
			HASH_ADD(hh, l1->tabs, id, sizeof(t->id), t);
		}
		k->e = n;
		k->tab = t;
		k->prev = NULL;
		k->next = t->head;
		if (t->head)
			t->head->prev = k;
		t->head = k;
	}
	n->nlinks = e->ngens;
	HASH_ADD(hh, l1->by_key, key, sizeof(n->key), n);
	lru_push(l1, n);
	l1->st.bytes += bytes;
	l1->st.entries++;
	l1->st.stores++;
	return 0;
}

size_t cache_l1_drop_gen(struct cache_l1 *l1, uint64_t id)
{
	struct l1_tab *t;
	size_t n = 0;

	HASH_FIND(hh, l1->tabs, &id, sizeof(id), t);
	/* removing the last entry of <t> frees it: re-find each time */
	while (t) {
		remove_ent(l1, t->head->e);
		n++;
		HASH_FIND(hh, l1->tabs, &id, sizeof(id), t);
	}
	l1->st.invalidations += n;
	return n;
}

void cache_l1_stats(const struct cache_l1 *l1, struct cache_l1_stats *out)
{
	*out = l1->st;
}
