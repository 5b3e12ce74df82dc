/*
 * Slabs: the allocator for connection objects (struct proxy_client,
 * struct proxy_server).
 *
 * Thousands of clients that come and go in bursts would otherwise leave
 * their objects scattered over the heap, each pinning a page that malloc
 * can never give back. Here objects of one size are carved out of chunks
 * of SLAB_CHUNK bytes, mapped from the system and aligned to their size,
 * so the chunk of an object is found by masking its address. Each chunk
 * keeps its own free list; chunks with a free object sit on the slab's
 * partial list, and a chunk whose objects are all free goes back to the
 * system at once (one empty chunk is kept as a spare, so a single client
 * connecting and leaving does not map and unmap every time). A new chunk
 * hands out its objects in address order and touches a page only when an
 * object on it is first used.
 *
 * Under AddressSanitizer chunks come from aligned_alloc instead (so that
 * LeakSanitizer sees the pointers objects hold) and free objects are
 * poisoned, so a use after free is still reported.
 */
#include "proxy/proxy.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define SLAB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define SLAB_ASAN 1
#endif

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define SLAB_MALLOC    1
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Size and alignment of a chunk: some 90 clients, or 85 servers. */
#define SLAB_CHUNK ((size_t)64 * 1024)
/* Objects start at this offset, after the chunk header. */
#define SLAB_HDR ((size_t)64)

struct proxy_slab_chunk {
	struct proxy_slab_chunk *prev, *next; /* on the slab's partial list */
	void *free;                           /* free objects, linked through their first word */
	size_t nused;                         /* objects handed out */
	size_t nfresh;                        /* objects ever handed out: the rest is untouched */
	bool listed;                          /* on the partial list */
};

_Static_assert(sizeof(struct proxy_slab_chunk) <= SLAB_HDR, "slab chunk header too large");

void proxy_slab_init(struct proxy_slab *s, size_t size)
{
	memset(s, 0, sizeof(*s));
	if (size < sizeof(void *))
		size = sizeof(void *);
	s->size = (size + 15) & ~(size_t)15;
	s->per_chunk = (SLAB_CHUNK - SLAB_HDR) / s->size;
}

static struct proxy_slab_chunk *chunk_of(const void *obj)
{
	return (struct proxy_slab_chunk *)((uintptr_t)obj & ~(uintptr_t)(SLAB_CHUNK - 1));
}

static void *chunk_map(void)
{
#ifdef SLAB_MALLOC
	void *p = aligned_alloc(SLAB_CHUNK, SLAB_CHUNK);

	if (p)
		memset(p, 0, SLAB_HDR);
	return p;
#else
	/* map twice the size and cut it down to an aligned chunk */
	size_t len = 2 * SLAB_CHUNK;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;
	size_t head;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + SLAB_CHUNK - 1) & ~(uintptr_t)(SLAB_CHUNK - 1);
	head = a - (uintptr_t)p;
	if (head > 0)
		munmap(p, head);
	if (len - head - SLAB_CHUNK > 0)
		munmap((uint8_t *)a + SLAB_CHUNK, len - head - SLAB_CHUNK);
	return (void *)a; /* fresh anonymous memory reads as zero */
#endif
}

static void chunk_unmap(struct proxy_slab *s, struct proxy_slab_chunk *ch)
{
	(void)s;
#ifdef SLAB_MALLOC
	UNPOISON(ch, SLAB_CHUNK);
	free(ch);
#else
	munmap(ch, SLAB_CHUNK);
#endif
}

static void list_push(struct proxy_slab *s, struct proxy_slab_chunk *ch)
{
	ch->prev = NULL;
	ch->next = s->partial;
	if (s->partial)
		s->partial->prev = ch;
	s->partial = ch;
	ch->listed = true;
}

static void list_remove(struct proxy_slab *s, struct proxy_slab_chunk *ch)
{
	if (ch->prev)
		ch->prev->next = ch->next;
	else
		s->partial = ch->next;
	if (ch->next)
		ch->next->prev = ch->prev;
	ch->prev = ch->next = NULL;
	ch->listed = false;
}

/* An empty chunk ready to hand out objects: the spare, or a new one. */
static struct proxy_slab_chunk *chunk_get(struct proxy_slab *s)
{
	struct proxy_slab_chunk *ch = s->spare;

	if (ch) {
		s->spare = NULL;
		return ch;
	}
	ch = chunk_map();
	if (!ch)
		return NULL;
	POISON((uint8_t *)ch + SLAB_HDR, SLAB_CHUNK - SLAB_HDR);
	s->nchunks++;
	return ch;
}

void *proxy_slab_alloc(struct proxy_slab *s)
{
	struct proxy_slab_chunk *ch = s->partial;
	void *obj;

	if (!ch) {
		ch = chunk_get(s);
		if (!ch)
			return NULL;
		list_push(s, ch);
	}
	if (ch->free) {
		obj = ch->free;
		UNPOISON(obj, s->size);
		ch->free = *(void **)obj;
	} else {
		obj = (uint8_t *)ch + SLAB_HDR + ch->nfresh * s->size;
		UNPOISON(obj, s->size);
		ch->nfresh++;
	}
	ch->nused++;
	s->nobjs++;
	if (ch->nused == s->per_chunk)
		list_remove(s, ch);
	memset(obj, 0, s->size);
	return obj;
}

void proxy_slab_free(struct proxy_slab *s, void *obj)
{
	struct proxy_slab_chunk *ch;

	if (!obj)
		return;
	ch = chunk_of(obj);
	*(void **)obj = ch->free;
	ch->free = obj;
	POISON(obj, s->size);
	ch->nused--;
	s->nobjs--;
	if (!ch->listed)
		list_push(s, ch); /* was full */
	if (ch->nused > 0)
		return;
	/* empty: keep it as the spare (reset, so it fills in address order
	 * again) or give it back */
	list_remove(s, ch);
	if (!s->spare) {
		ch->free = NULL;
		ch->nfresh = 0;
		s->spare = ch;
		return;
	}
	s->nchunks--;
	chunk_unmap(s, ch);
}

void proxy_slab_destroy(struct proxy_slab *s)
{
	while (s->partial) {
		struct proxy_slab_chunk *ch = s->partial;

		list_remove(s, ch);
		chunk_unmap(s, ch);
	}
	if (s->spare)
		chunk_unmap(s, s->spare);
	s->spare = NULL;
	s->nchunks = 0;
}
