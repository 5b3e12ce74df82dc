/*
 * The result cache: which statements may be served from it (decide.c),
 * what identifies a result (key.c), how a stored result is laid out
 * (entry.c), the in-process L1 (l1.c) and the cache object that puts L1,
 * Redis (hiredis' async API on sluice's libev loop) and single flight
 * together (cache.c, redis.c), and the LISTEN connections that turn
 * writes made outside sluice into generation bumps (notify.c).
 *
 * The rule above all: a hit returns only what a direct connection would
 * have returned, except within the TTL for writes made outside every
 * sluice. Redis is untrusted input (a malformed value is a miss) and never
 * in the way: when it is slow or down a lookup says "go to PostgreSQL".
 *
 * ---- How the proxy is meant to call it (integration, proxy/reply.c) ----
 *
 * At startup: cache_new(loop, &conf->cache, ...) then cache_start(). Free
 * with cache_free() after every client is gone.
 *
 * For each statement a client sends (proxy_reply_note(), where the scanner's
 * struct proto_sql_stmt and stats_shape_seen()'s struct stats_shape_info are
 * at hand):
 *   1. cache_decide(rules, default_ttl, stmt, shape, &session, &verdict).
 *      Count the verdict with cache_count(); not cacheable: relay as now.
 *      The session facts are the client's: in_tx from the last
 *      ReadyForQuery status ('T'/'E') or a BEGIN still in the pipeline,
 *      role_changed after SET ROLE / SET SESSION AUTHORIZATION, and so on.
 *   2. Build the key: cache_key_make() for a Query (no parameters), or
 *      cache_key_bind() with the Bind message's body for Parse/Bind/Execute.
 *   3. Fill a struct cache_lookup the client owns (one per client is
 *      enough: a client has at most one lookup outstanding) and call
 *      cache_lookup(). Stop reading the client's input (ev_io_stop on its
 *      rd watcher; later messages stay in its input buffer, so the
 *      pipeline order holds) while the answer is CACHE_PENDING:
 *       - CACHE_HIT: write lk->entry's bytes to the client as a reply of
 *         this request (cache_entry_replay() says which), no server taken.
 *       - CACHE_BYPASS: send the request to PostgreSQL as if uncached.
 *       - CACHE_PENDING: <cb> comes later from the loop with HIT, BYPASS
 *         or CACHE_MISS. Resume reading the client in the callback.
 *       - CACHE_MISS (only through <cb>): this client leads: send the
 *         request to PostgreSQL, feed every reply message of the statement
 *         to cache_capture_msg() as it is relayed (never held back), and
 *         at its end call cache_store() (complete) or cache_abandon().
 *      A client that closes calls cache_lookup_cancel() first.
 *   4. A write that committed (an autocommit write's CommandComplete, or
 *      the COMMIT of a transaction that wrote, from the parser's written[]
 *      tables) calls cache_bump(db, tables). A write whose tables the
 *      parser cannot know (a volatile user function, DO, CALL) calls
 *      cache_bump_db(db). CACHE CLEAR is cache_clear().
 *
 * Callbacks never run inside a cache_* call: they are queued and run from
 * an ev_prepare watcher, so the proxy may call cache_* from them and from
 * anywhere else without re-entrancy.
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_WUR __attribute__((warn_unused_result))

struct ev_loop;
struct conf_cache;
struct proto_sql_stmt;
struct stats_shape_info;

/* ---- decide.c: may this statement be served from the cache? ---- */

