/*
 * Pools of server connections keyed by (database, user).
 *
 * A pool owns no sockets: it keeps the bookkeeping that decides which server
 * a client gets and when a new one may be opened. Connections and clients
 * live in proxy/; they embed a struct pool_node and sit on the pool's lists
 * (idle servers, used servers, connecting servers, waiting clients). The
 * pool also caches what every client of it needs at login: the server's
 * ParameterStatus set, and the SCRAM keys recovered from a client so that
 * later server logins can reuse them.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "protocol/proto.h"
#include "conf/conf.h"

/* Intrusive doubly linked list node; <owner> points at the embedding object. */
struct pool_node {
	struct pool_node *prev, *next;
	void *owner; /* borrowed: the client or server that embeds this node */
};

/* List head with a count, so limits are O(1). */
struct pool_list {
	struct pool_node head; /* sentinel */
	size_t n;
};

void pool_list_init(struct pool_list *l);
/* <n> must not be on a list. */
void pool_list_push_back(struct pool_list *l, struct pool_node *n);
void pool_list_push_front(struct pool_list *l, struct pool_node *n);
/* Remove <n> from whatever list it is on (no-op if on none). */
void pool_list_remove(struct pool_list *l, struct pool_node *n);
struct pool_node *pool_list_first(const struct pool_list *l);
bool pool_node_linked(const struct pool_node *n);

#define POOL_MAX_PARAMS 32

/*
 * Server connections counted across pools: one tally per database name
 * (max_db_connections) and one per user (max_user_connections), shared by
 * every pool of that database or user and freed with the last of them.
 */
struct pool_tally {
	char *key;   /* owned: 'd' or 'u', then the name */
	size_t refs; /* pools pointing here */
	size_t n;    /* their server connections (open or being opened) */
	UT_hash_handle hh;
};

/* A ParameterStatus name/value pair, owned. */
struct pool_param {
	char *name;
	char *value;
};

struct stats_scope;
struct proxy_sparams;

struct pool {
	char *db_name;            /* owned: the database name clients use */
	char *user;               /* owned: the client-side user name */
	char *server_user;        /* owned: the login user towards PostgreSQL */
	const struct conf_db *db; /* borrowed from the current config; refreshed on reload */

	int pool_size; /* ceiling of server connections */
	int min_size;  /* kept open even when idle */
	enum conf_pool_mode mode;
	int max_db_conns;              /* cap of db_tally, 0 = none */
	int max_user_conns;            /* cap of user_tally, 0 = none */
	struct pool_tally *db_tally;   /* borrowed from the pool_set: servers of this database */
	struct pool_tally *user_tally; /* borrowed from the pool_set: servers of this user */

	bool autodb;         /* made from the "*" entry: freed after autodb_idle_timeout unused */
	double unused_since; /* ev_now() since no client and no busy server, 0 = in use */
	bool db_missing;     /* PostgreSQL said 3D000 at the last login: do not refill */
	/* session mode: the startup parameters of the latest server login made
	 * for a client, which servers opened for no client in particular
	 * (min_pool_size) get too; a reference proxy/ holds and drops before
	 * pool_destroy. NULL = none. */
	struct proxy_sparams *warm_sp;

	struct pool_list idle;       /* servers ready for a client (LIFO: warm ones first) */
	struct pool_list used;       /* servers linked to a client or being reset */
	struct pool_list connecting; /* servers in connect/login */
	/* Clients of this pool, one list per state (proxy_client_set_state moves them). */
	struct pool_list logins;    /* waiting for the first server login (ParameterStatus) */
	struct pool_list cl_idle;   /* logged in, no server */
	struct pool_list waiting;   /* queued for a server (FIFO) */
	struct pool_list cl_active; /* linked to a server */

	/* ParameterStatus of the first server that logged in: sent to clients at login. */
	struct pool_param params[POOL_MAX_PARAMS];
	size_t nparams;
	bool have_params;

