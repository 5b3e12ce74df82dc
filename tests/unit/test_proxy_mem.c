/*
 * Memory of connections: the slab allocator for connection objects (zeroed
 * objects, chunks given back when empty, no chunk per object) and the pool
 * of I/O buffer blocks (blocks reused, larger buffers freed, what a
 * released buffer looks like).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "proxy/proxy.h"

#define NOBJ 1000

Test(proxy_slab, objects_are_zeroed_distinct_and_reused)
{
	struct proxy_slab s;
	unsigned char *a, *b;

	proxy_slab_init(&s, sizeof(struct proxy_client));
	cr_assert_geq(s.size, sizeof(struct proxy_client));
	cr_assert_eq(s.size % 16, 0);
	a = proxy_slab_alloc(&s);
	b = proxy_slab_alloc(&s);
	cr_assert(a && b && a != b);
	cr_assert((size_t)(a > b ? a - b : b - a) >= s.size, "objects overlap");
	memset(a, 0xab, s.size);
	proxy_slab_free(&s, a);
	a = proxy_slab_alloc(&s);
	for (size_t i = 0; i < s.size; i++)
		cr_assert_eq(a[i], 0, "byte %zu of a reused object is not zero", i);
	cr_assert_eq(s.nobjs, 2);
	proxy_slab_free(&s, a);
	proxy_slab_free(&s, b);
	proxy_slab_free(&s, NULL);
	cr_assert_eq(s.nobjs, 0);
	proxy_slab_destroy(&s);
}

Test(proxy_slab, chunks_come_back_when_empty)
{
	struct proxy_slab s;
	void *obj[NOBJ];
	size_t full;

	proxy_slab_init(&s, sizeof(struct proxy_client));
	for (int i = 0; i < NOBJ; i++) {
		obj[i] = proxy_slab_alloc(&s);
		cr_assert_not_null(obj[i]);
	}
	full = s.nchunks;
	/* a thousand objects share a few chunks: not one allocation each */
	cr_assert_eq(full, (NOBJ + s.per_chunk - 1) / s.per_chunk);
	/* free every other one: no chunk is empty, none is given back */
	for (int i = 0; i < NOBJ; i += 2)
		proxy_slab_free(&s, obj[i]);
	cr_assert_eq(s.nchunks, full);
	/* new objects fill the holes rather than new chunks */
	for (int i = 0; i < NOBJ; i += 2)
		obj[i] = proxy_slab_alloc(&s);
	cr_assert_eq(s.nchunks, full);
	/* all gone: only the spare chunk is kept */
	for (int i = 0; i < NOBJ; i++)
		proxy_slab_free(&s, obj[i]);
	cr_assert_eq(s.nobjs, 0);
	cr_assert_eq(s.nchunks, 1);
	proxy_slab_destroy(&s);
	cr_assert_eq(s.nchunks, 0);
}

Test(proxy_slab, burst_in_burst_out_keeps_no_ratchet)
{
	struct proxy_slab s;
	void *obj[NOBJ];

	proxy_slab_init(&s, sizeof(struct proxy_server));
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < NOBJ; i++)
			obj[i] = proxy_slab_alloc(&s);
		/* leave in another order than they came */
		for (int i = NOBJ - 1; i >= 0; i -= 3)
			proxy_slab_free(&s, obj[i]);
		for (int i = 0; i < NOBJ; i++)
			if ((NOBJ - 1 - i) % 3 != 0)
				proxy_slab_free(&s, obj[i]);
		cr_assert_eq(s.nobjs, 0);
		cr_assert_eq(s.nchunks, 1, "round %d: %zu chunks held with no object", round,
		             s.nchunks);
	}
	proxy_slab_destroy(&s);
}

Test(proxy_bufpool, blocks_are_reused_and_released)
{
	struct proxy_bufpool bp;
	struct proto_buf a, b;
	uint8_t *first;

	proxy_bufpool_init(&bp);
	proto_buf_init(&a);
	cr_assert_eq(proxy_buf_take(&bp, &a), 0);
	cr_assert_eq(a.cap, PROXY_BLOCK_SIZE);
	cr_assert_eq(proto_buf_avail(&a), 0);
	first = a.data;
	cr_assert_eq(proto_buf_append(&a, "abc", 3), 0);
	/* not empty: stays */
	proxy_buf_drained(&bp, &a);
	cr_assert_eq(a.data, first);
	proto_buf_consume(&a, 3);
	proxy_buf_drained(&bp, &a);
	cr_assert_null(a.data, "an empty block was kept");
	cr_assert_eq(a.cap, 0);
	cr_assert_eq(bp.nfree, 1);
	/* the next taker gets the same block */
	proto_buf_init(&b);
	cr_assert_eq(proxy_buf_take(&bp, &b), 0);
	cr_assert_eq(b.data, first);
	cr_assert_eq(bp.nfree, 0);
	proxy_buf_release(&bp, &b);
	proxy_bufpool_destroy(&bp);
	cr_assert_eq(bp.nfree, 0);
}

Test(proxy_bufpool, grown_buffer_is_kept_while_streaming_then_freed)
{
	struct proxy_bufpool bp;
	struct proto_buf a;
	static uint8_t big[3 * PROXY_BLOCK_SIZE];

	proxy_bufpool_init(&bp);
	proto_buf_init(&a);
	cr_assert_eq(proxy_buf_take(&bp, &a), 0);
	/* a message larger than a block grows the buffer from malloc */
	cr_assert_eq(proto_buf_append(&a, big, sizeof(big)), 0);
	cr_assert_gt(a.cap, PROXY_BLOCK_SIZE);
	proto_buf_consume(&a, sizeof(big));
	/* drained, but a stream would grow it again: kept, and marked for the
	 * once-a-second pass */
	proxy_buf_drained(&bp, &a);
	cr_assert_not_null(a.data);
	cr_assert(bp.grown);
	/* a released grown buffer goes to malloc, not to the pool */
	proxy_buf_release(&bp, &a);
	cr_assert_null(a.data);
	cr_assert_eq(bp.nfree, 0);
	cr_assert_geq(bp.trim_debt, sizeof(big));
	proxy_bufpool_destroy(&bp);
}
