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
	int max_db_connections;        /* 0: unlimited */
	enum conf_pool_mode pool_mode; /* CONF_POOL_UNSET: inherit */
	char *connect_query;           /* owned or NULL */
	char *application_name;        /* owned or NULL */
	int line;                      /* line in the file, for messages */
};

/* One [users] entry: "name = pool_mode=... max_user_connections=..." */
struct conf_user {
	char *name;                    /* owned */
	enum conf_pool_mode pool_mode; /* CONF_POOL_UNSET: inherit */
	int max_user_connections;      /* 0: unlimited */
	int line;
};

/* [cache] section: accepted and validated; used by cache/. */
struct conf_cache {
	bool enabled;       /* default false */
	char *redis_host;   /* owned; default "127.0.0.1" */
	int redis_port;     /* default 6379 */
	double default_ttl; /* seconds, default 60 */
	size_t l1_entries;  /* default 1024 */
};

struct conf {
	char *path; /* owned: the file this was read from */

	/* [sluice] (also accepted as [pgbouncer]) */
	char *listen_addr;             /* default "127.0.0.1"; "*" = all */
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
	int max_client_conn;           /* default 1000 */
	int max_db_connections;        /* default 0 = unlimited */
	int max_user_connections;      /* default 0 = unlimited */
	/* durations in seconds (PgBouncer units); 0 disables where it makes sense */
	double server_connect_timeout;        /* default 15 */
	double server_login_retry;            /* default 15 */
	double query_wait_timeout;            /* default 120 */
	double server_idle_timeout;           /* default 600 */
	double server_lifetime;               /* default 3600 */
	double server_check_delay;            /* default 30 */
	double client_login_timeout;          /* default 60 */
	double client_idle_timeout;           /* default 0 */
	double idle_transaction_timeout;      /* default 0 */
	double query_timeout;                 /* default 0 */
	double autodb_idle_timeout;           /* default 3600: pools from "*" unused this long go */
	char *server_reset_query;             /* default "DISCARD ALL"; "" = none */
	bool server_reset_query_always;       /* default false */
	char *server_check_query;             /* default "select 1" */
	int max_prepared_statements;          /* default 200 */
	char *track_extra_parameters;         /* owned or NULL, comma-separated */
	char *ignore_startup_parameters;      /* owned or NULL, comma-separated */
	char *stats_listen;                   /* "host:port", default "127.0.0.1:9127"; "" = off */
	char *logfile;                        /* owned or NULL = stderr */
	char *pidfile;                        /* owned or NULL */
	int verbose;                          /* 0..2, default 0 */
	size_t pkt_buf;                       /* default 8192; I/O buffer size */
	char *client_tls_sslmode_str;         /* kept for SHOW CONFIG */
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
