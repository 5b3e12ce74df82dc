/*
 * The admin console's connection views, as PgBouncer 1.24 lays them out:
 * SHOW CLIENTS and SHOW SERVERS (one row per client or server
 * connection), SHOW SOCKETS and SHOW ACTIVE_SOCKETS (the same rows with
 * their socket and buffer columns). local_addr/local_port are the
 * connection's own end, so that a server row joins pg_stat_activity's
 * client_port; connect_time, tls, close_needed and prepared_statements are
 * real; columns sluice has no concept for carry a neutral value of their
 * type.
 */
#include "proxy/admin_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/stmt.h"

#define I4       PROTO_OID_INT4
#define I8       PROTO_OID_INT8
#define TX       PROTO_OID_TEXT
#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

static void local_name(int fd, char *addr, size_t len, int *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNSPEC;
	admin_sock_name(&ss, addr, len, port);
}

static void tls_desc(const struct proxy_io *io, char *out, size_t len)
{
	out[0] = '\0';
	if (io->ssl)
		snprintf(out, len, "%s/%s", SSL_get_version(io->ssl),
		         SSL_CIPHER_get_name(SSL_get_current_cipher(io->ssl)));
}

static const char *cl_state_name(const struct proxy_client *c)
{
	switch (c->state) {
	case PROXY_CL_ACTIVE:
	case PROXY_CL_ADMIN:
		return "active";
	case PROXY_CL_IDLE:
		return "idle";
	case PROXY_CL_WAIT:
		return "waiting";
	default:
		return "login";
	}
}

static const char *sv_state_name(const struct proxy_server *s)
{
	if (proxy_server_held(s))
		return "being_canceled";
	switch (s->state) {
	case PROXY_SV_ACTIVE:
		return s->cancels.n > 0 ? "active_cancel" : "active";
	case PROXY_SV_IDLE:
		return "idle";
	case PROXY_SV_RESET:
		return "tested";
	case PROXY_SV_CONNECTING:
	case PROXY_SV_LOGIN:
		return "new";
	default:
		return "used";
	}
}

/* ---- SHOW CLIENTS / SERVERS / SOCKETS / ACTIVE_SOCKETS ---- */

static const struct admin_col conn_cols[] = {
        {"type", TX},
        {"user", TX},
        {"database", TX},
        {"replication", TX},
        {"state", TX},
        {"addr", TX},
        {"port", I4},
        {"local_addr", TX},
        {"local_port", I4},
        {"connect_time", TX},
        {"request_time", TX},
        {"wait", I4},
        {"wait_us", I4},
        {"close_needed", I4},
        {"ptr", TX},
        {"link", TX},
        {"remote_pid", I4},
        {"tls", TX},
        {"application_name", TX},
        {"prepared_statements", I4},
        {"id", I8},
        /* SOCKETS adds these */
        {"recv_pos", I4},
        {"pkt_pos", I4},
        {"pkt_remain", I4},
        {"send_pos", I4},
        {"send_remain", I4},
        {"pkt_avail", I4},
        {"send_avail", I4},
};
#define CONN_COLS   21
#define SOCKET_COLS NCOLS(conn_cols)

/* The low-level columns of SOCKETS for <io>. */
static void socket_cols(struct admin_table *t, const struct proxy_io *io)
{
	size_t in = proto_buf_avail(&io->in), out = proto_buf_avail(&io->out);

	admin_put_u64(t, in);  /* recv_pos */
	admin_put_int(t, 0);   /* pkt_pos */
	admin_put_int(t, 0);   /* pkt_remain */
	admin_put_int(t, 0);   /* send_pos */
	admin_put_u64(t, out); /* send_remain */
	admin_put_u64(t, in);  /* pkt_avail */
	admin_put_u64(t, out); /* send_avail */
}

