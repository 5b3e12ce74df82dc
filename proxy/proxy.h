/*
 * The proxy: one libev loop that accepts clients, authenticates them, links
 * them to pooled server connections and relays bytes both ways.
 *
 * All process state lives in one struct proxy_ctx passed explicitly. Client
 * and server connections are state machines driven by their read/write
 * watchers; only proxy_client_set_state() and proxy_server_set_state()
 * change their states. Connections are never freed inside a callback:
 * closing stops the watchers and queues the object for the reaper, which
 * frees it from an ev_prepare watcher before the loop blocks again.
 */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>
#include <uthash.h>

#include "conf/conf.h"
#include "pool/pool.h"
#include "protocol/proto.h"
#include "proxy/pin.h"
#include "stats/stats.h"

#define PROXY_WUR __attribute__((warn_unused_result))

/* Outbound bytes queued on one side before the other side stops being read. */
#define PROXY_HIGH_WATER (256 * 1024)
/* Largest message whose body the relay inspects whole (others stream through). */
#define PROXY_INSPECT_MAX (64 * 1024)
/* Bytes of a client message the relay reads before it decides what to do with
 * it in transaction mode (names, the start of a query text); the rest streams. */
#define PROXY_PREFIX_MAX 4096
/* A drained buffer that grew past this is given back (proto_buf_shrink). */
#define PROXY_BUF_KEEP (64 * 1024)
/* Parse texts whose fingerprints are remembered (reply.c), direct-mapped. */
#define PROXY_TEXT_MEMO 1024

/* Session parameters a client can set that must follow it across servers. */
enum proxy_var {
	PROXY_VAR_CLIENT_ENCODING,
	PROXY_VAR_DATESTYLE,
	PROXY_VAR_TIMEZONE,
	PROXY_VAR_INTERVALSTYLE,
	PROXY_VAR_STD_STRINGS,
	PROXY_VAR_APPLICATION_NAME,
	PROXY_NBUILTIN_VARS,
	/* not reported by PostgreSQL: learnt from the client's own SETs (vars.c) */
	PROXY_VAR_EXTRA_FLOAT_DIGITS = PROXY_NBUILTIN_VARS,
	/* then slots for track_extra_parameters */
	PROXY_NVARS = PROXY_NBUILTIN_VARS + 11,
};

/* What a statement does to extra_float_digits (proxy_efd_parse): 0 nothing
 * sluice can follow, PROXY_EFD_RESET, or PROXY_EFD_VAL(v) for SET to v. */
#define PROXY_EFD_RESET  1
#define PROXY_EFD_VAL(v) ((int16_t)((v) + 64))
/* The statement text <sql> (<len> bytes) read as one SET [SESSION]
 * extra_float_digits {=|TO} <int>|'<int>'|DEFAULT, or RESET
 * extra_float_digits: its PROXY_EFD_* code, 0 for anything else. */
int16_t proxy_efd_parse(const char *sql, size_t len);

/* In a statement's bits as the relay carries them (proxy_pin_shape_bits):
 * it sets a parameter back to its session default (RESET, SET .. TO
 * DEFAULT of the shape's set_name, RESET ALL, DISCARD ALL), which in
 * transaction mode is the server's, not the client's startup value
 * (vars_reset.c puts the latter back). */
#define PROXY_SS_VAR_RESET (1u << 28)

/* Socket plus buffers shared by clients and servers. */
struct proxy_io {
	int fd;               /* owned; -1 when closed */
	bool handshaking;     /* TLS handshake under way: no application data yet */
	bool dirty;           /* on ctx->dirty: flushed and tidied before the loop sleeps */
	bool failed;          /* a deferred write failed: the next read reports it */
	bool late;            /* server side: flushed after the client side */
	bool frozen;          /* SUSPEND stopped its reading; RESUME starts it again */
	SSL *ssl;             /* owned; NULL for plain connections */
	ev_io rd, wr;         /* wr armed only while out is non-empty */
	struct proto_buf in;  /* owned: bytes read, not yet handled; no storage when empty */
	struct proto_buf out; /* owned: bytes waiting for the socket; no storage when empty */
	struct proxy_io *next_dirty;
};

enum proxy_cl_state {
	PROXY_CL_STARTUP, /* waiting for SSLRequest/StartupMessage */
	PROXY_CL_AUTH,    /* password or SASL exchange with the client */
	PROXY_CL_LOGIN,   /* authenticated; waiting for the pool's first server */
	PROXY_CL_IDLE,    /* logged in, no server linked */
	PROXY_CL_WAIT,    /* queued in the pool for a server */
	PROXY_CL_ACTIVE,  /* linked to a server, relaying */
	PROXY_CL_ADMIN,   /* logged in to the admin console */
	PROXY_CL_CLOSING, /* [terminal] watchers stopped; reaper frees */
};

enum proxy_sv_state {
	PROXY_SV_CONNECTING, /* TCP connect in progress */
	PROXY_SV_LOGIN,      /* startup and auth exchange with PostgreSQL */
	PROXY_SV_IDLE,       /* on the pool's idle list */
	PROXY_SV_ACTIVE,     /* linked to a client */
	PROXY_SV_RESET,      /* running server_reset_query before reuse */
	PROXY_SV_CLOSING,    /* [terminal] watchers stopped; reaper frees */
};

enum proxy_auth_step {
	PROXY_AUTH_NONE,
	PROXY_AUTH_CLEARTEXT, /* sent AuthenticationCleartextPassword */
	PROXY_AUTH_MD5,       /* sent AuthenticationMD5Password */
	PROXY_AUTH_SASL_INIT, /* sent AuthenticationSASL */
	PROXY_AUTH_SASL_CONT, /* sent AuthenticationSASLContinue */
};

struct proxy_ctx;
struct proxy_server;
struct proxy_stmt;
struct proxy_cl_stmt;
struct proxy_sv_stmt;
struct proxy_named_fp;
struct proxy_sparams;
struct proxy_cl_cache;
struct cache;
struct cache_rules;
struct stats;
struct stats_client;

/* Requests whose replies the relay must match, in transaction mode. */
enum proxy_pend_kind {
	PROXY_PEND_PARSE = 1,  /* ParseComplete or error */
	PROXY_PEND_BIND,       /* BindComplete or error */
	PROXY_PEND_DESCRIBE_S, /* ParameterDescription, then RowDescription/NoData */
	PROXY_PEND_DESCRIBE_P, /* RowDescription or NoData */
	PROXY_PEND_EXECUTE,    /* rows, then CommandComplete/PortalSuspended/EmptyQuery */
	PROXY_PEND_CLOSE,      /* CloseComplete */
	PROXY_PEND_SYNC,       /* ReadyForQuery */
	PROXY_PEND_QUERY,      /* anything up to ReadyForQuery */
	PROXY_PEND_FAKE,       /* a reply made by the proxy: emit <bytes> at the head */
};

#define PROXY_PEND_HIDE        1   /* reply to an injected request: drop it */
#define PROXY_PEND_FAKE_RFQ    2   /* last byte is a ReadyForQuery status to fill in */
#define PROXY_PEND_FAKE_LISTEN 4   /* the LISTEN-needs-session-mode error, then ReadyForQuery */
#define PROXY_PEND_SHAPE_KEEP  8   /* Describe of a statement: remember the shape it reports */
#define PROXY_PEND_SHAPE_CHECK 16  /* Describe injected to compare a statement's shape */
#define PROXY_PEND_STALE       32  /* its error stands for "cached plan must not change" */
#define PROXY_FAKE_MAX         320 /* largest locally made reply */

#define PROXY_PEND_TIMED 64  /* a client's Query or Execute: its statements are timed */
#define PROXY_PEND_IN_TX 128 /* sent inside a transaction block */

struct proxy_pending {
	uint8_t kind;      /* enum proxy_pend_kind */
	uint8_t flags;     /* PROXY_PEND_* */
	uint8_t len;       /* bytes used */
	uint8_t bytes[61]; /* FAKE: the reply; PARSE: the statement id (8 bytes) */
	uint64_t fp;       /* fingerprint of its statement (a Query's first), 0 = none */
	uint64_t t0;       /* stats_clock_ns() when it left for the server (TIMED) */
	uint64_t wait_ns;  /* the client waited this long for a server before it left */
	uint64_t *more;    /* owned: a Query's later statements' fingerprints, or NULL */
	/* PARSE: the client statement it names, settled at its reply (reply.c);
	 * DESCRIBE: in session mode, the cache's statement it describes. The
	 * serials are prepared.c's on a transaction-mode link, the cache's
	 * (cache_ext.c) otherwise; 0 = none */
	uint64_t serial;
	uint32_t rows;  /* DataRows seen for it */
	uint16_t nmore; /* entries of <more> */
	uint16_t sub;   /* a Query's statements closed so far */
};

