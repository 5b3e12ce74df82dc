/*
 * Socket I/O shared by client and server connections.
 *
 * Small sends are queued and written once per loop iteration, just before
 * the loop sleeps (proxy_io_flush_dirty), so the several messages one
 * read produces leave in one syscall. Large sends go straight to the
 * socket when nothing is queued, without a copy. Whatever the socket does
 * not take stays queued and the write watcher is armed until it drains.
 *
 * Buffers are held only while bytes are in flight (bufpool.c): a read
 * takes a block, a queued send takes one, and before the loop sleeps
 * every connection that read or sent this iteration gives back what is
 * empty, so an idle connection holds no buffer. The block of the
 * connection read last is handed to the next read when it is empty by
 * then, so a burst of reads in one iteration shares a few blocks.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

/* Room a read wants: with less left in the buffer (after compacting), an
 * incomplete message larger than the block grows it from malloc. */
#define IO_READ_MIN (PROXY_BLOCK_SIZE / 4)
/* Sends at least this large skip the queue when it is empty. */
#define IO_DIRECT_MIN (16 * 1024)

void proxy_io_init(struct proxy_io *io, int fd)
{
	io->fd = fd;
	io->ssl = NULL;
	io->handshaking = false;
	io->dirty = false;
	io->failed = false;
	io->late = false;
	io->next_dirty = NULL;
	proto_buf_init(&io->in);
	proto_buf_init(&io->out);
}

void proxy_io_start_read(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (io->fd >= 0 && !ev_is_active(&io->rd))
		ev_io_start(ctx->loop, &io->rd);
}

void proxy_io_stop_read(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (ev_is_active(&io->rd))
		ev_io_stop(ctx->loop, &io->rd);
}

void proxy_io_freeze(struct proxy_ctx *ctx, struct proxy_io *io)
{
	proxy_io_stop_read(ctx, io);
	io->frozen = true;
}

void proxy_thaw_all(struct proxy_ctx *ctx)
{
	ctx->suspended = false;
	for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		struct proxy_client *c = n->owner;

		if (c->io.frozen) {
			c->io.frozen = false;
			if (c->state != PROXY_CL_CLOSING)
				proxy_io_start_read(ctx, &c->io);
		}
	}
	for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		struct proxy_server *s = n->owner;

		if (s->io.frozen) {
			s->io.frozen = false;
			if (s->state != PROXY_SV_CLOSING)
				proxy_io_start_read(ctx, &s->io);
		}
	}
}

static void mark_dirty(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (io->dirty)
		return;
	io->dirty = true;
	io->next_dirty = ctx->dirty;
	ctx->dirty = io;
}

/* Make room in io->in for a read: a block if it has none, else at least
 * IO_READ_MIN bytes. -1 on OOM. */
static int in_room(struct proxy_ctx *ctx, struct proxy_io *io)
{
	struct proxy_io *prev = ctx->last_read;

	ctx->last_read = io;
	/* the previous read's handler has run: if it left nothing, its block
	 * is free for this one (views into an empty buffer are dead) */
	if (prev && prev != io)
		proxy_buf_drained(&ctx->bufs, &prev->in);
	if (!io->in.data)
		return proxy_buf_take(&ctx->bufs, &io->in);
	return proto_buf_reserve(&io->in, IO_READ_MIN);
}

