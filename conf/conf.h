/*
 * Configuration: the ini file (PgBouncer-compatible names), its defaults
 * and validation, and the auth file in PgBouncer's userlist.txt format.
 *
 * Pure code: no logging. Errors come back as text "file:line: message" for
 * the caller to print.
 */
#ifndef SLUICE_CONF_H
#define SLUICE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_WUR __attribute__((warn_unused_result))

enum conf_pool_mode {
	CONF_POOL_UNSET = -1,  /* per-db / per-user: inherit */
	CONF_POOL_SESSION = 0, /* server held for the client's whole session */
	CONF_POOL_TRANSACTION, /* server held until ReadyForQuery 'I' */
	CONF_POOL_STATEMENT,   /* transaction mode that refuses multi-statement transactions */
};

enum conf_auth_type {
	CONF_AUTH_TRUST = 0, /* no password asked; user must exist in auth_file if one is set */
	CONF_AUTH_MD5,       /* md5 challenge; SCRAM if the stored secret is a SCRAM verifier */
	CONF_AUTH_SCRAM,     /* scram-sha-256 */
	CONF_AUTH_PLAIN,     /* cleartext password */
};

enum conf_sslmode {
	CONF_SSL_DISABLE = 0,
	CONF_SSL_ALLOW,
	CONF_SSL_PREFER,
	CONF_SSL_REQUIRE,
	CONF_SSL_VERIFY_CA,
	CONF_SSL_VERIFY_FULL,
};

/* One [databases] entry: "name = host=... port=... dbname=... user=..." */
struct conf_db {
	char *name;        /* owned; "*" is the fallback for unknown names */
	char *host;        /* owned; default "127.0.0.1" (a path starting '/' = unix socket dir) */
	int port;          /* default 5432 */
	char *dbname;      /* owned; default: <name> (for "*": the client's database) */
	char *user;        /* owned or NULL: force this server login user */
	char *password;    /* owned or NULL: password for <user> */
	int pool_size;     /* -1: use default_pool_size */
	int min_pool_size; /* -1: use min_pool_size */
	/*
	 * 0..100000; 0 (the default) = use the [sluice] max_db_connections
	 * (itself 0 = unlimited). Most server connections to this entry's
	 * database, summed over all its pools (every user), as PgBouncer
	 * counts: the name clients ask for, not the server-side dbname.
	 */
	int max_db_connections;
	enum conf_pool_mode pool_mode; /* CONF_POOL_UNSET: inherit */
	/*
	 * Owned, or NULL when not set or set empty. SQL run once on each new
	 * server connection of this entry after login, before any client gets
	 * it (PgBouncer: errors are logged and otherwise ignored).
	 */
	char *connect_query;
	char *application_name; /* owned or NULL: sent in the server's startup packet */
	int line;               /* line in the file, for messages */
};

/* One [users] entry: "name = pool_mode=... max_user_connections=..." */
struct conf_user {
	char *name;                    /* owned */
	enum conf_pool_mode pool_mode; /* CONF_POOL_UNSET: inherit */
	/*
	 * 0..100000; 0 (the default) = use the [sluice] max_user_connections
	 * (itself 0 = unlimited). Most server connections of this user summed
	 * over all databases; the user is the one the pool logs in as (the
	 * entry's forced user=, else the client's name), as PgBouncer counts.
	 */
	int max_user_connections;
	int line;
};

/* [cache] invalidation = ...: how writes made outside sluice are seen. */
enum conf_cache_inval {
	CONF_CACHE_INVAL_NONE = 0, /* bounded by the TTL only */
	CONF_CACHE_INVAL_NOTIFY,   /* LISTEN/NOTIFY trigger helper (sql/sluice_notify.sql) */
};

/*
 * One [cache] "notify.<db> = <conninfo>": with invalidation = notify,
 * sluice keeps a libpq connection to <conninfo> LISTENing, and a
 * notification bumps the named table's generation in database <db>.
 */