/* FIFO of pending replies (ring buffer, reply.c). */
struct proxy_pq {
	struct proxy_pending *v; /* owned */
	size_t head, n, cap;
	bool check_failed; /* one was skipped by an error before its answer came */
};

/* The fingerprints of the client message being relayed (reply.c), stamped
 * on the entries it queues. */
struct proxy_note {
	uint64_t fp[PROTO_SQL_MAX_STMTS];
	uint32_t ss[PROTO_SQL_MAX_STMTS]; /* their session-state bits (pin.c), PROXY_SS_KNOWN */
	uint64_t nh[PROTO_SQL_MAX_STMTS]; /* a Query's: the cursor or statement each names */
	uint16_t n;
	int16_t efd;        /* a lone SET of extra_float_digits: its PROXY_EFD_* code */
	uint8_t hints;      /* the first statement's PROTO_SQL_HINT_* */
	uint32_t cache_ttl; /* and its sluice:cache ttl */
};

/* What to do with a client message (proxy_ps_client_message). */
enum proxy_ps_action {
	PROXY_PS_FORWARD = 0,  /* send it as it is */
	PROXY_PS_REPLACE,      /* send the bytes built instead */
	PROXY_PS_DROP,         /* answered locally */
	PROXY_PS_STALL,        /* send the bytes built, keep the message until the server answers */
	PROXY_PS_REPLACE_HEAD, /* the bytes built replace the first <skip>; the rest streams */
	PROXY_PS_MORE,         /* the whole message is needed (it is at most PROXY_INSPECT_MAX) */
};

/* What the relay has of a client message when it asks prepared.c. */
struct proxy_ps_msg {
	uint8_t type;
	uint32_t len;        /* its length field */
	const uint8_t *body; /* the first <avail> bytes of its body */
	size_t avail;        /* len - 4 when the whole message is buffered */
	size_t skip;         /* out, for PROXY_PS_REPLACE_HEAD: leading bytes not forwarded */
};

/* A client's statement-statistics state (reply.c), made when it sends its
 * first statement, so a client that never does costs nothing. */
struct proxy_cl_track {
	uint64_t unnamed_fp;          /* the unnamed statement's fingerprint */
	uint64_t portal_fp;           /* the unnamed portal's */
	uint64_t nportal_hash;        /* the last named portal bound: its name's hash */
	uint64_t nportal_fp;          /* and its fingerprint */
	uint32_t unnamed_ss;          /* session-state bits (pin.c) of the unnamed statement, */
	uint32_t portal_ss;           /* of the unnamed portal */
	uint32_t nportal_ss;          /* and of the last named portal */
	int16_t unnamed_efd;          /* the unnamed statement's PROXY_EFD_* code */
	struct proxy_named_fp *named; /* owned: session mode's named statements */
	uint32_t nnamed;              /* entries of <named> */
	uint32_t susp_rows;           /* an Execute suspended (row limit): rows so far */
	uint64_t susp_fp, susp_ns;    /* and its fingerprint and time so far */
	struct stats_client *stats;   /* owned by stats/: N+1 state */
	/* Its last Query text that had no literal or one integer, so that the
	 * same text again with another value (a loop) is known by a comparison
	 * instead of a skeleton pass (reply.c, proto_sql_again). */
	char *rep_text;   /* owned: PROXY_REPEAT_MAX bytes, or NULL */
	uint64_t rep_key; /* its skeleton key; 0 = none */
	uint32_t rep_len;
	struct proto_sql_lits rep_lits;
};
#define PROXY_REPEAT_MAX 256 /* longer texts are not kept */

struct proxy_client {
	struct proxy_io io;
	struct proxy_ctx *ctx; /* borrowed */
	uint64_t id;
	enum proxy_cl_state state;
	ev_timer timer; /* login, wait and idle timeouts */
	char addr[56];  /* peer address for logs: "[<IPv6>]:<port>" fits */

	char *user;                  /* owned */
	char *db_name;               /* owned */
	struct pool *pool;           /* borrowed; NULL before login and for the admin console */
	struct proxy_server *server; /* borrowed from the pool while ACTIVE */
	struct pool_node pool_node;  /* on the pool's list for its state (proxy_client_set_state) */
	struct pool_node all_node;   /* on ctx->clients */
	bool admin;                  /* may run admin commands */
	bool stats_only;             /* may run SHOW commands only */
	bool known_user;             /* in auth_file (c->secret is not a stand-in) */
	bool ssl_done;               /* an SSLRequest was answered: no second one */
	bool gss_done;               /* a GSSENCRequest was answered: no second one */
	bool welcome_pending;        /* session mode: welcome sent once its server is linked */

	/* Authentication. */
	enum proxy_auth_step auth_step;
	uint8_t md5_salt[4];
	bool scram_ok;                    /* SCRAM keys recovered, hand to the pool */
	char *secret;                     /* owned copy of the stored secret, wiped on free */
	struct proto_scram_server *scram; /* owned, during SASL */

	/* Cancel key data the client got from us. */
	uint32_t cancel_pid, cancel_key;
	uint64_t cancel_hkey;
	UT_hash_handle hh_cancel;

	/* Session parameters the client asked for; interned, NULL = server default. */
	const char *vars[PROXY_NVARS];
	/* owned reference: session mode's startup parameters (all but user and
	 * database), which its server is opened with; NULL = none */
	struct proxy_sparams *sp;
	/* owned reference: transaction mode's tracked startup parameters, by
	 * proxy_var_name, which RESET returns to (vars_reset.c); NULL = none */
	struct proxy_sparams *start;
	uint32_t start_mask; /* 1 << enum proxy_var of the names in <start> */

	/* Relay state of client -> server bytes. */
	uint32_t pass_left;          /* bytes of the current message still to forward */
	bool unsynced;               /* extended-protocol messages sent since the last Sync */
	bool in_copy;                /* server is in COPY FROM STDIN for us */
	bool copy_in_open;           /* ... and its CopyDone / CopyFail is not sent yet:
	                                PostgreSQL ignores a Sync or Flush meanwhile */
	uint16_t syncs_after_exec;   /* Syncs sent since the last Execute or Query */
	bool stalled;                /* a statement's shape is being checked: relay nothing */
	bool skip_to_sync;           /* that check failed: drop messages up to the Sync */
	uint32_t drop_left;          /* bytes of the current message still to drop */
	uint64_t bound_portal;       /* hash of the portal name of the last Bind */
	uint64_t bound_serial;       /* its named statement, if its shape is not known yet */
	uint64_t bound_stmt_id;      /* and that statement's server-side id */
	struct proxy_stmt *fill;     /* borrowed: a named statement whose text streams in now */
	size_t fill_off;             /* bytes of it copied so far */
	struct proxy_cl_stmt *stmts; /* owned: named prepared statements (transaction mode) */
	double wait_since;           /* ev_now() when queued */

	uint64_t wait_ns;             /* queued this long before its server came */
	struct proxy_cl_track *track; /* owned: statement statistics, made at its first */
	double last_active;           /* ev_now() of the last message */
	double connected_at;          /* ev_now() when accepted (SHOW CLIENTS connect_time) */
	bool admin_skip;              /* console: extended protocol seen, drop up to the Sync */
	struct proxy_cl_cache *cache; /* owned: result-cache state (cache_hooks.c), made on use */
	bool seq_reader;              /* has called currval() / lastval() (pin_hooks.c) */
	uint64_t seq_set_on;          /* the server it last may have advanced a sequence on */
};

struct proxy_server {
	struct proxy_io io;
	struct proxy_ctx *ctx; /* borrowed */
	uint64_t id;
	enum proxy_sv_state state;
	ev_timer timer;              /* connect/login timeout */
	struct pool *pool;           /* borrowed */
	struct proxy_client *client; /* borrowed while ACTIVE */
	struct pool_node node;       /* on one of pool's lists */
	struct pool_node all_node;   /* on ctx->servers */