enum cache_reason {
	CACHE_OK = 0,          /* cacheable */
	CACHE_NOT_MARKED,      /* no hint, rule or CACHE ADD: not a candidate */
	CACHE_NOCACHE_HINT,    /* sluice:nocache (always wins) */
	CACHE_UNPARSED,        /* the parser could not read it (or no verdict) */
	CACHE_CUT,             /* text or table list cut short: not fully known */
	CACHE_NOT_READ,        /* not SELECT / VALUES / WITH / TABLE */
	CACHE_WRITES,          /* may change data or schema */
	CACHE_MODIFYING_CTE,   /* WITH ... INSERT/UPDATE/DELETE/MERGE */
	CACHE_LOCKING,         /* FOR UPDATE / SHARE ... */
	CACHE_VOLATILE,        /* now(), random(), nextval(), current_user, user functions */
	CACHE_CATALOG,         /* reads a system catalog */
	CACHE_TEMP,            /* names a temporary relation */
	CACHE_IN_TRANSACTION,  /* inside BEGIN ... COMMIT: sees its own writes, snapshot */
	CACHE_ROLE_CHANGED,    /* the session ran SET ROLE / SET SESSION AUTHORIZATION */
	CACHE_SESSION_STATE,   /* a SET that changes results and is not in the key */
	CACHE_MULTI_STATEMENT, /* one of several statements in one Query message */
	CACHE_EXTENDED,        /* Parse/Bind/Execute in a form not served (see cache_hooks.c) */
	CACHE_NREASONS,
};

/* "ok", "not_marked", "nocache_hint", ... (for SHOW CACHE and /metrics). */
const char *cache_reason_name(enum cache_reason r);

/* Facts about the client's session when the statement arrives. */
struct cache_session {
	bool in_tx;         /* in a transaction block (or one begins before it) */
	bool role_changed;  /* SET ROLE / SET SESSION AUTHORIZATION in this session */
	bool state_changed; /* a SET that changes results (other than search_path,
	                       client_encoding, which are in the key) */
	bool multi_stmt;    /* the Query message holds more than one statement */
};

struct cache_verdict {
	enum cache_reason reason; /* CACHE_OK when cacheable */
	uint32_t ttl_s;           /* seconds to keep it, when CACHE_OK */
};

/*
 * Rules that mark statements without a hint: the config's "table.<name>"
 * and "query.<fingerprint>" and a runtime set from CACHE ADD / CACHE DROP
 * that a reload keeps. Lookups are hash lookups.
 */
struct cache_rules;

struct cache_rules *cache_rules_new(void); /* NULL on OOM */
void cache_rules_free(struct cache_rules *r);
/* Replace the config rules with <cc>'s; the runtime set stays. -1 on OOM
 * (then <r> keeps its old config rules). */
int cache_rules_load(struct cache_rules *r, const struct conf_cache *cc) CACHE_WUR;
/* CACHE ADD <fp> [TTL n]: <ttl_s> 0 means default_ttl. Replaces an earlier
 * ADD of <fp>. -1 on OOM. */
int cache_rules_add(struct cache_rules *r, uint64_t fp, uint32_t ttl_s) CACHE_WUR;
/* CACHE DROP <fp>: false if no runtime rule had it. */
bool cache_rules_drop(struct cache_rules *r, uint64_t fp);

struct cache_rule_view {
	const char *kind;  /* "table", "query" (config) or "added" (CACHE ADD) */
	const char *table; /* for "table", else NULL */
	uint64_t fp;       /* for "query" and "added" */
	uint32_t ttl_s;    /* 0: default_ttl (CACHE ADD without TTL) */
};
/* SHOW CACHE RULES: config rules in file order, then the added ones. */
void cache_rules_each(const struct cache_rules *r,
                      void (*fn)(void *arg, const struct cache_rule_view *v), void *arg);

/*
 * Decide for one statement. <s> is the scanner's; <shape> the parser's
 * verdict (NULL when tracking gave none); <rules> may be NULL (hints only).
 * A statement is a candidate when it carries sluice:cache (its ttl= or
 * <default_ttl>), when a CACHE ADD or query rule names its fingerprint,
 * or when every table it reads has a table rule (the smallest TTL wins; a
 * rule "t" matches reads of "t" in any schema, "s.t" reads of "s.t", and
 * "public.t" also unqualified reads of "t"). sluice:nocache always wins. A
 * candidate is served only when it is a safe read outside a transaction
 * in a session whose role and settings are the key's. Pure, O(tables).
 * Returns true when cacheable; <out> says why not, or the TTL.
 */