static void client_row(struct admin_table *t, struct proxy_client *cl, double now, bool sockets)
{
	char addr[64], laddr[64], ptr[24], link[24], tls[96];
	char *port;
	int lport;
	double wait = cl->state == PROXY_CL_WAIT ? now - cl->wait_since : 0;
	size_t prepared = cl->stmts ? HASH_COUNT(cl->stmts) : cl->track ? cl->track->nnamed : 0;

	snprintf(addr, sizeof(addr), "%s", cl->addr);
	port = strrchr(addr, ':');
	if (port)
		*port++ = '\0';
	if (addr[0] == '[') { /* "[<IPv6>]" */
		size_t l = strlen(addr);

		memmove(addr, addr + 1, l);
		if (l >= 2 && addr[l - 2] == ']')
			addr[l - 2] = '\0';
	}
	local_name(cl->io.fd, laddr, sizeof(laddr), &lport);
	tls_desc(&cl->io, tls, sizeof(tls));
	snprintf(ptr, sizeof(ptr), "C-%llu", (unsigned long long)cl->id);
	snprintf(link, sizeof(link), "S-%llu",
	         cl->server ? (unsigned long long)cl->server->id : 0ULL);
	if (wait < 0)
		wait = 0;
	admin_put_text(t, "C");
	admin_put_text(t, cl->user ? cl->user : "");
	admin_put_text(t, cl->db_name ? cl->db_name : "");
	admin_put_text(t, "none");
	admin_put_text(t, cl_state_name(cl));
	admin_put_text(t, addr);
	admin_put_int(t, port ? (int)strtol(port, NULL, 10) : 0);
	admin_put_text(t, laddr);
	admin_put_int(t, lport);
	admin_put_time(t, cl->connected_at);
	admin_put_time(t, cl->last_active > 0 ? cl->last_active : cl->connected_at);
	admin_put_int(t, (long long)wait);
	admin_put_int(t, (long long)((wait - (double)(long long)wait) * 1e6));
	admin_put_int(t, 0);
	admin_put_text(t, ptr);
	admin_put_text(t, cl->server ? link : "");
	admin_put_int(t, 0);
	admin_put_text(t, tls);
	admin_put_text(t, cl->vars[PROXY_VAR_APPLICATION_NAME]
	                          ? cl->vars[PROXY_VAR_APPLICATION_NAME]
	                          : "");
	admin_put_u64(t, prepared);
	admin_put_u64(t, cl->id);
	if (sockets)
		socket_cols(t, &cl->io);
	admin_tbl_row(t);
}

static void server_row(struct admin_table *t, struct proxy_server *s, bool sockets)
{
	char addr[64], laddr[64], ptr[24], link[24], tls[96];
	int port, lport;
	const struct proxy_client *cl = s->client;

	admin_sock_name(&s->addr, addr, sizeof(addr), &port);
	if (!addr[0] && s->pool->db) {
		snprintf(addr, sizeof(addr), "%s", s->pool->db->host);
		port = s->pool->db->port;
	}
	local_name(s->io.fd, laddr, sizeof(laddr), &lport);
	tls_desc(&s->io, tls, sizeof(tls));
	snprintf(ptr, sizeof(ptr), "S-%llu", (unsigned long long)s->id);
	snprintf(link, sizeof(link), "C-%llu", cl ? (unsigned long long)cl->id : 0ULL);
	admin_put_text(t, "S");
	admin_put_text(t, s->pool->server_user);
	admin_put_text(t, s->pool->db_name);
	admin_put_text(t, "none");
	admin_put_text(t, sv_state_name(s));
	admin_put_text(t, addr);
	admin_put_int(t, port);
	admin_put_text(t, laddr);
	admin_put_int(t, lport);
	admin_put_time(t, s->created_at);
	admin_put_time(t, s->last_used > 0 ? s->last_used : s->created_at);
	admin_put_int(t, 0);
	admin_put_int(t, 0);
	admin_put_int(t, s->close_needed);
	admin_put_text(t, ptr);
	admin_put_text(t, cl ? link : "");
	admin_put_u64(t, s->be_pid);
	admin_put_text(t, tls);
	admin_put_text(t, cl && cl->vars[PROXY_VAR_APPLICATION_NAME]
	                          ? cl->vars[PROXY_VAR_APPLICATION_NAME]
	                          : "");
	admin_put_u64(t, s->stmt_lru.n);
	admin_put_u64(t, s->id);
	if (sockets)
		socket_cols(t, &s->io);
	admin_tbl_row(t);
}

/* <which>: 'C' clients, 'S' servers, 's' sockets, 'a' active sockets. */
void admin_show_conns(struct proxy_client *c, char which)
{
	struct proxy_ctx *ctx = c->ctx;
	bool sockets = which == 's' || which == 'a';
	struct admin_table t;
	double now = proxy_now(ctx);

	admin_tbl_begin(&t, conn_cols, sockets ? SOCKET_COLS : CONN_COLS);
	if (which != 'S') {
		for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head;
		     n = n->next) {
			struct proxy_client *cl = n->owner;

			if (cl->state == PROXY_CL_CLOSING ||
			    (which == 'a' && proto_buf_avail(&cl->io.in) == 0 &&
			     proto_buf_avail(&cl->io.out) == 0))
				continue;
			client_row(&t, cl, now, sockets);
		}
	}
	if (which != 'C') {
		for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head;
		     n = n->next) {
			struct proxy_server *s = n->owner;

			if (s->state == PROXY_SV_CLOSING ||
			    (which == 'a' && proto_buf_avail(&s->io.in) == 0 &&
			     proto_buf_avail(&s->io.out) == 0))
				continue;
			server_row(&t, s, sockets);
		}
	}
	admin_tbl_end(c, &t, "SHOW");
}