	struct sockaddr_storage addr; /* where it connected, for cancel requests */
	socklen_t addrlen;
	uint32_t be_pid, be_key;          /* BackendKeyData from PostgreSQL */
	struct proto_scram_client *scram; /* owned during login */
	const char *vars[PROXY_NVARS];    /* interned (proxy_str_get): reported values */
	/* interned: the values its login reported (connect_query included), the
	 * session defaults PostgreSQL gave this connection */
	const char *login_vars[PROXY_NVARS];
	/* owned reference: the client startup parameters it was opened with
	 * (session mode); only a client with the same set gets it */
	struct proxy_sparams *sp;
	/* owned: untracked ParameterStatus pairs its login reported ("name\0value\0"
	 * ..., then "\0"), kept only when <sp> may have changed them; NULL = none */
	char *login_extra;
	bool reset_check;   /* session reset: the fresh-session check runs (backrelay.c) */
	bool stale_session; /* it kept session state a reset cannot undo: close, not reuse */
	bool param_refused; /* its login failed for one client (its startup parameters,
	                     * no room for it): not the pool's failure */

	char status;          /* last ReadyForQuery status: 'I', 'T' or 'E' */
	struct proxy_pin pin; /* transaction mode: session state held for its client (pin.c) */
	/* transaction mode: whose values currval() / lastval() would read here
	 * (pin_hooks.c): the client linked last, whether it may have advanced a
	 * sequence here since, and whether another client may have before */
	uint64_t seq_own;
	bool seq_own_set;
	bool seq_foreign;
	int outstanding;    /* client Query/Sync messages not yet answered by ReadyForQuery */
	int internal;       /* our own queries (reset, SET) whose replies are hidden */
	bool in_copy_out;   /* server is sending COPY data */
	uint32_t pass_left; /* bytes of the current message still to relay */
	bool pass_hide;     /* drop (rather than relay) the current message */
	bool saw_fatal;     /* server sent a FATAL ErrorResponse */
	bool tls_asked;     /* SSLRequest sent, answer not yet read */
	bool track;         /* transaction mode: rewrite statements, match replies */
	struct proxy_pq pq; /* replies expected, in order (when <track>) */
	struct proxy_sv_stmt *stmts; /* owned: statements prepared here, by id */
	uint64_t await_parse;        /* the serial of a client's own Parse still unanswered that
	                                a later Parse of its name waits for, stalled: only its
	                                answer tells 42P05 from a new statement (prepared.c) */
	char dup_name[61];           /* the error due for a STALE request: empty for "cached
	                              * plan must not change", else a Parse of this name,
	                              * which the client already uses (prepared.c) */
	struct pool_list stmt_lru;   /* same, most recently used first */
	uint64_t ddl_epoch;          /* ctx->ddl_epoch when its statements were last valid */
	double created_at;           /* ev_now() at connect */
	double last_used;            /* ev_now() when last released */
	double busy_since;           /* ev_now() when the query now running started */
	int inflight;                /* client Query/Execute/FunctionCall not yet answered */
	double last_rfq;             /* ev_now() of the last ReadyForQuery */
	double xact_start;           /* ev_now() when its client's transaction began, 0 = none */

	enum conf_pool_mode
	        mode; /* pool mode of the current link (a reload applies to new links) */
	struct pool_list cancels; /* CancelRequests for its backend still in flight */
	bool cancel_hold;         /* released while <cancels> ran: not reusable until they end */
	bool close_needed;        /* its database entry changed: close once released */
	bool vars_batch;          /* the link's session-parameter batch awaits its ReadyForQuery */
	/* a client's autocommit SET of extra_float_digits (or RESET ALL,
	 * DISCARD ALL) awaits its ReadyForQuery (pin_hooks.c): its code,
	 * and the replies since */
	int16_t efd_pend;
	uint16_t efd_ccs; /* CommandCompletes */
	bool efd_bad;     /* another tag than the statement's, or an ErrorResponse */
	/* transaction mode: parameters of its client's startup set that a
	 * RESET sent since may have put to this server's default (vars_reset.c);
	 * 1 << enum proxy_var */
	uint32_t rs_pend;
	uint32_t rs_tx;    /* ... that were set back inside the transaction block open now */
	uint32_t rs_redo;  /* ... of those, a ROLLBACK [TO] sent since may have undone */
	uint16_t rs_zs;    /* hidden ReadyForQuery messages due until the last restore's */
	uint16_t rs_fcs;   /* ... of which the restores (set_config calls) are the last */
	bool vars_refused; /* ... and the server refused one of them */
	char *vars_error;  /* owned: the server's message when it refused */
	const char
	        *vars_pending[PROXY_NVARS]; /* interned: values sent, kept if the batch ends well */
	bool cq_sent;                /* connect_query sent, its ReadyForQuery ends the login */
	char *cq_error;              /* owned: connect_query's error message */
	struct proxy_dns_entry *dns; /* borrowed: the resolved host it connects to, or NULL */
	int dns_idx;                 /* which of its addresses */
	struct pool_node dns_node;   /* on dns->waiters while the name resolves */
};

/*
 * bufpool.c: I/O buffers are taken from a pool of fixed-size blocks when a
 * connection has bytes in flight and given back when its buffer is empty,
 * so an idle connection holds none. A message larger than a block grows
 * its buffer from malloc; the buffer goes back to a block afterwards.
 */
#define PROXY_BLOCK_SIZE (32 * 1024)

struct proxy_bufpool {
	void *free;         /* owned: free blocks, linked through their first bytes */
	size_t nfree;       /* blocks on <free> */
	size_t low;         /* fewest free blocks since the last upkeep: not needed */
	size_t trim_debt;   /* bytes given back to malloc since the last malloc_trim */
	size_t conn_peak;   /* most connections since the last malloc_trim */
	double next_upkeep; /* ev_now() of the next proxy_mem_upkeep pass */
	uint64_t n_trims;   /* malloc_trim calls, for tests and the curious */
	bool grown;         /* some buffer may be larger than a block: look once a second */
};

/*
 * slab.c: connection objects live in slabs, fixed-size chunks of objects of
 * one size with a free list per chunk, so thousands of them do not scatter
 * over the heap; a chunk whose objects are all free goes back to the system.
 */
struct proxy_slab_chunk;

struct proxy_slab {
	size_t size;                      /* object size, rounded up */
	size_t per_chunk;                 /* objects per chunk */
	struct proxy_slab_chunk *partial; /* chunks with a free object (doubly linked) */
	struct proxy_slab_chunk *spare;   /* one empty chunk kept, against thrashing */
	size_t nchunks;                   /* chunks held, spare included */
	size_t nobjs;                     /* objects handed out */
};

void proxy_slab_init(struct proxy_slab *s, size_t size);
/* A zeroed object, or NULL when out of memory. */
void *proxy_slab_alloc(struct proxy_slab *s);
/* <obj> came from proxy_slab_alloc(<s>); NULL is ignored. */
void proxy_slab_free(struct proxy_slab *s, void *obj);
/* Release every chunk; every object must have been freed. */
void proxy_slab_destroy(struct proxy_slab *s);

struct proxy_zombie;
struct proxy_admin;
struct proxy_http;
struct stats_health_window;
struct stats_health_check;
struct proxy_istr;
struct proxy_dns;
struct proxy_dns_entry;

#define PROXY_MAX_LISTEN 32

/* A listening socket; io.fd is the socket (owned), io.data the ctx. */
struct proxy_listener {
	ev_io io;
	char where[112]; /* address:port or socket path, for logs */
};

struct proxy_ctx {
	struct ev_loop *loop;      /* borrowed */
	struct conf *conf;         /* owned */
	struct conf_authlist auth; /* owned */
	char *conf_path;           /* owned */

	struct proxy_listener listeners[PROXY_MAX_LISTEN]; /* one per bound address */
	char unix_path[108]; /* the unix socket made (unix_socket_dir), "" if none */
	size_t nlisteners;
	SSL_CTX *tls_accept;  /* owned: TLS towards clients, NULL if disabled */
	SSL_CTX *tls_connect; /* owned: TLS towards servers, NULL if disabled */
	ev_signal sig_int, sig_term, sig_hup, sig_usr1, sig_usr2;
	ev_timer janitor;       /* once a second: pool upkeep */
	ev_prepare reaper;      /* flushes queued output, frees closed connections */
	ev_idle kick;           /* one more loop iteration, for output queued after the reaper */
	struct proxy_io *dirty; /* connections with output queued this loop iteration */