bool cache_decide(const struct cache_rules *rules, uint32_t default_ttl,
                  const struct proto_sql_stmt *s, const struct stats_shape_info *shape,
                  const struct cache_session *sess, struct cache_verdict *out);

/* ---- key.c: what identifies a result ---- */

struct cache_key {
	uint64_t hi, lo; /* XXH3-128 */
};

/*
 * Everything a result depends on besides the data. Strings are
 * NUL-terminated; NULL hashes as "not given", unlike "". Each field is
 * hashed with its length (and each array with its count) so no two inputs
 * meet by concatenation.
 */
struct cache_key_input {
	const char *db;              /* the client's database name */
	const char *role;            /* the role the statement runs as */
	const char *text;            /* normalized statement text */
	size_t text_len;             /* its bytes */
	const char *search_path;     /* the session's, as PostgreSQL reported it */
	const char *client_encoding; /* likewise */
	/* the other session settings that shape a result's bytes (DateStyle,
	 * TimeZone, ...), as opaque bytes the caller lays out; NULL = none */
	const char *settings;
	size_t settings_len;
	uint16_t nparams;
	const uint8_t *const *param_val; /* nparams values (NULL entries for SQL NULL) */
	const int32_t *param_len;        /* nparams lengths; -1 = SQL NULL */
	uint16_t nparam_fmt;             /* Bind's parameter format codes */
	const int16_t *param_fmt;
	uint16_t nresult_fmt; /* Bind's result format codes (0 = all text, as Query) */
	const int16_t *result_fmt;
	/* the extended protocol: a reply to Parse/Bind/Execute never answers a
	 * Query, nor one to another parameter typing or another Describe */
	bool extended;
	const uint8_t *param_types; /* Parse's int16 count and int32 OIDs, as on the wire */
	size_t param_types_len;
	bool describe;  /* a Describe of the portal asks for a RowDescription */
	bool has_shape; /* the client was told the named statement's shape: */
	uint64_t shape; /* its rows must have that one (proxy/stmt.h) */
};

void cache_key_make(const struct cache_key_input *in, struct cache_key *out);
/*
 * The same key from a Bind message: <in> gives db, role, text, search_path
 * and client_encoding (its parameter fields are ignored); <bind> is the
 * Bind body after the portal and statement names (format codes,
 * parameters, result format codes) in the wire format, <len> bytes. Equal
 * to cache_key_make() of the same values. -1 if <bind> is malformed.
 */
int cache_key_bind(const struct cache_key_input *in, const uint8_t *bind, size_t len,
                   struct cache_key *out) CACHE_WUR;

/* "sluice:e:" and 32 hex digits, NUL-terminated: the Redis key. */
#define CACHE_KEY_STR_LEN 41
void cache_key_str(const struct cache_key *k, char out[CACHE_KEY_STR_LEN + 1]);

/*
 * Generation ids. Every entry depends on the global generation (CACHE
 * CLEAR, Redis restarts), its database's (writes the parser cannot see)
 * and one per table read. A table's id is (database, relation name
 * without its schema): "public.users" and "users" share it, so a write
 * through either name invalidates reads through both, whatever the
 * search_path; two schemas' tables of one name invalidate each other,
 * which costs hits, never correctness.
 */
uint64_t cache_gen_global(void);
uint64_t cache_gen_db(const char *db);
uint64_t cache_gen_table(const char *db, const char *table);

/* ---- entry.c: a stored result ---- */

#define CACHE_MAX_TABLES 16                     /* = STATS_MAX_TABLES */
#define CACHE_MAX_GENS   (2 + CACHE_MAX_TABLES) /* global, database, tables */

struct cache_gen {
	uint64_t id;  /* cache_gen_* */
	uint64_t val; /* its counter in Redis (0 = never bumped) */
};

