/*
 * Private to the admin console (admin.c, the dispatcher and commands,
 * admin_views.c and admin_conns.c, the SHOW views, admin_stats.c, sluice's
 * statement views): the result-set builder both use, and the
 * console's process-wide state (paused and disabled databases, commands
 * that answer later, the stats period).
 */
#ifndef SLUICE_PROXY_ADMIN_INT_H
#define SLUICE_PROXY_ADMIN_INT_H

#include <stdint.h>

#include "proxy/proxy.h"

#define ADMIN_MAX_COLS 40

/* A result set being built; the numbers of the current row are formatted
 * into <cells>, texts are borrowed until the row is put. */
struct admin_table {
	struct proto_buf b;
	size_t ncols;
	size_t nrows;
	int rc;
	char cells[ADMIN_MAX_COLS][64];
	const char *vals[ADMIN_MAX_COLS];
	size_t n; /* values of the current row so far */
};

/* A column: its name and type OID (PROTO_OID_*). */
struct admin_col {
	const char *name;
	uint32_t oid;
};

void admin_tbl_begin(struct admin_table *t, const struct admin_col *cols, size_t n);
void admin_put_text(struct admin_table *t, const char *v); /* NULL is SQL NULL */
void admin_put_int(struct admin_table *t, long long v);
void admin_put_u64(struct admin_table *t, uint64_t v);
/* Unix seconds as PgBouncer prints times ("2024-01-31 12:00:00 UTC"); NULL for 0. */
void admin_put_time(struct admin_table *t, double at);
void admin_tbl_row(struct admin_table *t);
/* Send the result with CommandComplete <tag> and ReadyForQuery; may close <c>. */
void admin_tbl_end(struct proxy_client *c, struct admin_table *t, const char *tag);

/* admin_views.c: <ss> as an address text ("unix" for a unix socket) and port. */
void admin_sock_name(const struct sockaddr_storage *ss, char *addr, size_t len, int *port);
/* admin_conns.c: SHOW CLIENTS ('C'), SERVERS ('S'), SOCKETS ('s') or
 * ACTIVE_SOCKETS ('a'); may close <c>. */
void admin_show_conns(struct proxy_client *c, char which);

/* Per-database console state, keyed by the name clients use. */
struct admin_db_state {
	char *name; /* owned */
	bool paused;
	bool disabled;
	UT_hash_handle hh;
};

/* A console client whose command answers once something has happened. */
enum admin_wait {
	ADMIN_WAIT_NONE = 0,
	ADMIN_WAIT_PAUSE,      /* PAUSE: no server of the database linked any more */
	ADMIN_WAIT_CLOSE,      /* WAIT_CLOSE: no server left marked close_needed */
	ADMIN_WAIT_SHUTDOWN_S, /* SHUTDOWN WAIT_FOR_SERVERS: no server linked */
	ADMIN_WAIT_SHUTDOWN_C, /* SHUTDOWN WAIT_FOR_CLIENTS: no client of a pool left */
	ADMIN_WAIT_SUSPEND,    /* SUSPEND: every client and server socket's output written */
};

struct admin_waiter {
	uint64_t client_id; /* looked up again at each check: the client may be gone */
	enum admin_wait what;
	char *db; /* owned, or NULL for every database */
	struct admin_waiter *next;
};

struct proxy_admin {
	struct admin_db_state *dbs; /* uthash */
	bool all_paused;            /* PAUSE without a name, SIGUSR1 */
	size_t npaused;             /* entries of <dbs> paused: 0 makes the check one test */
	size_t ndisabled;
	struct admin_waiter *waiters;
	ev_timer wait_timer; /* polls the waiters while there are any */
	double period_start; /* ev_now() when the current stats_period began */
	bool safe_shutdown;  /* SIGINT: waiting for the running transactions */
};

/* The console state, made on first use; NULL when out of memory. */
struct proxy_admin *admin_state(struct proxy_ctx *ctx);

#endif /* SLUICE_PROXY_ADMIN_INT_H */