	struct pool_set pools;
	struct pool_list clients;       /* every client */
	struct pool_list servers;       /* every server connection */
	struct proxy_client *by_cancel; /* uthash on cancel_hkey */
	struct proxy_zombie *zombies;   /* closed, to free */

	struct proxy_dns *dns;    /* owned: c-ares channel and host cache, made on first use */
	struct pool_list cancels; /* cancel requests in flight (server.c), freed at exit */

	struct proxy_stmt *stmts; /* every distinct prepared statement (uthash) */
	struct stats *stats;      /* owned: statement statistics */
	struct proxy_note note;   /* the client message being relayed (reply.c) */
	struct proxy_text_memo {
		uint64_t key; /* proto_sql_skeleton of a text (or for a Parse the
		                 hash of its raw text), 0 = empty */
		uint64_t fp;  /* its one statement's fingerprint */
		uint32_t cache_ttl;
		uint8_t hints;
		uint32_t ss;          /* proxy_pin_shape_bits of its shape, while <ref> holds */
		uint64_t nh;          /* and the shape's obj_hash */
		struct stats_ref ref; /* its shape in stats/ */
	} text_memo[PROXY_TEXT_MEMO]; /* reply.c: texts scanned lately */
	char scan_buf[8192];          /* normalized text of a statement being scanned */
	struct proxy_scram_cache *scram_cache; /* SCRAM secrets made from plaintext passwords */
	struct proxy_istr *strs;               /* interned strings (uthash) */
	struct proxy_sparams *sparams;         /* interned startup parameter sets (uthash) */
	uint8_t mock_key[PROTO_SCRAM_KEY_LEN]; /* per process: mock SCRAM salts of unknown users */
	uint64_t next_stmt_id;
	uint64_t next_cl_stmt_serial;
	uint64_t ddl_epoch; /* bumped when DDL passes through */
	size_t n_stmts;     /* entries in <stmts> (and statements still streaming in) */
	size_t stmt_bytes;  /* memory they hold */

	struct proxy_bufpool bufs;     /* I/O buffer blocks (bufpool.c) */
	struct proxy_slab client_slab; /* struct proxy_client objects */
	struct proxy_slab server_slab; /* struct proxy_server objects */
	struct proxy_io *last_read;    /* read last: its empty block serves the next read */
	ev_timer accept_pause;         /* listener stopped after accept() ran out of fds */
	double accept_backoff;         /* length of the next such pause, seconds */

	uint64_t next_id;
	size_t nclients;
	size_t nlogins; /* clients not logged in yet (STARTUP, AUTH, LOGIN) */
	bool shutting_down;
	bool suspended; /* SUSPEND: client and server sockets are not read (admin.c) */
	double started_at;

	struct proxy_http *http;            /* owned: the stats_listen listener, NULL when off */
	struct stats_health_window *health; /* owned: samples behind the recent health figures */
	double health_next;                 /* ev_now() of the next health sample */

	/* Totals for the admin console and metrics. */
	uint64_t n_accepted;
	uint64_t n_login_failures;
	uint64_t n_cancels;
	uint64_t n_login_refused; /* connections refused by max_login_clients */

	struct proxy_admin *admin; /* owned: console state (admin.c): paused and disabled
	                            * databases, commands waiting, the stats period */

	struct cache *cache;             /* owned: the result cache, NULL when [cache] is off */
	struct cache_rules *cache_rules; /* owned: [cache] rules and CACHE ADD */
	size_t cache_nrules;             /* CACHE ADD rules in force */
};

/* main.c / ctx.c */
int proxy_ctx_init(struct proxy_ctx *ctx, struct ev_loop *loop, const char *conf_path, char *err,
                   size_t errlen) PROXY_WUR;
void proxy_ctx_destroy(struct proxy_ctx *ctx);
int proxy_listen(struct proxy_ctx *ctx, char *err, size_t errlen) PROXY_WUR;
/* Re-read the configuration; on failure the running one is kept and -1
 * returned with the reason in <err>. */
int proxy_reload(struct proxy_ctx *ctx, char *err, size_t errlen);
/* The running configuration was changed in place (SET): apply it to the
 * pools, the statement statistics and the log level. */
void proxy_apply_conf(struct proxy_ctx *ctx);
void proxy_shutdown(struct proxy_ctx *ctx);
/* Queue <obj> to be freed by <fn> before the loop next blocks. */
void proxy_defer_free(struct proxy_ctx *ctx, void *obj, void (*fn)(void *));
double proxy_now(const struct proxy_ctx *ctx);

/* io.c */
void proxy_io_init(struct proxy_io *io, int fd);
void proxy_io_start_read(struct proxy_ctx *ctx, struct proxy_io *io);
void proxy_io_stop_read(struct proxy_ctx *ctx, struct proxy_io *io);
/* Read what the socket has into io->in (taking a buffer block if it has
 * none). Returns bytes read, 0 on EOF, -1 on error, -2 when nothing is
 * available. */
ssize_t proxy_io_read(struct proxy_ctx *ctx, struct proxy_io *io);
/* Send <n> bytes: directly if nothing is queued, the rest queued on io->out
 * with the write watcher armed. -1 if the socket failed. */
int proxy_io_send(struct proxy_ctx *ctx, struct proxy_io *io, const void *p, size_t n) PROXY_WUR;
/* Write queued bytes. 1 when all are out, 0 when some remain, -1 on error. */
int proxy_io_flush(struct proxy_ctx *ctx, struct proxy_io *io) PROXY_WUR;
/* Write out what sends queued during this loop iteration: client side first. */
void proxy_io_flush_dirty(struct proxy_ctx *ctx);
void proxy_io_close(struct proxy_ctx *ctx, struct proxy_io *io);

/* bufpool.c */
void proxy_bufpool_init(struct proxy_bufpool *bp);
void proxy_bufpool_destroy(struct proxy_bufpool *bp);
/* Give <b> (which has no storage) a block. -1 on OOM. */
int proxy_buf_take(struct proxy_bufpool *bp, struct proto_buf *b) PROXY_WUR;
/* Drop <b>'s content and give its storage back: a block to the pool,
 * a larger buffer to malloc. */
void proxy_buf_release(struct proxy_bufpool *bp, struct proto_buf *b);
/* Called whenever <b> may have drained: an empty block goes back to the
 * pool at once. A buffer grown past a block is kept, since a stream (a
 * large result, with backpressure) would grow it again at once;
 * proxy_mem_upkeep frees or shrinks it within a second. */
void proxy_buf_drained(struct proxy_bufpool *bp, struct proto_buf *b);
/* From the reaper: at most once a second, give free blocks that were not
 * needed back to malloc, and return freed heap memory to the system
 * (malloc_trim) once a burst of connections has gone. Cheap otherwise. */
void proxy_mem_upkeep(struct proxy_ctx *ctx);

/* main.c: accept() failed with <err> for want of file descriptors or
 * memory: stop the listener for a while (logged once per pause). */
void proxy_accept_pause(struct proxy_ctx *ctx, int err);

/* tls.c */
/* Build the TLS contexts the configuration asks for. -1 with <err>. */
int proxy_tls_init(struct proxy_ctx *ctx, const struct conf *cf, char *err,
                   size_t errlen) PROXY_WUR;
void proxy_tls_free(struct proxy_ctx *ctx);
/* Start TLS on <io> (accepting when <accept>, else connecting to <host>,
 * checked as the sslmode asks). -1 on failure. */
int proxy_tls_start(struct proxy_ctx *ctx, struct proxy_io *io, bool accept,
                    const char *host) PROXY_WUR;
/* Drive the handshake: 1 done, 0 in progress (watchers armed), -1 failed
 * (<err> says why). */
int proxy_tls_handshake(struct proxy_ctx *ctx, struct proxy_io *io, char *err, size_t errlen);

