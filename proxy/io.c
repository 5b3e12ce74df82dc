/*
 * Socket I/O shared by client and server connections.
 *
 * Small sends are queued and written once per loop iteration, just before
 * the loop sleeps (proxy_io_flush_dirty), so the several messages one
 * read produces leave in one syscall. Large sends go straight to the
 * socket when nothing is queued, without a copy. Whatever the socket does
 * not take stays queued and the write watcher is armed until it drains.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

/* Read chunk: large enough that a busy relay needs few syscalls. */
#define IO_READ_CHUNK (32 * 1024)
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

/* One SSL_read into io->in: >0 bytes, 0 EOF, -1 error, -2 try later. */
static ssize_t tls_read(struct proxy_io *io)
{
	int n = SSL_read(io->ssl, io->in.data + io->in.len, (int)(io->in.cap - io->in.len));

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

ssize_t proxy_io_read(struct proxy_io *io)
{
	ssize_t n, total = 0;

	if (io->failed) {
		errno = EPIPE;
		return -1;
	}
	if (proto_buf_reserve(&io->in, IO_READ_CHUNK) < 0)
		return -1;
	if (io->ssl) {
		/* drain what OpenSSL already decrypted: the socket will not wake us for it */
		do {
			if (proto_buf_reserve(&io->in, 16 * 1024) < 0)
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

static void mark_dirty(struct proxy_ctx *ctx, struct proxy_io *io)
{
	if (io->dirty)
		return;
	io->dirty = true;
	io->next_dirty = ctx->dirty;
	ctx->dirty = io;
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
	if (proto_buf_append(&io->out, (const uint8_t *)p + w, n - (size_t)w) < 0)
		return -1;
	if (io->handshaking || w > 0) {
		/* the socket is full (or not ready): wait until it is writable */
		if (!ev_is_active(&io->wr))
			ev_io_start(ctx->loop, &io->wr);
	} else if (!ev_is_active(&io->wr)) {
		mark_dirty(ctx, io);
	}
	return 0;
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
		proto_buf_reset(&io->out);
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
	}
	while (late) {
		struct proxy_io *io = late;

		late = io->next_dirty;
		io->next_dirty = NULL;
		io->dirty = false;
		io_push(ctx, io);
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
	proto_buf_free(&io->in);
	proto_buf_free(&io->out);
}