/* One SSL_read into io->in: >0 bytes, 0 EOF, -1 error, -2 try later. */
static ssize_t tls_read(struct proxy_io *io)
{
	size_t room = io->in.cap - io->in.len;
	int n = SSL_read(io->ssl, io->in.data + io->in.len, room > INT_MAX ? INT_MAX : (int)room);

	if (n > 0) {
		io->in.len += (size_t)n;
		return n;
	}
	switch (SSL_get_error(io->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -2;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

ssize_t proxy_io_read(struct proxy_ctx *ctx, struct proxy_io *io)
{
	ssize_t n, total = 0;

	if (io->failed) {
		errno = EPIPE;
		return -1;
	}
	if (in_room(ctx, io) < 0)
		return -1;
	/* before the loop sleeps, an emptied buffer goes back to the pool */
	mark_dirty(ctx, io);
	if (io->ssl) {
		/* drain what OpenSSL already decrypted: the socket will not wake us for it */
		do {
			if (total > 0 && proto_buf_reserve(&io->in, IO_READ_MIN) < 0)
				return -1;
			n = tls_read(io);
			if (n <= 0)
				return total > 0 ? total : n;
			total += n;
		} while (SSL_pending(io->ssl) > 0);
		return total;
	}
	do {
		n = read(io->fd, io->in.data + io->in.len, io->in.cap - io->in.len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -1;
	io->in.len += (size_t)n;
	return n;
}

/* Write what the socket takes now: bytes written, 0 if none, -1 on error. */
static ssize_t write_some(struct proxy_io *io, const void *p, size_t n)
{
	ssize_t w;

	if (io->ssl) {
		int r = SSL_write(io->ssl, p, n > 0x40000000 ? 0x40000000 : (int)n);

		if (r > 0)
			return r;
		switch (SSL_get_error(io->ssl, r)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return 0;
		default:
			ERR_clear_error();
			return -1;
		}
	}
	do {
		w = send(io->fd, p, n, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return w;
}

int proxy_io_send(struct proxy_ctx *ctx, struct proxy_io *io, const void *p, size_t n)
{
	ssize_t w = 0;

	if (n == 0)
		return 0;
	if (io->fd < 0 || io->failed)
		return -1;
	if (proto_buf_avail(&io->out) == 0 && !io->handshaking && n >= IO_DIRECT_MIN) {
		w = write_some(io, p, n);
		if (w < 0)
			return -1;
		if ((size_t)w == n)
			return 0;
	}
	if (!io->out.data && proxy_buf_take(&ctx->bufs, &io->out) < 0)
		return -1;
	if (proto_buf_append(&io->out, (const uint8_t *)p + w, n - (size_t)w) < 0)
		return -1;
	if ((io->handshaking || w > 0) && !ev_is_active(&io->wr)) {
		/* the socket is full (or not ready): wait until it is writable */
		ev_io_start(ctx->loop, &io->wr);
	}
	/* flushed before the loop sleeps unless the write watcher is armed;
	 * either way its buffers are looked at then */
	mark_dirty(ctx, io);
	return 0;
}

/* Before the loop sleeps: give back the blocks <io> emptied. */
static void io_tidy(struct proxy_ctx *ctx, struct proxy_io *io)
{
	proxy_buf_drained(&ctx->bufs, &io->in);
	proxy_buf_drained(&ctx->bufs, &io->out);
}

/* Write out what is queued on <io> now. */
static void io_push(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (io->fd < 0 || io->handshaking || ev_is_active(&io->wr) ||
	    proto_buf_avail(&io->out) == 0)
		return;
	if (proxy_io_flush(ctx, io) < 0) {
		/* Let the owner find out through its read callback. That runs after
		 * the reaper, so what it queues needs another loop iteration. */
		io->failed = true;
		proxy_buf_release(&ctx->bufs, &io->out);
		ev_feed_event(ctx->loop, &io->rd, EV_READ);
		ev_idle_start(ctx->loop, &ctx->kick);
	} else if (proto_buf_avail(&io->out) <= PROXY_HIGH_WATER / 2) {
		/* no write watcher fires for this drain: resume the peer here */
		proxy_relay_drained(ctx, io);
	}
}

/*
 * Before the loop sleeps: write what this iteration queued. Replies to
 * clients go first, queries to servers after. Each write that wakes a
 * sleeping reader costs the writer most of what a round trip costs it, so
 * replies for many connections of one client process are written together
 * (it wakes once), and a server process woken by its query (on the same
 * core, it may preempt the pooler at once) no longer holds up the replies.
 */
void proxy_io_flush_dirty(struct proxy_ctx *ctx)
{
	struct proxy_io *late = NULL;

	while (ctx->dirty) {
		struct proxy_io *io = ctx->dirty;

		ctx->dirty = io->next_dirty;
		if (io->late) {
			io->next_dirty = late;
			late = io;
			continue;
		}
		io->next_dirty = NULL;
		io->dirty = false;
		io_push(ctx, io);
		io_tidy(ctx, io);
	}
	while (late) {
		struct proxy_io *io = late;

		late = io->next_dirty;
		io->next_dirty = NULL;
		io->dirty = false;
		io_push(ctx, io);
		io_tidy(ctx, io);
	}
}

int proxy_io_flush(struct proxy_ctx *ctx, struct proxy_io *io)
{
	while (proto_buf_avail(&io->out) > 0) {
		ssize_t w = write_some(io, proto_buf_head(&io->out), proto_buf_avail(&io->out));

		if (w < 0)
			return -1;
		if (w == 0) {
			if (!ev_is_active(&io->wr))
				ev_io_start(ctx->loop, &io->wr);
			return 0;
		}
		proto_buf_consume(&io->out, (size_t)w);
	}
	if (ev_is_active(&io->wr))
		ev_io_stop(ctx->loop, &io->wr);
	proxy_buf_drained(&ctx->bufs, &io->out);
	return 1;
}

void proxy_io_close(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (io->dirty) {
		for (struct proxy_io **pp = &ctx->dirty; *pp; pp = &(*pp)->next_dirty) {
			if (*pp == io) {
				*pp = io->next_dirty;
				break;
			}
		}
		io->dirty = false;
		io->next_dirty = NULL;
	}
	if (ev_is_active(&io->rd))
		ev_io_stop(ctx->loop, &io->rd);
	if (ev_is_active(&io->wr))
		ev_io_stop(ctx->loop, &io->wr);
	if (io->ssl) {
		if (!io->handshaking)
			SSL_shutdown(io->ssl); /* best effort close_notify */
		SSL_free(io->ssl);
		io->ssl = NULL;
		ERR_clear_error();
	}
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
	if (ctx->last_read == io)
		ctx->last_read = NULL;
	proxy_buf_release(&ctx->bufs, &io->in);
	proxy_buf_release(&ctx->bufs, &io->out);
}