	/* SCRAM keys recovered from a client's proof, for server logins. */
	struct proto_scram_secret scram_keys;
	bool have_scram_keys;
	/* keys derived from the configured password for PostgreSQL's salt:
	 * later server logins skip the key derivation */
	struct proto_scram_secret server_keys;
	bool have_server_keys;

	/* Last server connection failure, to fail fast and to pace retries. */
	char last_error[256];
	double last_error_at; /* ev_now() time, 0 = none */
	double last_connect_at;

	/*
	 * PgBouncer's per-pool figures (SHOW STATS, /metrics), since start or
	 * RESET STATS; times in microseconds as PgBouncer keeps them. <avg>
	 * holds the averages over the last stats_period, <prev> the totals at
	 * the start of the current period.
	 */
	struct pool_stats {
		uint64_t xact_count;         /* transactions: a server went back to idle ('I') */
		uint64_t query_count;        /* queries: Query messages and Executes */
		uint64_t bytes_recv;         /* bytes from clients */
		uint64_t bytes_sent;         /* bytes to clients */
		uint64_t xact_time;          /* us spent in transactions */
		uint64_t query_time;         /* us spent in queries */
		uint64_t wait_time;          /* us clients spent queued for a server */
		uint64_t server_assignments; /* times a server was linked to a client */
		uint64_t client_parses, server_parses; /* Parse messages from clients, to servers */
		uint64_t client_binds, server_binds;   /* Bind messages, likewise */
	} st, prev, avg;

	/* Counters (since start or RESET STATS). */
	uint64_t n_server_connects;
	uint64_t n_server_failures;
	uint64_t n_wait_timeouts;
	uint64_t n_clients;     /* clients logged in to this pool: idle, waiting or active */
	double total_wait_time; /* seconds clients spent queued */
	uint64_t n_waited;
	uint64_t n_pinned[16]; /* proxy/pin.c: clients pinned, per enum proxy_pin_reason */

	struct stats_scope *stats_scope; /* borrowed reference: its statement statistics */

	UT_hash_handle hh; /* key: db_name "\0" user */
	char *key;         /* owned */
	size_t key_len;
};

/* All pools of a process. */
struct pool_set {
	struct pool *by_key;        /* uthash head */
	struct pool_tally *tallies; /* uthash head */
};

/* Find the pool for (<db_name>, <user>) or NULL. */
struct pool *pool_find(struct pool_set *s, const char *db_name, const char *user);

/*
 * Create the pool for (<db_name>, <user>) with the sizes and mode resolved
 * from <c>, <db> and the user's [users] entry. <server_user> is the login
 * user towards PostgreSQL. NULL on OOM.
 */
struct pool *pool_create(struct pool_set *s, const struct conf *c, const struct conf_db *db,
                         const char *db_name, const char *user, const char *server_user);

/* Re-resolve sizes and mode after a config reload; <db> may have moved. */
void pool_apply_conf(struct pool *p, const struct conf *c, const struct conf_db *db);

/* Remove <p> from <s> and free it, wiping its SCRAM keys; its lists must
 * be empty. */
void pool_destroy(struct pool_set *s, struct pool *p);

/* Servers that exist or are being opened for this pool. */
static inline size_t pool_server_count(const struct pool *p)
{
	return p->idle.n + p->used.n + p->connecting.n;
}

/* May one more server connection be opened, as far as the pool's own size
 * goes? */
bool pool_can_open(const struct pool *p);
/* ... and within max_db_connections and max_user_connections? */
bool pool_caps_allow(const struct pool *p);
/* A server connection of <p> appeared (<delta> 1) or went away (-1). */
void pool_count_server(struct pool *p, int delta);

/*
 * Store one ParameterStatus pair in the pool's login set (replacing a
 * previous value of the same name). -1 on OOM or when the set is full.
 */
int pool_set_param(struct pool *p, const char *name, const char *value)
        __attribute__((warn_unused_result));
const char *pool_get_param(const struct pool *p, const char *name);
void pool_clear_params(struct pool *p);

#endif /* SLUICE_POOL_H */