/* errors.c: the errors sluice raises itself (SQLSTATE, severity, hint per case) */
enum proxy_err {
	PROXY_ERR_PROTOCOL,             /* malformed message or startup packet */
	PROXY_ERR_TOO_BIG,              /* message over the size limit */
	PROXY_ERR_PROTOCOL_VERSION,     /* protocol major version other than 3 */
	PROXY_ERR_STARTUP_PARAM,        /* a startup parameter sluice cannot honour */
	PROXY_ERR_TLS_REQUIRED,         /* plain connection where client_tls_sslmode requires TLS */
	PROXY_ERR_NO_USER,              /* startup packet without a user name */
	PROXY_ERR_AUTH_FAILED,          /* wrong password or unknown user */
	PROXY_ERR_NOT_ALLOWED,          /* user not allowed here (admin console, auth_file) */
	PROXY_ERR_NO_DATABASE,          /* database not in [databases] */
	PROXY_ERR_TOO_MANY_CLIENTS,     /* max_client_conn or max_login_clients reached */
	PROXY_ERR_TOO_MANY_LOGINS,      /* max_login_clients reached */
	PROXY_ERR_POOL_FULL,            /* no room for a server connection */
	PROXY_ERR_OOM,                  /* out of memory for this connection */
	PROXY_ERR_INTERNAL,             /* a system call sluice relies on failed */
	PROXY_ERR_SERVER_UNREACHABLE,   /* PostgreSQL cannot be reached or refused the login */
	PROXY_ERR_SERVER_LOST,          /* the linked server connection went away */
	PROXY_ERR_FEATURE,              /* a protocol feature sluice (like PostgreSQL) refuses */
	PROXY_ERR_LOGIN_TIMEOUT,        /* client_login_timeout */
	PROXY_ERR_WAIT_TIMEOUT,         /* query_wait_timeout */
	PROXY_ERR_QUERY_TIMEOUT,        /* query_timeout */
	PROXY_ERR_IDLE_TX_TIMEOUT,      /* idle_transaction_timeout */
	PROXY_ERR_IDLE_TIMEOUT,         /* client_idle_timeout */
	PROXY_ERR_SHUTDOWN,             /* sluice is shutting down */
	PROXY_ERR_ADMIN_DENIED,         /* admin command for admin_users only (ERROR) */
	PROXY_ERR_ADMIN_SYNTAX,         /* unknown admin command (ERROR) */
	PROXY_ERR_ADMIN_PROTOCOL,       /* extended protocol on the admin console */
	PROXY_ERR_TX_IN_STATEMENT_MODE, /* transaction block in statement mode (ERROR) */
	PROXY_ERR_LISTEN_IN_TX_MODE,    /* LISTEN in transaction mode (ERROR) */
	PROXY_ERR_SERVER_NO_DATABASE,   /* PostgreSQL said the database does not exist (3D000) */
	PROXY_ERR_CANCELED,             /* a cancel dropped a request still queued (ERROR) */
	PROXY_ERR_PARAM_REFUSED,        /* the server refused a session parameter of the client */
	PROXY_ERR_ADMIN_RELOAD,      /* RELOAD found a bad file: the running config stays (ERROR) */
	PROXY_ERR_ADMIN_EXTENDED,    /* extended protocol on the admin console (ERROR) */
	PROXY_ERR_ADMIN_SETTING,     /* SET of an unknown, fixed or invalid setting (ERROR) */
	PROXY_ERR_ADMIN_UNSUPPORTED, /* a PgBouncer console command sluice does not have (ERROR) */
	PROXY_ERR_COUNT
};

struct proxy_err_info {
	const char *sqlstate;
	bool fatal;       /* FATAL and close; else ERROR and ReadyForQuery */
	const char *hint; /* what to do, or NULL */
};

extern const struct proxy_err_info proxy_errors[PROXY_ERR_COUNT];

/* Append the ErrorResponse for <e> with <msg> (and <detail>, may be NULL)
 * to <b>; no ReadyForQuery. -1 on OOM. */
int proxy_put_err(struct proto_buf *b, enum proxy_err e, const char *msg,
                  const char *detail) PROXY_WUR;
/* Tell the client about <e>: a FATAL case sends the FatalResponse and
 * closes the client; an ERROR case sends ErrorResponse and ReadyForQuery
 * and the session goes on (closes only if the send fails). */