struct conf_cache_notify {
	char *db;       /* owned: the database name clients use, as in [databases] */
	char *conninfo; /* owned: a libpq connection string or URI; may hold a
	                   password: never logged, never shown */
	int line;
};

/* One [cache] rule: "table.<schema.table> = <ttl>" or "query.<fp> = <ttl>". */
struct conf_cache_rule {
	bool is_table;  /* table rule, else a statement fingerprint rule */
	char *table;    /* owned (table rules): "schema.table" or "table", as written */
	uint64_t fp;    /* query rules: the fingerprint SHOW QUERIES prints, never 0 */
	uint32_t ttl_s; /* seconds, at least 1 */
	int line;
};

/*
 * [cache] section (conf/cache_conf.c), used by cache/ and proxy/cache_hooks.c.
 */
struct conf_cache {
	bool enabled; /* default false; a change needs a restart */
	/*
	 * Owned: redis_url as written with any password replaced by "***"
	 * (safe for SHOW CONFIG and logs); default "redis://127.0.0.1:6379".
	 * redis://[[user]:password@]host[:port][/db] or an absolute unix
	 * socket path. The legacy redis_host / redis_port keys set the same.
	 */
	char *redis_url;
	char *redis_host;        /* owned; NULL when redis_unix is set */
	int redis_port;          /* default 6379 */
	char *redis_unix;        /* owned or NULL: unix socket path */
	char *redis_user;        /* owned or NULL: ACL user for AUTH (Redis 6+) */
	char *redis_password;    /* owned or NULL: never logged */
	int redis_db;            /* 0..1000000, default 0 */
	uint32_t default_ttl;    /* seconds, default 60: a hint without ttl= */
	size_t max_result_bytes; /* default 1 MiB: bigger replies are not stored */
	size_t l1_bytes;         /* default 16 MiB; 0 = no in-process L1 */
	int redis_timeout_ms;    /* default 100: a slower Redis answer counts as a failure */
	bool strict;             /* cache_strict, default off: every hit checks Redis */
	enum conf_cache_inval invalidation; /* default none */
	struct conf_cache_rule *rules;      /* owned array, in file order */
	size_t nrules;
	struct conf_cache_notify
	        *notify; /* owned array, in file order (a change needs a restart) */
	size_t nnotify;
};
struct conf {
	char *path; /* owned: the file this was read from */

