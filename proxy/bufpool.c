/*
 * The pool of I/O buffer blocks, and giving memory back after a burst.
 *
 * A connection's input and output buffers (struct proxy_io in and out)
 * hold a block of PROXY_BLOCK_SIZE bytes only while bytes are in flight:
 * io.c takes one when a read starts or a send is queued, and gives it back
 * as soon as the buffer is empty again, so an idle client costs no buffer
 * at all. Free blocks wait on a list for the next connection that needs
 * one; taking and giving back is a pointer swap on the hot path.
 *
 * A message larger than a block grows its buffer from malloc (the block
 * is realloc'd, which is why blocks are plain malloc'd memory). A grown
 * buffer is kept while its connection streams, and once a second one that
 * drained is freed and one that holds little goes back to a block.
 *
 * Memory comes back after a burst in three steps: the free list is capped,
 * and once a second blocks that stayed free for the whole second go back
 * to malloc; and when a burst of connections has gone (their count fell
 * well below its peak) or enough was freed, malloc_trim(0) returns the
 * free pages inside the heap to the system. The objects themselves live
 * in slabs (slab.c) that are unmapped when empty.
 */
#include "proxy/proxy.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* Free blocks kept whatever the load, and at most. */
#define POOL_MIN_FREE 16
#define POOL_MAX_FREE 256
/* malloc_trim once this much was freed, or this many connections left. */
#define TRIM_BYTES ((size_t)1024 * 1024)
#define TRIM_CONNS 256

void proxy_bufpool_init(struct proxy_bufpool *bp)
{
	memset(bp, 0, sizeof(*bp));
}

void proxy_bufpool_destroy(struct proxy_bufpool *bp)
{
	while (bp->free) {
		void *blk = bp->free;

		bp->free = *(void **)blk;
		free(blk);
	}
	bp->nfree = bp->low = 0;
}

int proxy_buf_take(struct proxy_bufpool *bp, struct proto_buf *b)
{
	void *blk = bp->free;

	if (blk) {
		bp->free = *(void **)blk;
		if (--bp->nfree < bp->low)
			bp->low = bp->nfree;
	} else {
		blk = malloc(PROXY_BLOCK_SIZE);
		if (!blk)
			return -1;
		bp->low = 0;
	}
	b->data = blk;
	b->cap = PROXY_BLOCK_SIZE;
	b->off = b->len = 0;
	return 0;
}

static void block_put(struct proxy_bufpool *bp, void *blk)
{
	if (bp->nfree >= POOL_MAX_FREE) {
		free(blk);
		bp->trim_debt += PROXY_BLOCK_SIZE;
		return;
	}
	*(void **)blk = bp->free;
	bp->free = blk;
	bp->nfree++;
}

void proxy_buf_release(struct proxy_bufpool *bp, struct proto_buf *b)
{
	if (!b->data)
		return;
	/* A buffer of exactly a block's size is a block (or grew to one by
	 * doubling, which malloc'd the same size): either serves as a block. */
	if (b->cap == PROXY_BLOCK_SIZE) {
		block_put(bp, b->data);
	} else {
		free(b->data);
		bp->trim_debt += b->cap;
	}
	proto_buf_init(b);
}

void proxy_buf_drained(struct proxy_bufpool *bp, struct proto_buf *b)
{
	if (!b->data)
		return;
	if (b->cap > PROXY_BLOCK_SIZE)
		bp->grown = true;
	else if (proto_buf_avail(b) == 0)
		proxy_buf_release(bp, b);
}

/* Once a second for a buffer grown past a block: free it if it drained,
 * move what it holds into a block if that is little. True if it stays
 * grown. */
static bool tidy_grown(struct proxy_bufpool *bp, struct proto_buf *b)
{
	size_t n = proto_buf_avail(b);
	struct proto_buf nb;

	if (b->cap <= PROXY_BLOCK_SIZE)
		return false;
	if (n == 0) {
		proxy_buf_release(bp, b);
		return false;
	}
	if (n > PROXY_BLOCK_SIZE / 2 || proxy_buf_take(bp, &nb) < 0)
		return true;
	memcpy(nb.data, proto_buf_head(b), n);
	nb.len = n;
	free(b->data);
	bp->trim_debt += b->cap;
	*b = nb;
	return false;
}

static bool tidy_list(struct proxy_bufpool *bp, struct pool_list *l, bool clients)
{
	bool kept = false;

	for (struct pool_node *n = l->head.next; n != &l->head; n = n->next) {
		struct proxy_io *io = clients ? &((struct proxy_client *)n->owner)->io
		                              : &((struct proxy_server *)n->owner)->io;

		kept |= tidy_grown(bp, &io->in);
		kept |= tidy_grown(bp, &io->out);
	}
	return kept;
}

void proxy_mem_upkeep(struct proxy_ctx *ctx)
{
	struct proxy_bufpool *bp = &ctx->bufs;
	size_t conns = ctx->clients.n + ctx->servers.n;
	double now = ev_now(ctx->loop);

	if (conns > bp->conn_peak)
		bp->conn_peak = conns;
	if (now < bp->next_upkeep)
		return;
	bp->next_upkeep = now + 1.0;
	/* blocks that stayed free for the whole second were not needed */
	while (bp->low > POOL_MIN_FREE && bp->nfree > POOL_MIN_FREE) {
		void *blk = bp->free;

		bp->free = *(void **)blk;
		bp->nfree--;
		bp->low--;
		free(blk);
		bp->trim_debt += PROXY_BLOCK_SIZE;
	}
	bp->low = bp->nfree;
	if (bp->grown) {
		/* a walk over every connection, but only after a large message */
		bool kept = tidy_list(bp, &ctx->clients, true);

		kept |= tidy_list(bp, &ctx->servers, false);
		bp->grown = kept;
	}
	if (bp->trim_debt >= TRIM_BYTES || bp->conn_peak - conns >= TRIM_CONNS) {
		/* Free chunks in the middle of the heap stay resident until
		 * trimmed: this gives their pages back (MADV_DONTNEED). It walks
		 * the free chunks, some milliseconds for a large heap, and runs
		 * at most once a second and only after a burst. */
		malloc_trim(0);
		bp->n_trims++;
		bp->trim_debt = 0;
		bp->conn_peak = conns;
	}
}