/*
 * A decoded entry: a view into the bytes it was decoded from (valid as
 * long as they are). <rowdesc> is the RowDescription message (type byte
 * and length included) or empty when the reply that was stored had none
 * (an Execute without Describe); <body> the DataRow messages and the final
 * CommandComplete, as PostgreSQL sent them.
 */
struct cache_entry {
	struct cache_key key;
	uint64_t created_ms; /* wall clock, ms since the epoch */
	uint32_t ttl_s;
	uint8_t ngens;
	struct cache_gen gens[CACHE_MAX_GENS]; /* as read before the query ran */
	const uint8_t *rowdesc;
	uint32_t rowdesc_len;
	const uint8_t *body;
	uint32_t body_len;
};

/* Bytes cache_entry_encode() writes for <e>. */
size_t cache_entry_size(const struct cache_entry *e);
/* Write <e> into <buf> (cache_entry_size() bytes). */
void cache_entry_encode(const struct cache_entry *e, uint8_t *buf);
/*
 * Read <len> bytes of <v> (from Redis: untrusted). Checks the magic, every
 * length against what remains, that <rowdesc> is one RowDescription and
 * <body> whole DataRow messages ending in one CommandComplete, and nothing
 * after. -1 on anything else; <out> then means nothing.
 */
int cache_entry_decode(const uint8_t *v, size_t len, struct cache_entry *out) CACHE_WUR;

/*
 * Capturing a reply while it streams to the client. Feed each message
 * PostgreSQL sends for the statement (type, whole message with its length
 * word); framing the proxy makes itself (ParseComplete, BindComplete,
 * NoData, ParameterStatus, NotificationResponse) is skipped. Anything that
 * is not a plain result (ErrorResponse, NoticeResponse, EmptyQuery,
 * PortalSuspended, COPY) or passes <max> bytes marks it failed; the buffer
 * is then freed at once.
 */
struct cache_capture {
	uint8_t *buf; /* owned: RowDescription then body */
	size_t len, cap, max;
	uint32_t rowdesc_len;
	bool complete; /* CommandComplete seen */
	bool failed;
	bool too_big;   /* failed because of <max> */
	size_t pending; /* bytes of a streamed DataRow still to come */
};
void cache_capture_init(struct cache_capture *cap, size_t max);
void cache_capture_msg(struct cache_capture *cap, const uint8_t *msg, size_t len);
/* A DataRow too big for the proxy to hold whole while it streams past:
 * its <len> bytes (type and length included) are announced, then arrive
 * in pieces by cache_capture_more as they are relayed. Anything else
 * before its last byte gives up the capture. */
void cache_capture_begin(struct cache_capture *cap, uint8_t type, size_t len);
void cache_capture_more(struct cache_capture *cap, const uint8_t *p, size_t n);
void cache_capture_reset(struct cache_capture *cap); /* frees; ready for reuse */

/* ---- l1.c: the in-process LRU ---- */

struct cache_l1;

struct cache_l1_stats {
	uint64_t hits, misses, stores, evictions, invalidations;
	size_t bytes, entries;
};

/* <max_bytes> bounds the bytes held (entries and their bookkeeping). */
struct cache_l1 *cache_l1_new(size_t max_bytes); /* NULL on OOM */
void cache_l1_free(struct cache_l1 *l1);
/*
 * The entry for <k> if one is held and not expired at <now> (seconds,
 * ev_now()); it becomes the most recently used. The view stays valid
 * until the next cache_l1_* call that may remove entries. O(1), no
 * allocation.
 */
const struct cache_entry *cache_l1_get(struct cache_l1 *l1, const struct cache_key *k, double now);
/*
 * Keep a copy of encoded entry <v> (<len> bytes, decoded as <e>), replacing
 * one of the same key, evicting the least recently used over max_bytes.
 * -1 on OOM or when it alone exceeds max_bytes (nothing kept then).
 */