	/* [sluice] (also accepted as [pgbouncer]) */
	char *listen_addr; /* owned, as written (SHOW CONFIG, reload check); default "127.0.0.1" */
	/*
	 * Owned: listen_addr split at commas, blanks trimmed, brackets around
	 * IPv6 literals removed, never empty, no duplicates. "*" (alone) becomes
	 * the two entries "0.0.0.0" and "::" (all IPv4 and all IPv6 addresses).
	 * An entry is a numeric address or a host name to resolve: bind every
	 * address it resolves to, each on listen_port; set IPV6_V6ONLY on IPv6
	 * sockets so that "::" does not collide with "0.0.0.0".
	 */
	char **listen_addrs;
	size_t nlisten_addrs;
	int listen_port;               /* default 6432 */
	enum conf_auth_type auth_type; /* default md5 */
	char *auth_file;               /* owned or NULL */
	char **admin_users;            /* owned list from a comma-separated value */
	size_t nadmin_users;
	char **stats_users;
	size_t nstats_users;
	char *admin_db;                /* default "sluice" */
	enum conf_pool_mode pool_mode; /* default session */
	int min_pool_size;             /* default 5 */
	int default_pool_size;         /* default 50 */
	int max_client_conn;           /* 1..1000000, default 1000 */
	/*
	 * 1..max_client_conn; default half of max_client_conn, at least 100 (or
	 * max_client_conn when smaller)
	 * (resolved after the whole file is read, so it follows an explicit
	 * max_client_conn). Most clients that may be connected and not yet
	 * logged in (startup, TLS handshake, auth exchange, waiting for the
	 * pool's first server login) at once; one more is refused with 53300.
	 * Counted inside max_client_conn, not in addition to it.
	 */
	int max_login_clients;
	/* 0..100000, default 0 = unlimited: server connections per database
	 * name, all users together (a [databases] entry's own value wins). */
	int max_db_connections;
	/* 0..100000, default 0 = unlimited: server connections per server
	 * login user, all databases together (a [users] entry's value wins). */
	int max_user_connections;
	/* durations in seconds (PgBouncer units); 0 disables where it makes sense */
	double server_connect_timeout;   /* default 15 */
	double server_login_retry;       /* default 15 */
	double query_wait_timeout;       /* default 120 */
	double server_idle_timeout;      /* default 600 */
	double server_lifetime;          /* default 3600 */
	double server_check_delay;       /* default 30 */
	double client_login_timeout;     /* default 60 */
	double client_idle_timeout;      /* default 0 */
	double idle_transaction_timeout; /* default 0 */
	double query_timeout;            /* default 0 */
	/*
	 * Default 3600; 0 = never. A pool created from the "*" entry (for a
	 * database name with no entry of its own) that has had no client and
	 * no waiting client for this long is freed with its servers, as
	 * PgBouncer does. Pools of named entries are never freed by this.
	 */
	double dns_max_ttl;      /* default 15: how long a resolved host name is kept */
	double dns_nxdomain_ttl; /* default 15: how long a failed lookup is kept */
	double autodb_idle_timeout;
	char *server_reset_query;        /* default "DISCARD ALL"; "" = none */
	bool server_reset_query_always;  /* default false */
	char *server_check_query;        /* refused unless empty (no server checks yet) */
	int max_prepared_statements;     /* default 200 */
	char *track_extra_parameters;    /* owned or NULL, comma-separated */
	char *ignore_startup_parameters; /* owned or NULL, comma-separated */
	/* default "" = none: a directory for the unix socket .s.PGSQL.<listen_port>
	 * (for application and admin databases alike), made with
	 * unix_socket_mode (octal, default 0777) and removed at exit */
	char *unix_socket_dir;
	int unix_socket_mode;
	double stats_period; /* default 60: seconds over which avg_* figures are taken */
	/*
	 * Owned. "host:port" ("[v6]:port") of the HTTP listener for /metrics
	 * and /health; default "127.0.0.1:9930"; "" = no listener.
	 */
	char *stats_listen;
	int metrics_top_statements;   /* default 50: statements with their own series */
	bool metrics_pgbouncer_names; /* default false: also pgbouncer_exporter's families */
	/* SHOW HEALTH / GET /health thresholds; 0 turns that level off */
	int health_p95_warn_ms;             /* default 100 */
	int health_p95_critical_ms;         /* default 500 */
	int health_pool_warn_pct;           /* default 90 */
	int health_error_rate_critical_pct; /* default 1 */
	int health_slow_rate_warn_pct;      /* default 5 */
	int health_cache_hit_warn_pct;      /* default 70 (warn below) */
	/* Statement statistics (stats/): see README "Statement statistics". */
	bool track_statements;        /* default true: time and classify every statement */
	bool pin_session_state;       /* default true: transaction mode keeps a client that made
	                                 session state on its server (proxy/pin.c) */
	bool track_literals;          /* default false: keep one example with literals per shape */
	int max_tracked_statements;   /* default 5000: rows before the least used fold */
	int slow_query_ms;            /* default 100; 0 = no slow-query log */
	int slow_query_log_size;      /* default 1000: SHOW SLOW's entries */
	int nplusone_threshold;       /* default 10: repeats of one SELECT that make a burst */
	int nplusone_window_ms;       /* default 1000: the window outside a transaction */
	char *logfile;                /* owned or NULL = stderr */
	char *pidfile;                /* owned or NULL */
	int verbose;                  /* 0..2, default 0 */
	size_t pkt_buf;               /* default 8192; I/O buffer size */
	char *client_tls_sslmode_str; /* kept for SHOW CONFIG */
	enum conf_sslmode client_tls_sslmode; /* default disable */
	char *client_tls_cert_file, *client_tls_key_file, *client_tls_ca_file;
	enum conf_sslmode server_tls_sslmode; /* default disable */
	char *server_tls_cert_file, *server_tls_key_file, *server_tls_ca_file;

