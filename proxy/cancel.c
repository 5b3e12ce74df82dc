/*
 * Cancel requests towards PostgreSQL. A CancelRequest goes on a connection
 * of its own, which PostgreSQL closes once it has signalled the backend.
 * Until then the server is held back from other clients
 * (proxy_pool_server_ready parks it): handed on earlier, the cancel could
 * stop the next client's query, as PgBouncer learned.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stats/stats.h"

struct proxy_cancel {
	struct proxy_ctx *ctx;
	struct proxy_server *server; /* borrowed; NULL once the server closed */
	struct pool_node node;       /* on server->cancels */
	struct pool_node all_node;   /* on ctx->cancels */
	ev_io io;
	ev_timer timer;
	int fd;
	bool sent; /* the packet is out: waiting for PostgreSQL to close */
	uint8_t pkt[16];
};

/* How long a cancel may keep its server back. */
#define CANCEL_TIMEOUT 5.0

static void cancel_free(void *obj)
{
	free(obj);
}

bool proxy_server_held(const struct proxy_server *s)
{
	return s->cancel_hold;
}

/* The server is closing: its cancels go on (the query must still stop)
 * but have nothing to hand back. */
void proxy_server_cancels_detach(struct proxy_server *s)
{
	struct pool_node *n;

	while ((n = pool_list_first(&s->cancels))) {
		struct proxy_cancel *cr = n->owner;

		pool_list_remove(&s->cancels, n);
		cr->server = NULL;
	}
	s->cancel_hold = false;
}

/* The cancel connection ended (closed by PostgreSQL, failed or timed out):
 * a server held for it goes back to the pool once no other is in flight. */
static void cancel_done(struct proxy_cancel *cr)
{
	struct proxy_server *s = cr->server;

	ev_io_stop(cr->ctx->loop, &cr->io);
	ev_timer_stop(cr->ctx->loop, &cr->timer);
	if (cr->fd >= 0)
		close(cr->fd);
	cr->fd = -1;
	cr->server = NULL;
	pool_list_remove(&cr->ctx->cancels, &cr->all_node);
	proxy_defer_free(cr->ctx, cr, cancel_free);
	if (!s)
		return;
	pool_list_remove(&s->cancels, &cr->node);
	if (s->cancels.n == 0 && s->cancel_hold && s->state != PROXY_SV_CLOSING) {
		s->cancel_hold = false;
		proxy_pool_server_ready(s);
	}
}

static void cancel_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct proxy_cancel *cr = w->data;
	char junk[64];
	ssize_t n;

	(void)revents;
	if (!cr->sent) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(cr->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err || send(cr->fd, cr->pkt, sizeof(cr->pkt), MSG_NOSIGNAL) !=
		                   (ssize_t)sizeof(cr->pkt)) {
			log_warn("cannot send cancel request: %s", strerror(err ? err : errno));
			cancel_done(cr);
			return;
		}
		cr->sent = true;
		ev_io_stop(loop, &cr->io);
		ev_io_set(&cr->io, cr->fd, EV_READ);
		ev_io_start(loop, &cr->io);
		return;
	}
	n = recv(cr->fd, junk, sizeof(junk), 0);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return; /* PostgreSQL sends nothing; wait for its close */
	cancel_done(cr);
}

static void cancel_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	log_warn("cancel request timed out after %g s", CANCEL_TIMEOUT);
	cancel_done(w->data);
}

void proxy_server_cancel(struct proxy_server *s)
{
	struct proxy_ctx *ctx = s->ctx;
	struct proxy_cancel *cr;
	struct proto_buf b;

	if (!s->be_pid)
		return;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return;
	cr->ctx = ctx;
	proto_buf_init(&b);
	if (proto_put_cancel(&b, s->be_pid, s->be_key) < 0 || proto_buf_avail(&b) != 16) {
		proto_buf_free(&b);
		free(cr);
		return;
	}
	memcpy(cr->pkt, proto_buf_head(&b), 16);
	proto_buf_free(&b);
	cr->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (cr->fd < 0 || (connect(cr->fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 &&
	                   errno != EINPROGRESS)) {
		log_warn("cannot connect for cancel request: %s", strerror(errno));
		if (cr->fd >= 0)
			close(cr->fd);
		free(cr);
		return;
	}
	cr->server = s;
	cr->node.owner = cr;
	cr->all_node.owner = cr;
	pool_list_push_back(&s->cancels, &cr->node);
	pool_list_push_back(&ctx->cancels, &cr->all_node);
	ev_io_init(&cr->io, cancel_io_cb, cr->fd, EV_WRITE);
	cr->io.data = cr;
	ev_timer_init(&cr->timer, cancel_timer_cb, CANCEL_TIMEOUT, 0);
	cr->timer.data = cr;
	ev_io_start(ctx->loop, &cr->io);
	ev_timer_start(ctx->loop, &cr->timer);
}

void proxy_server_cancels_free(struct proxy_ctx *ctx)
{
	struct pool_node *n;

	while ((n = pool_list_first(&ctx->cancels))) {
		struct proxy_cancel *cr = n->owner;

		pool_list_remove(&ctx->cancels, n);
		ev_io_stop(ctx->loop, &cr->io);
		ev_timer_stop(ctx->loop, &cr->timer);
		if (cr->fd >= 0)
			close(cr->fd);
		free(cr);
	}
}