int cache_l1_put(struct cache_l1 *l1, const struct cache_entry *e, const uint8_t *v,
                 size_t len) CACHE_WUR;
/* Drop every entry that depends on generation <id> (a bump); the count. */
size_t cache_l1_drop_gen(struct cache_l1 *l1, uint64_t id);
void cache_l1_drop_key(struct cache_l1 *l1, const struct cache_key *k);
void cache_l1_flush(struct cache_l1 *l1);
void cache_l1_stats(const struct cache_l1 *l1, struct cache_l1_stats *out);

/* ---- cache.c, redis.c: the cache object ---- */

enum cache_redis_state {
	CACHE_REDIS_CONNECTING = 0, /* connecting or probing: lookups go to PostgreSQL */
	CACHE_REDIS_UP,             /* both connections ready and subscribed */
	CACHE_REDIS_OPEN,           /* circuit open after a failure: wait, then probe */
};
const char *cache_redis_state_name(enum cache_redis_state s);

/* Knobs the ini file does not have (tests shorten them). */
struct cache_opts {
	int breaker_min_ms;        /* first wait with the circuit open; default 500 */
	int breaker_max_ms;        /* the wait doubles up to this; default 5000 */
	int heartbeat_ms;          /* a published ping through the subscription; default 1000 */
	int connect_timeout_ms;    /* a probe that is not up by then fails; default 1000 */
	int notify_backoff_min_ms; /* a LISTEN connection's first retry; default 500 */
	int notify_backoff_max_ms; /* its waits double up to this; default 30000 */
};

/* ---- notify.c: LISTEN/NOTIFY invalidation (invalidation = notify) ---- */

/* The channel sql/sluice_notify.sql's triggers NOTIFY, payload "schema.table". */
#define CACHE_NOTIFY_CHANNEL "sluice_invalidate"

struct cache;
struct cache_notify;

struct cache_notify_view {
	const char *db;         /* the database name clients use */
	const char *state;      /* "up", "connecting", "listening" (LISTEN sent), "waiting" */
	bool up;                /* LISTENing: outside writes are heard */
	uint64_t received;      /* notifications acted on */
	uint64_t failures;      /* attempts that failed and connections lost */
	const char *last_error; /* the last failure since it was up, escaped; NULL if none */
};

struct cache_notify_counts {
	uint32_t listeners, up; /* configured, LISTENing now */
	uint64_t received, failures;
};

/*
 * One LISTEN connection per <cc>->notify entry, on <loop>; each
 * notification is cache_bump() on <c> (borrowed; it owns the result).
 * <opts> may be NULL. NULL on OOM. Nothing connects before
 * cache_notify_start().
 */
struct cache_notify *cache_notify_new(struct ev_loop *loop, struct cache *c,
                                      const struct conf_cache *cc, const struct cache_opts *opts);
void cache_notify_start(struct cache_notify *n);
void cache_notify_free(struct cache_notify *n); /* closes the connections */
void cache_notify_each(const struct cache_notify *n,
                       void (*fn)(void *arg, const struct cache_notify_view *v), void *arg);
void cache_notify_counts(const struct cache_notify *n, struct cache_notify_counts *out);

struct cache_stats {
	uint64_t hits_l1, hits_redis, misses, bypass; /* lookups by outcome */
	uint64_t coalesced; /* lookups that waited on another's (single flight) */
	uint64_t stores, too_big, store_failed;
	uint64_t invalidations; /* generation bumps sent and received */
	uint64_t redis_errors, redis_timeouts, breaker_trips, reconnects;
	uint64_t malformed; /* values or messages from Redis that did not decode */
	uint64_t redis_calls;
	uint64_t inflight;     /* commands sent and not yet answered */
	double redis_ms_total; /* summed round trips of redis_calls */
	uint64_t uncacheable[CACHE_NREASONS];
	struct cache_l1_stats l1;
	enum cache_redis_state state;
	struct cache_notify_counts notify; /* zero when invalidation = none */
};