	struct conf_cache cache;

	struct conf_db *dbs; /* owned array */
	size_t ndbs;
	struct conf_user *users; /* owned array */
	size_t nusers;
};

/*
 * Read and validate <path> into <c> (zeroed or freshly allocated by the
 * caller). On error returns -1 and writes "file:line: message" (or
 * "file: message" for a missing file) into <err>; <c> is left freed.
 */
int conf_load(const char *path, struct conf *c, char *err, size_t errlen) CONF_WUR;
void conf_free(struct conf *c);
/* Fill <c> (not yet holding anything) with the defaults alone, as if read
 * from an empty file; free with conf_free. For SHOW CONFIG's "default". */
void conf_init_defaults(struct conf *c);
/*
 * SET <name> = <value> on the running configuration <c>, validated as the
 * ini file is. Only the [sluice] keys that may change while running are
 * accepted (conf_changeable); -1 with the reason in <err> otherwise, and
 * <c> is left as it was.
 */
int conf_set(struct conf *c, const char *name, const char *value, char *err,
             size_t errlen) CONF_WUR;
/* May [sluice] key <name> be changed with SET (and does a reload change it)? */
bool conf_changeable(const char *name);

/*
 * True when <a> and <b> (the old and new entry for one name, across a
 * reload) give the same server connection: same host, port, dbname, user,
 * password, application_name and connect_query (NULL equals only NULL; a
 * "*" entry's NULL dbname therefore differs from an explicit one). Pool
 * sizes, limits and pool_mode are not part of it. When false, servers
 * opened for <a> must be retired once idle.
 */
bool conf_db_same_target(const struct conf_db *a, const struct conf_db *b);
/*
 * True when the [sluice] settings every server connection uses
 * (server_tls_sslmode and the server_tls_* files) are the same in <a> and
 * <b>; when false, every server opened under <a> must be retired once idle.
 */
bool conf_server_tls_same(const struct conf *a, const struct conf *b);

/* Split "host:port" or "[v6]:port" (stats_listen): false if malformed;
 * <host> (may be NULL) gets the host without brackets. */
bool conf_split_hostport(const char *v, char *host, size_t hostlen, int *port);

/* Entry for <name>, else the "*" entry, else NULL. */
const struct conf_db *conf_find_db(const struct conf *c, const char *name);
const struct conf_user *conf_find_user(const struct conf *c, const char *name);
bool conf_is_admin(const struct conf *c, const char *user);
bool conf_is_stats_user(const struct conf *c, const char *user);
const char *conf_pool_mode_name(enum conf_pool_mode m);

/* Auth file: lines of "user" "secret" (quoted, "" escapes a quote). */
struct conf_auth_entry {
	char *user;   /* owned */
	char *secret; /* owned: plaintext, "md5..." or "SCRAM-SHA-256$..." */
};

struct conf_authlist {
	struct conf_auth_entry *v; /* owned array */
	size_t n;
};

/* Read <path>. -1 with "file:line: message" on a malformed line or I/O error. */
int conf_load_auth_file(const char *path, struct conf_authlist *out, char *err,
                        size_t errlen) CONF_WUR;
void conf_free_auth(struct conf_authlist *a);
/* Secret for <user>, or NULL. */
const char *conf_auth_lookup(const struct conf_authlist *a, const char *user);

#endif /* SLUICE_CONF_H */