void proxy_client_fail(struct proxy_client *c, enum proxy_err e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The same with a hint other than the table's. */
void proxy_client_fail_hint(struct proxy_client *c, enum proxy_err e, const char *hint,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* vars.c */
const char *proxy_var_name(enum proxy_var v);
int proxy_var_index(const char *name);
/* Add the names in <list> (comma-separated) to the tracked parameters;
 * names are never removed, so values held by connections keep their slot. */
void proxy_vars_track(const char *list);
/*
 * Interned strings. Values of session parameters are few and repeat over
 * thousands of connections ("UTF8", "ISO, MDY"), so each distinct value is
 * kept once, reference counted, and two interned values are equal exactly
 * when their pointers are. proxy_str_get returns <s> interned (one more
 * reference), NULL on OOM; proxy_str_put drops a reference (NULL is fine).
 */
const char *proxy_str_get(struct proxy_ctx *ctx, const char *s);
void proxy_str_put(struct proxy_ctx *ctx, const char *s);
/* Free the table at exit (every reference must be gone). */
void proxy_strs_free(struct proxy_ctx *ctx);
/*
 * Startup parameter sets (session mode): the pairs a client gave, sorted
 * by name, interned like strings so that clients and servers with the same
 * set share one object and two sets are equal exactly when their pointers
 * are. proxy_sparams_get returns the set of the <n> pairs (one more
 * reference), NULL when <n> is 0 or (with *<oom> set) on OOM.
 */
struct proxy_sparams *proxy_sparams_get(struct proxy_ctx *ctx, const char *const *names,
                                        const char *const *values, size_t n, bool *oom);
/* One more reference to <sp> (NULL is fine); returns <sp>. */
struct proxy_sparams *proxy_sparams_ref(struct proxy_sparams *sp);
void proxy_sparams_put(struct proxy_ctx *ctx, struct proxy_sparams *sp);
/* Walk <sp>'s pairs: start with *<pos> = 0; the next name (its value in
 * *<value>), or NULL at the end. */
const char *proxy_sparams_next(const struct proxy_sparams *sp, size_t *pos, const char **value);
/* The value of <name> in <sp>, or NULL. */
const char *proxy_sparams_find(const struct proxy_sparams *sp, const char *name);
/* Free the table at exit. */
void proxy_sparams_free_all(struct proxy_ctx *ctx);
/*
 * Split an "options" startup parameter as PostgreSQL does (arguments
 * separated by blanks, a backslash escaping the next character) and read
 * its settings: "-c name=value", "-cname=value" and "--name=value", the
 * name's dashes read as underscores. <fn> is called for each; a non-zero
 * return stops the walk and is returned. -1 with PostgreSQL's wording in
 * <err> for anything else (another switch, a setting without "=").
 */
int proxy_options_parse(const char *opts, int (*fn)(void *arg, const char *name, const char *value),
                        void *arg, char *err, size_t errlen);
/* Next item of a comma-separated list, blanks trimmed: its start and
 * length, or NULL at the end. Advances <*pp>. */
const char *proxy_list_next(const char **pp, size_t *len);
/*
 * RESET in transaction mode (vars_reset.c). A direct session's RESET returns a
 * parameter to the value its startup gave; a pooled server's returns it to
 * the server's own. proxy_vars_start keeps the client's tracked startup
 * values (after apply_params filled c->vars from them): -1 on OOM.
 * proxy_vars_sent notes, from the statement bits of what was sent
 * (ctx->note), which of them a RESET may have set back; bit tests only
 * for other statements. proxy_vars_hide tells backrelay.c to hold back a
 * client's ParameterStatus of <v> meanwhile. proxy_vars_settle runs at
 * the client's ReadyForQuery (before it is relayed): once nothing is in
 * flight and the transaction has not failed, it sets the startup values
 * back with hidden FunctionCalls of set_config, and puts on <tell> the
 * ParameterStatus messages the client is owed, only where a value changed
 * from what it was told last. -1 on OOM or a failed write.
 */
int proxy_vars_start(struct proxy_client *c);
void proxy_vars_sent(struct proxy_client *c, struct proxy_server *s, uint8_t type, int act);
bool proxy_vars_hide(const struct proxy_server *s, int v);
int proxy_vars_settle(struct proxy_server *s, struct proto_buf *tell);

/* auth.c */
/* Handle a framed startup-phase packet (SSLRequest, CancelRequest,
 * StartupMessage) of a client in STARTUP state. May close the client. */
void proxy_auth_startup(struct proxy_client *c, const struct proto_msg *m);
/* Handle a password/SASL message of a client in AUTH state. May close it. */
void proxy_auth_password(struct proxy_client *c, const struct proto_msg *m);

/* client.c */
/* Handle what is buffered from the client, as its state says. May close it. */
void proxy_client_process(struct proxy_client *c);
void proxy_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Take over <fd>, a connected non-blocking client socket from <ss>, in
 * STARTUP state with its login timer running. NULL (fd closed) on OOM. */
struct proxy_client *proxy_client_new(struct proxy_ctx *ctx, int fd,
                                      const struct sockaddr_storage *ss);
/* Stop the client's watchers, release its server, and queue it for the
 * reaper. Idempotent. */
void proxy_client_close(struct proxy_client *c);
/* Send what <b> holds to the client if <rc> (what building it returned) is
 * 0, and free <b>. -1 when it was not sent: then the client is closed. */
int proxy_client_send(struct proxy_client *c, struct proto_buf *b, int rc);
/* "C-<id> db/user@addr" for log lines, names escaped. */
void proxy_client_describe(const struct proxy_client *c, char *buf, size_t len);
/* The pool's server login finished: welcome a client in LOGIN state. */
void proxy_client_login_done(struct proxy_client *c);
/* At link: send the welcome a session-mode client waits for (with its
 * server's backend pid). 0 if sent or none pending, -1 if the client was
 * closed. */
int proxy_client_welcome_linked(struct proxy_client *c) PROXY_WUR;
/* Link a WAIT/IDLE client with a ready server and start relaying. */
void proxy_client_link(struct proxy_client *c, struct proxy_server *s);
/* Relay server bytes to the linked client; called by server.c. */
void proxy_client_resume(struct proxy_client *c);
/* io.c: a deferred flush left <io>'s output below the low-water mark
 * (PROXY_HIGH_WATER / 2): let its peer be read again. Only starts watchers,
 * never relays or closes (it runs inside proxy_io_flush_dirty). */
void proxy_relay_drained(struct proxy_ctx *ctx, struct proxy_io *io);
/* The only writer of c->state: checks that the transition is legal (abort
 * otherwise), moves the client between its pool's lists, keeps the pool's
 * client count, and sets the timer the new state needs. The client's pool
 * must be set before it enters LOGIN, IDLE, WAIT or ACTIVE. */
void proxy_client_set_state(struct proxy_client *c, enum proxy_cl_state st);
/* SUSPEND: <io> (of a logged-in client that is not the admin console's,
 * or of a server past its login) waits for RESUME: its reading is stopped
 * and it is marked frozen. */
void proxy_io_freeze(struct proxy_ctx *ctx, struct proxy_io *io);
/* RESUME after SUSPEND: read every frozen socket again. */
void proxy_thaw_all(struct proxy_ctx *ctx);
/* Enforce query_timeout, idle_transaction_timeout and client_idle_timeout
 * on a linked client; may close it. Called once a second. */
void proxy_client_check_timeouts(struct proxy_client *c, double now);

/* server.c */
/* Open a new server connection for <p>. -1 (with <p>->last_error set) if it
 * failed at once. */
int proxy_server_open(struct proxy_ctx *ctx, struct pool *p) PROXY_WUR;
/* The one answer to "may <s> go to another client?": no query, transaction,
 * COPY, reply or half-relayed message in flight on it, nor on its client
 * <c> (NULL when it has none). */
bool proxy_server_reusable(const struct proxy_server *s, const struct proxy_client *c);
/* The client is done with <s>: reset and pool it, or close it if dirty. */
void proxy_server_release(struct proxy_server *s, bool client_gone);
void proxy_server_close(struct proxy_server *s, const char *reason);
/* Relay client bytes already framed to the server; resumes reading. */
void proxy_server_resume(struct proxy_server *s);
/* Relay pending server bytes to its client. */
void proxy_server_process(struct proxy_server *s);
void proxy_server_set_state(struct proxy_server *s, enum proxy_sv_state st);
/* Send and free <b> (a built message) to <s>. -1 if the socket failed. */
int proxy_server_send_buf(struct proxy_server *s, struct proto_buf *b) PROXY_WUR;
/* Record the reported value of a tracked parameter on <s>. */
void proxy_server_set_var(struct proxy_server *s, const char *name, const char *value);
/* Go on with <s>'s login from what it has read. May close <s>. */
void proxy_server_login_step(struct proxy_server *s);
/* "S-<id> db/user" for log lines, names escaped. */
void proxy_server_describe(const struct proxy_server *s, char *buf, size_t len);
/* Send a CancelRequest for <s>'s backend on a new connection. Until
 * PostgreSQL has closed that connection (it has acted then), <s> is not
 * handed to another client. */
void proxy_server_cancel(struct proxy_server *s);
/* cancel.c */
/* Free the cancel requests still in flight (at exit). */
void proxy_server_cancels_free(struct proxy_ctx *ctx);
/* <s> is closing: its cancels go on (the query must still stop) but have
 * no server to hand back. */
void proxy_server_cancels_detach(struct proxy_server *s);
/* Released while a cancel for its backend was in flight: parked on the
 * used list, not reusable until the cancel has completed. */
bool proxy_server_held(const struct proxy_server *s);

/* pool upkeep (poolmgr.c) */
/* A client wants a server: link one, open one, or queue the client. */
void proxy_pool_request(struct proxy_client *c);
/* A server became ready (new, reset, or released): hand it on or park it. */
void proxy_pool_server_ready(struct proxy_server *s);
/* Session mode: the startup parameters a server opened now for <p> should
 * have: those of the first waiting client still short of a server, else
 * those of the pool's latest server login (p->warm_sp). Borrowed. */
struct proxy_sparams *proxy_pool_pick_sp(struct pool *p);
/* Server connect/login failed: fail clients that nothing else can serve. */
void proxy_pool_connect_failed(struct pool *p);
/* Once a second: timeouts, min_pool_size, lifetimes, unused autodb pools. */
void proxy_pool_janitor(struct proxy_ctx *ctx);
/* A CancelRequest names client <c>: forward it to the server running its
 * query, or, when <c> waits for a server, drop its queued request and
 * answer it with 57014. May close <c> (if the answer cannot be sent). */
void proxy_pool_cancel(struct proxy_client *c);
/* A reload replaced the configuration: <old> is the entry <p> used before
 * (still valid). Retires servers made with changed connection settings and
 * fails the waiting clients of a removed database. */
void proxy_pool_reloaded(struct proxy_ctx *ctx, struct pool *p, const struct conf_db *old);
/* A server of <p> is gone: clients of other pools held back by
 * max_db_connections / max_user_connections may get one now. */
void proxy_pool_capacity_freed(struct proxy_ctx *ctx, struct pool *p);
/* Get (or create) the pool for a client; NULL with a logged reason. */
struct pool *proxy_pool_for(struct proxy_ctx *ctx, const char *db_name, const char *user,
                            enum proxy_err *err, char *msg, size_t msglen);

/*
 * reply.c: the request/reply tracker, in every pool mode. Each request the
 * client sends that gets a reply is an entry on its server's queue; each
 * reply closes the entry at the head, in order. prepared.c queues its
 * entries here (and its injected ones, hidden); statistics hang off the
 * closing replies.
 */
/* Queue an entry; it carries the fingerprints of ctx->note. -1 on OOM. */
int proxy_reply_push(struct proxy_server *s, uint8_t kind, uint8_t flags, const void *bytes,
                     size_t len) PROXY_WUR;
/* The <i>-th entry from the head (i < q->n). */
struct proxy_pending *proxy_reply_at(struct proxy_pq *q, size_t i);
/* A CopyInResponse answers the head: drop up to <n> Sync entries right
 * behind it, which PostgreSQL, in copy-in mode, ignores. */
void proxy_reply_copy_in(struct proxy_server *s, unsigned n);
void proxy_pq_free(struct proxy_pq *q);
/* Before a client message is queued: find the statements it runs
 * (scanning a Query's or Parse's text, or looking up a Bind's statement
 * and an Execute's portal) into ctx->note. Nothing when tracking is off. */
void proxy_reply_note(struct proxy_client *c, struct proxy_server *s, const struct proxy_ps_msg *m);
/* Queue what an untouched client message <m> expects (session mode and
 * any message prepared.c leaves alone). PROXY_PS_FORWARD, PROXY_PS_MORE
 * (a named Parse that must be read whole first), or -1 on OOM. */
int proxy_reply_request(struct proxy_client *c, struct proxy_server *s, struct proxy_ps_msg *m);
/* Account a server reply of <type> (its <body>, or NULL when it was not
 * read whole): 0 relay it, 1 hide it, PROXY_PS_STALE_ERROR hide it and send
 * the client the stale-statement error in its place. */
#define PROXY_PS_STALE_ERROR 2
int proxy_reply_track(struct proxy_server *s, uint8_t type, const uint8_t *body, size_t len);
/* If a locally made reply is at the head of the queue, copy it to <buf>
 * (PROXY_FAKE_MAX bytes) and return 1. */
int proxy_reply_take_fake(struct proxy_server *s, uint8_t *buf, size_t *len);
/* backrelay.c: does the reply at the head of <s>'s queue describe a
 * statement whose shape prepared.c or the cache follows? Then a
 * RowDescription is read whole (up to PROXY_INSPECT_MAX). */
bool proxy_reply_wants_body(const struct proxy_server *s);
/* The fingerprint of a statement text, scanned now (and its shape noted). */
uint64_t proxy_reply_text_fp(struct proxy_ctx *ctx, const char *sql, size_t len, bool complete);
/* A client is gone: its statement-statistics state goes. */
void proxy_reply_client_free(struct proxy_client *c);

/*
 * pin.c: transaction pooling keeps a client on its server while that
 * server holds session state the client made (see pin.h).
 */
struct stats_shape_info;
/* Are pins taken on <s> (pin_session_state on, a transaction-mode link)? */
bool proxy_pin_wanted(const struct proxy_server *s);
/* The statement bits of <si> as pins see them (a SET of a parameter sluice
 * tracks is no state: it follows the client), with PROXY_SS_KNOWN. */
uint32_t proxy_pin_shape_bits(const struct stats_shape_info *si);
/* relay.c: a client message of <type> went to <s> as <act> (enum
 * proxy_ps_action); ctx->note holds its statements. Logs a new pin. */
void proxy_pin_sent(struct proxy_client *c, struct proxy_server *s, uint8_t type, int act);
/* backrelay.c: the client's server sent an ErrorResponse ('E') or a
 * ReadyForQuery ('Z', status recorded). Logs an unpin. */
void proxy_pin_reply(struct proxy_server *s, uint8_t type);
/* backrelay.c: the ReadyForQuery after a client's tracked SET of
 * extra_float_digits (s->efd_pend) came, status recorded: the value
 * follows the client if the SET surely took effect and nothing undid it,
 * else the client is pinned as for any SET. */
void proxy_pin_efd_done(struct proxy_server *s);
/* server.c: the pinned client of <s> left, <s> being clean: reset it with
 * DISCARD ALL (then it is pooled) or close it (LOAD). False if <s> holds
 * nothing (the caller goes on). */
bool proxy_pin_left(struct proxy_server *s);
/* SHOW PINS; may close <c>. */
void proxy_pin_show(struct proxy_client *c);
/* server.c: the question asked after <reset_query> (server_reset_query, or
 * the DISCARD ALL a pinned client's leaving sends): one row if the session
 * kept what the reset does not undo (a temporary schema, ...). */
const char *proxy_fresh_check_sql(const char *reset_query);
/* relay.c: <c> was just linked to <s> (transaction or statement mode). */
void proxy_pin_linked(struct proxy_client *c, struct proxy_server *s);
/* relay.c: a client message of <type> is about to go to <s>, nothing of it
 * sent yet; ctx->note holds its statements. Before a currval() / lastval()
 * on a server whose sequence memory may hold another client's values, it
 * sends DISCARD SEQUENCES (hidden). <any>: the session bits of all the
 * message's statements. -1 if <s> cannot be written to. */
int proxy_pin_before(struct proxy_client *c, struct proxy_server *s, uint8_t type,
                     uint32_t any) PROXY_WUR;
/* poolmgr.c: <n>, the first idle server <c> may have, or one it used last
 * (its sequence values are there) among the next few idle ones. */
struct pool_node *proxy_pin_prefer(const struct proxy_client *c, struct pool_node *n,
                                   const struct pool_list *idle);
/* backrelay.c: a hidden ReadyForQuery ('Z') or DataRow ('D') of <body>
 * came while the pin's question is in flight (s->pin.probe_zs). */
void proxy_pin_probe_reply(struct proxy_server *s, uint8_t type, const uint8_t *body, size_t len);

/*
 * cache_hooks.c and cache_ext.c: the result cache seen from the proxy
 * (see their top comments). Nothing here is called when [cache] is off.
 */
/* main.c: make the cache when [cache] enabled (-1 with <err>), start it
 * on the loop, apply a reload's rules, free it at exit. */
int proxy_cache_init(struct proxy_ctx *ctx, char *err, size_t errlen) PROXY_WUR;
void proxy_cache_start(struct proxy_ctx *ctx);
void proxy_cache_reload(struct proxy_ctx *ctx, const struct conf *nc);
void proxy_cache_free(struct proxy_ctx *ctx);
bool proxy_cache_on(const struct proxy_ctx *ctx);
/* The Query (or the Parse or Bind that starts an extended-protocol group)
 * at the head of <c>'s input, about to go to <s> (NULL: <c> has no server
 * yet): look it up. PROXY_CACHE_GO sends it on as usual;
 * DONE answered it from the cache (consumed: go on with what follows);
 * WAIT stops reading <c> until the lookup ends (the callback goes on);
 * CLOSED closed <c>. */
enum { PROXY_CACHE_GO = 0, PROXY_CACHE_DONE, PROXY_CACHE_WAIT, PROXY_CACHE_CLOSED };
int proxy_cache_query(struct proxy_client *c, struct proxy_server *s);
/* A lookup of <c>'s is pending: its input is not read meanwhile. */
bool proxy_cache_waiting(const struct proxy_client *c);
/* relay.c: client message <m> went to the server; ctx->note holds its
 * statements. Collects what it writes. */
void proxy_cache_sent(struct proxy_client *c, const struct proxy_ps_msg *m);
/* backrelay.c: is the reply to <s>'s client being captured for the cache?
 * Then every message is read whole (up to PROXY_INSPECT_MAX) and given to
 * proxy_cache_reply. */
bool proxy_cache_capturing(const struct proxy_server *s);
/* reply.c, session mode: what PostgreSQL answered to a request the cache
 * stamped with <serial> (struct proxy_pending): a Parse accepted (its
 * ParseComplete) or not (failed, or skipped after an error); a Describe's
 * RowDescription or NoData (<body> NULL when not read whole). */
void proxy_cache_parse_settled(struct proxy_client *c, uint64_t serial, bool accepted);
void proxy_cache_described(struct proxy_client *c, uint64_t serial, uint8_t type,
                           const uint8_t *body, size_t len);
/* reply.c, session mode: a reply of <c>'s server fits no request queued:
 * the cache stops trusting what it knows of the client's statements. */
void proxy_cache_unmatched(struct proxy_client *c);
/* A server message (<len> bytes with type and length) relayed to the
 * client of <s>, which has cache state: capture, commit, rollback. */
void proxy_cache_reply(struct proxy_server *s, const uint8_t *msg, size_t len);
/* The next <n> bytes of a message over PROXY_INSPECT_MAX that
 * proxy_cache_reply announced, as they are relayed to the client. */
void proxy_cache_reply_part(struct proxy_server *s, const uint8_t *p, size_t n);
/* client.c: <c> closes (cancel, bump what it may have committed) / is freed. */
void proxy_cache_client_gone(struct proxy_client *c);
void proxy_cache_client_free(struct proxy_client *c);
/* poolmgr.c: the Query at the head of <c>'s input was dropped before a
 * server saw it (a cancel while queued): its lookup or lead ends. */
void proxy_cache_dropped(struct proxy_client *c);
/* poolmgr.c: a cancel for <c> while proxy_cache_waiting(): its Query is
 * answered with query_canceled, as PostgreSQL would. May close <c>. */
void proxy_cache_cancel_wait(struct proxy_client *c);

/* admin_stats.c: SHOW QUERIES / SLOW / CLASSES / NPLUSONE / HEALTH / CACHE and RESET STATS
 * (<cmd> lower-cased, blanks squeezed). False if <cmd> is none of them;
 * may close <c> if it cannot answer. */
bool proxy_admin_stats_command(struct proxy_client *c, const char *cmd);

/* prepared.c */
/* What the tracker tells prepared.c of its entries' replies. */
void proxy_ps_reply_error(struct proxy_server *s, const uint8_t *body, size_t len);
void proxy_ps_reply_skipped(struct proxy_server *s, const struct proxy_pending *h);
void proxy_ps_reply_parsed(struct proxy_server *s, const struct proxy_pending *h);
void proxy_ps_reply_described(struct proxy_server *s, const struct proxy_pending *h, uint8_t type,
                              const uint8_t *body, size_t len);
/* The client Parse of statement <serial> failed or was skipped: its name
 * is not defined (reply.c settles every Parse). */
void proxy_ps_parse_refused(struct proxy_client *c, uint64_t serial);
/*
 * Handle one client message <m> for a tracked server, of which at least
 * min(PROXY_PREFIX_MAX, whole body) bytes are buffered: queues the replies
 * it expects, and may rewrite it (bytes to send appended to <out>). Does
 * nothing when it returns PROXY_PS_MORE. Returns enum proxy_ps_action, or
 * -1 on OOM.
 */
int proxy_ps_client_message(struct proxy_client *c, struct proxy_server *s, struct proxy_ps_msg *m,
                            struct proto_buf *out);
/* The <n> bytes at <p> of the named statement streaming in (c->fill). */
void proxy_ps_fill(struct proxy_client *c, const uint8_t *p, size_t n);
/* Its last byte went by: register its text so other clients can share it. */
void proxy_ps_fill_done(struct proxy_client *c);
/* Size of the statement registry, for SHOW MEM. */
void proxy_ps_registry(const struct proxy_ctx *ctx, size_t *n, size_t *bytes);
/* The shape of a RowDescription body (NULL: NoData): every field but its
 * format code (a Describe of the statement says text, of a portal what the
 * Bind asked), so that prepared.c's check of a statement's rows and the
 * cache's key agree on it; false if malformed. */
bool proxy_row_shape(const uint8_t *body, size_t len, uint64_t *shape);
/* Is a shape check (a client's stalled message) still waiting for its answer? */
bool proxy_ps_checking(const struct proxy_server *s);
/* Append to <b> the ErrorResponse a refused stand-in of <s> stands for:
 * "cached plan must not change", or 42P05 for a duplicate Parse. */
int proxy_ps_put_stale_error(struct proxy_server *s, struct proto_buf *b);
/* At link: true if the server's statements are stale (DDL) and were dropped,
 * so a DEALLOCATE ALL must run. */
bool proxy_ps_on_link(struct proxy_server *s);
int proxy_ps_answer_idle(struct proxy_client *c);
/* A pinned server between transactions: close the statements DDL made
 * stale (hidden). -1 if the server cannot be written to. */
int proxy_ps_refresh(struct proxy_server *s) PROXY_WUR;
void proxy_scram_cache_free(struct proxy_ctx *ctx);
/* Make the SCRAM keys of every plaintext password in ctx->auth that has
 * none yet (auth_type = scram-sha-256), and drop those of users gone.
 * Called when the auth file is loaded and reloaded, never per login. */
void proxy_auth_keys_sync(struct proxy_ctx *ctx);
void proxy_stmts_free(struct proxy_ctx *ctx);
void proxy_client_stmts_free(struct proxy_client *c);
void proxy_server_stmts_free(struct proxy_server *s);
/* Send queued local replies that reached the head; may release the server. */
void proxy_server_emit_fakes(struct proxy_server *s);

/* dns.c: host names resolved with c-ares on the loop, cached briefly */
/* Where <s> connects: a unix socket or numeric address is filled in at
 * once (returns 1); a name found in the cache too (1); otherwise <s> is
 * queued on the lookup (returns 0) and proxy_server_resolved() runs when
 * it ends. -1 with the reason in <err> when it fails at once. */
int proxy_dns_target(struct proxy_server *s, char *err, size_t errlen) PROXY_WUR;
/* Take <s> off a lookup it waits for (it is closing). */
void proxy_dns_forget(struct proxy_server *s);
/* The next address of <s>'s host after the one it failed to connect to:
 * 1 and <s>->addr set, 0 when there is none. */
int proxy_dns_next(struct proxy_server *s);
void proxy_dns_free(struct proxy_ctx *ctx);
/* The cache, for SHOW DNS_HOSTS: <cb> once per answered name with the
 * seconds its answer still holds and its addresses, comma-separated.
 * Returns the names cached; <pending> (if not NULL) gets those resolving. */
typedef void (*proxy_dns_host_cb)(void *arg, const char *host, double ttl_s, const char *addrs);
size_t proxy_dns_hosts(struct proxy_ctx *ctx, proxy_dns_host_cb cb, void *arg, size_t *pending);
/* server.c: the lookup <s> waited for ended; <err> NULL on success (then
 * <s>->addr is set). May close <s>. */
void proxy_server_resolved(struct proxy_server *s, const char *err);

/* http.c: GET /metrics and /health on stats_listen; the health sampler */
#define PROXY_VERSION "0.1.0"
/* Listen on stats_listen (nothing when it is empty) and make the health
 * window. -1 with <err>. */
int proxy_http_start(struct proxy_ctx *ctx, char *err, size_t errlen) PROXY_WUR;
/* Close the listener and every HTTP connection (shutdown). */
void proxy_http_stop(struct proxy_ctx *ctx);
void proxy_http_free(struct proxy_ctx *ctx);
/* Once a second (janitor): take a health sample when one is due. */
void proxy_health_tick(struct proxy_ctx *ctx);
/* The SHOW HEALTH checks now, STATS_HEALTH_NCHECKS into <out>; -1 on OOM. */
int proxy_health_checks(struct proxy_ctx *ctx, struct stats_health_check *out) PROXY_WUR;
/* The /metrics body appended to <b>; -1 on OOM. */
int proxy_metrics_render(struct proxy_ctx *ctx, struct proto_buf *b) PROXY_WUR;

/* admin.c */
/* Is <name> the admin console: admin_db, or "pgbouncer" (always accepted,
 * for tools that have PgBouncer's name hard-coded)? */
bool proxy_is_admin_db(const struct conf *cf, const char *name);
void proxy_admin_welcome(struct proxy_client *c);
/* Is <db_name> paused (PAUSE, SUSPEND) or disabled (DISABLE)? Cheap: no
 * allocation, a flag when nothing is paused. */
bool proxy_admin_paused(const struct proxy_ctx *ctx, const char *db_name);
bool proxy_admin_disabled(const struct proxy_ctx *ctx, const char *db_name);
/* SIGUSR1 / SIGUSR2: pause / resume every database. */
void proxy_admin_pause_all(struct proxy_ctx *ctx, bool pause);
/* main.c: bind and listen (non-blocking, close-on-exec, SO_REUSEADDR, IPv6
 * only on IPv6) on each address <addr> resolves to (the first usable one
 * when <first_only>) into <fds>, which has room for <maxfds>: more is an
 * error. A family the host lacks is skipped. <what> names the setting in
 * messages. 0 with *<nfds> >= 1, or -1 with <err> and nothing left open.
 * Used by the client listeners and stats_listen. */
int proxy_listen_tcp(const char *what, const char *addr, int port, int backlog, int *fds,
                     size_t maxfds, bool first_only, size_t *nfds, char *err,
                     size_t errlen) PROXY_WUR;
/* SIGINT: PgBouncer's safe shutdown. No new transaction starts and no new
 * client is let in; sluice exits once every running transaction (every
 * linked server, so a session-mode client's whole session) has ended. */
void proxy_admin_safe_shutdown(struct proxy_ctx *ctx);
/* Once a second (janitor): the stats_period averages, commands waiting. */
void proxy_admin_tick(struct proxy_ctx *ctx);
void proxy_admin_free(struct proxy_ctx *ctx);
/* admin_views.c: the PgBouncer-compatible SHOW views (<what> is what
 * follows "show ", lower-cased). False if it names none; may close <c>. */
bool proxy_admin_view(struct proxy_client *c, const char *what);
/* Fold the figures of the period just ended into every pool's <avg>. */
void proxy_admin_stats_period(struct proxy_ctx *ctx, double seconds);
/* Handle one message from an admin console client. May close it. */
void proxy_admin_message(struct proxy_client *c, const struct proto_msg *m);

#endif /* SLUICE_PROXY_H */