enum cache_result {
	CACHE_HIT = 0, /* lk->entry is the reply */
	CACHE_BYPASS,  /* go to PostgreSQL; nothing will be stored */
	CACHE_PENDING, /* wait for <cb> */
	CACHE_MISS,    /* (through <cb> only) go to PostgreSQL, then cache_store */
};

struct cache;
struct cache_flight;
struct cache_lookup;

typedef void cache_lookup_cb(struct cache_lookup *lk, enum cache_result r);

/* One lookup; owned by the caller (embed it in the client). */
struct cache_lookup {
	/* in */
	struct cache_key key;
	const char *db;            /* borrowed for the call only */
	const char *const *tables; /* the parser's read[] */
	uint8_t ntables;           /* at most CACHE_MAX_TABLES */
	cache_lookup_cb *cb;
	void *arg;
	/* out: with CACHE_HIT, valid until the callback (or the synchronous
	 * return) is over */
	struct cache_entry entry;
	/* private to cache.c */
	struct cache_flight *flight;
	struct cache_lookup *next, *prev;
	enum cache_result result;
	bool queued, leader;
};

/* NULL with a message in <err> on OOM or a bad address. */
struct cache *cache_new(struct ev_loop *loop, const struct conf_cache *cc,
                        const struct cache_opts *opts, char *err, size_t errlen);
/* Start connecting to Redis; lookups bypass until it is up. */
void cache_start(struct cache *c);
/* Close Redis and free all. Pending lookups are dropped without callbacks:
 * cancel them first. */
void cache_free(struct cache *c);

/* See the integration notes at the top. Never calls <lk->cb> itself. */
enum cache_result cache_lookup(struct cache *c, struct cache_lookup *lk);
/* <lk> is forgotten (a closing client); a leader's waiters go to PostgreSQL. */
void cache_lookup_cancel(struct cache *c, struct cache_lookup *lk);
/*
 * The leader <lk> (told CACHE_MISS) finished: store <cap> if complete,
 * within max_result_bytes and no write invalidated its tables meanwhile;
 * waiters get it as a hit, or go to PostgreSQL. <ttl_s> from the verdict.
 * <cap> is left to the caller (cache_capture_reset).
 */
void cache_store(struct cache *c, struct cache_lookup *lk, const struct cache_capture *cap,
                 uint32_t ttl_s);
/* The leader's statement failed or was not captured: waiters go to PostgreSQL. */
void cache_abandon(struct cache *c, struct cache_lookup *lk);

/* A committed write touched <tables> of <db>: bump their generations in
 * Redis (and publish), drop them from L1 at once. */
void cache_bump(struct cache *c, const char *db, const char *const *tables, size_t n);
void cache_bump_db(struct cache *c, const char *db);
void cache_clear(struct cache *c); /* every entry of every instance */

/* Count a cache_decide() verdict (CACHE_OK and CACHE_NOT_MARKED are not
 * "uncacheable"). */
void cache_count(struct cache *c, enum cache_reason r);
void cache_get_stats(const struct cache *c, struct cache_stats *out);
enum cache_redis_state cache_state(const struct cache *c);
/* The LISTEN connections (invalidation = notify), or NULL. */
const struct cache_notify *cache_get_notify(const struct cache *c);

/* Which messages a hit replays, for the protocol the request used. */
enum cache_replay {
	CACHE_REPLAY_QUERY,    /* Query: RowDescription, body (then the proxy's ReadyForQuery) */
	CACHE_REPLAY_DESCRIBE, /* Bind+Describe(portal)+Execute: RowDescription, body */
	CACHE_REPLAY_EXECUTE,  /* Bind+Execute without Describe: body only */
};
/* False when <e> cannot answer <how> (stored without a RowDescription). */
bool cache_entry_replay(const struct cache_entry *e, enum cache_replay how);

#endif /* SLUICE_CACHE_H */
