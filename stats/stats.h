/*
 * Logging and statement statistics.
 *
 * Logging: one line per event, "2026-01-02 03:04:05.678 UTC [pid] LEVEL msg",
 * to stderr or the configured logfile. The level is checked before any
 * formatting, so a disabled debug line costs one comparison.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "protocol/proto.h"

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG, /* verbose = 1 */
	LOG_LVL_TRACE, /* verbose = 2 */
};

extern enum log_level log_current_level;

/* Send log lines to <path> (append) instead of stderr; NULL = stderr. -1 on error. */
int log_open(const char *path) __attribute__((warn_unused_result));
/* Reopen the current file (after rotation). */
void log_reopen(void);
void log_set_verbose(int verbose);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copy <src> (may be NULL: "-") into <dst> of <n> bytes for a log line:
 * control characters and '\\' become \\xNN, so a name holding a
 * newline cannot forge a line; cut with "..." when it does not fit.
 * Returns <dst>.
 */
const char *log_escape(char *dst, size_t n, const char *src);

#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)                                                                              \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_WARN)                                             \
			log_write(LOG_LVL_WARN, __VA_ARGS__);                                      \
	} while (0)
#define log_info(...)                                                                              \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_INFO)                                             \
			log_write(LOG_LVL_INFO, __VA_ARGS__);                                      \
	} while (0)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_current_level >= LOG_LVL_DEBUG)                                            \
			log_write(LOG_LVL_DEBUG, __VA_ARGS__);                                     \
	} while (0)

/*
 * ---- Statement statistics ----
 *
 * The proxy feeds three narrow hooks and never more: stats_shape_seen() when
 * a statement's text has been scanned (at a Query, or once at a Parse),
 * stats_record() when a reply closes a request, and stats_cache_hit() when
 * the result cache answers one without PostgreSQL. Everything else here is
 * pure bookkeeping: no socket, no event loop. All times are nanoseconds of
 * CLOCK_MONOTONIC unless named otherwise.
 */
enum stats_class {
	STATS_CL_SELECT = 0,
	STATS_CL_INSERT,
	STATS_CL_UPDATE,
	STATS_CL_DELETE,
	STATS_CL_MERGE,
	STATS_CL_COPY,
	STATS_CL_DDL,
	STATS_CL_TCL,     /* begin/commit/rollback/savepoint/prepare transaction */
	STATS_CL_UTILITY, /* set/show/explain/vacuum/analyze/... */
	STATS_CL_OTHER,   /* anything else, or text the parser cannot read */
	STATS_NCLASSES
};

/* "select", "insert", ..., "other". */
const char *stats_class_name(enum stats_class cls);

/* Settings, from the configuration at start and at every reload. */
struct stats_config {
	bool track;                /* track_statements */
	bool memo;                 /* keep the shape memo even when <track> is off (pinning
	                              needs stats_shape_seen's verdicts) */
	bool track_literals;       /* keep one example with its literals per shape */
	uint32_t max_statements;   /* max_tracked_statements: rows kept, <other> rows aside */
	uint32_t slow_ms;          /* slow_query_ms; 0 = no slow-query log */
	uint32_t slow_log_size;    /* slow_query_log_size: entries in SHOW SLOW's ring */
	uint32_t nplus1_threshold; /* nplusone_threshold: repeats that make a burst */
	uint32_t nplus1_window_ms; /* nplusone_window_ms: outside a transaction */
};

/* ---- classify.c: the PostgreSQL parser's verdict on one statement ---- */
#define STATS_MAX_TABLES 16

struct stats_shape_info {
	uint64_t pg_fp;     /* libpg_query's fingerprint, 0 if it could not parse the text */
	uint8_t cls;        /* enum stats_class */
	bool parsed;        /* libpg_query parsed the text */
	bool writes;        /* may change data or schema (DML, COPY FROM, DDL, CALL, DO,
	                       a data-modifying CTE, SELECT INTO, EXPLAIN ANALYZE of a write) */
	bool locking;       /* FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE */
	bool modifying_cte; /* a WITH holding INSERT / UPDATE / DELETE / MERGE */
	bool volatile_fn;   /* calls a function not known to be immutable: now(), random(),
	                       nextval(), current_user, any user-defined function ... */
	bool unknown_fn;    /* calls a function that is not PostgreSQL's own (pg_catalog:
	                       stats/builtin_fns.h), or runs DO or CALL: it may write
	                       tables the parser cannot see (volatile_fn is then set too) */
	bool catalog;       /* reads pg_catalog, information_schema or a pg_* relation */
	bool temp;          /* names a relation in pg_temp */
	bool tables_cut;    /* more tables than STATS_MAX_TABLES: the lists are partial */
	uint32_t session;   /* STATS_SS_*: session state it creates or ends */
	char *set_name;     /* owned: the parameter the first SET statement names, as
	                       PostgreSQL folds it ("timezone" for SET TIME ZONE), or NULL */
	uint64_t obj_hash;  /* the cursor or prepared statement the first DECLARE, CLOSE,
	                       PREPARE or DEALLOCATE names: stats_name_hash of it; 0 = none */
	uint8_t nread, nwritten;
	char *read[STATS_MAX_TABLES];    /* owned: "schema.table" or "table", folded to lower
	                                    case unless quoted; each listed once */
	char *written[STATS_MAX_TABLES]; /* owned: likewise, tables written */
};

/*
 * Session state (stats_shape_info.session): what a statement leaves on its
 * server connection beyond its transaction, so that transaction pooling
 * can keep its client on that server (proxy/pin.c), and what ends it.
 * Bits are a property of the shape: where a literal (which the
 * fingerprint hides) could change the verdict, the statement counts as
 * creating state. Text inside a function or DO body is not seen. Text the
 * parser cannot read is judged by its leading words, erring on "creates".
 */
#define STATS_SS_TEMP           (1u << 0) /* creates a temporary table, view, sequence or function */
#define STATS_SS_ADVISORY       (1u << 1) /* takes a session advisory lock (not the _xact_ ones) */
#define STATS_SS_LISTEN         (1u << 2) /* LISTEN */
#define STATS_SS_SET            (1u << 3) /* SET (not LOCAL) of <set_name>; set_config(.., false) */
#define STATS_SS_CURSOR         (1u << 4) /* DECLARE ... WITH HOLD */
#define STATS_SS_PREPARE        (1u << 5) /* SQL PREPARE */
#define STATS_SS_LOAD           (1u << 6) /* LOAD of a library (cannot be undone) */
#define STATS_SS_ROLE           (1u << 7) /* SET ROLE */
#define STATS_SS_AUTH           (1u << 8) /* SET SESSION AUTHORIZATION */
#define STATS_SS_CREATES        0x1ffu    /* any of the above */
#define STATS_SS_DISCARD_ALL    (1u << 9) /* DISCARD ALL: ends every kind above but LOAD */
#define STATS_SS_DISCARD_TEMP   (1u << 10) /* DISCARD TEMP */
#define STATS_SS_UNLISTEN_ALL   (1u << 11) /* UNLISTEN * */
#define STATS_SS_UNLOCK_ALL     (1u << 12) /* pg_advisory_unlock_all() */
#define STATS_SS_RESET_ALL      (1u << 13) /* RESET ALL (parameters; not role nor authorization) */
#define STATS_SS_RESET_ROLE     (1u << 14) /* RESET ROLE, SET ROLE NONE */
#define STATS_SS_RESET_AUTH     (1u << 15) /* RESET / SET SESSION AUTHORIZATION DEFAULT */
#define STATS_SS_CLOSE          (1u << 16) /* CLOSE of one cursor */
#define STATS_SS_CLOSE_ALL      (1u << 17) /* CLOSE ALL */
#define STATS_SS_DEALLOCATE     (1u << 18) /* DEALLOCATE of one statement */
#define STATS_SS_DEALLOCATE_ALL (1u << 19) /* DEALLOCATE ALL */
#define STATS_SS_ROLLBACK       (1u << 20) /* undoes work: ROLLBACK [TO], ABORT, PREPARE TRANSACTION */
#define STATS_SS_SET_UNNAMED                                                                       \
	(1u << 21) /* with STATS_SS_SET: a parameter <set_name> does not                           \
	              name is set too (set_config(), a second SET) */
#define STATS_SS_SET_RESET                                                                         \
	(1u << 22) /* RESET or SET .. TO DEFAULT of <set_name>: no state (back to the session      \
	              default every client of the pool shares) */
#define STATS_SS_SEQ_READ                                                                          \
	(1u << 23) /* calls currval() or lastval(): reads the session's memory of its last         \
	              nextval() (no state: transaction pooling keeps another client's from it) */
#define STATS_SS_SEQ_SET                                                                           \
	(1u << 24) /* calls nextval() or setval() (a write, through a column default or a          \
	              trigger, or a function not PostgreSQL's own may too: see <writes>) */
#define STATS_SS_MAY_END                                                                           \
	(1u << 25) /* may end temp, advisory or listen state, but not wholly: UNLISTEN of one      \
	              channel, pg_advisory_unlock[_shared](), DROP of a relation or function */
/* DO: its body may make any of the above; which, each text says
 * (stats_code_session), as every DO block has one shape */
#define STATS_SS_CODE (1u << 26)

/*
 * The STATS_SS_* state the code in <len> bytes of a DO statement's text
 * may make (the words that make it, also inside strings; errs towards
 * finding state). Pure, linear, for each DO text (stats/code_session.c).
 */
uint32_t stats_code_session(const char *sql, size_t len);

/*
 * Run libpg_query on <len> bytes of <sql> (one statement) and fill <out>.
 * <kw> (enum proto_sql_kw, from the scanner) classes text the parser cannot
 * read. Returns 0 when parsed, -1 when not (then <out> holds the fallback
 * class and nothing else). Costly (microseconds): once per shape.
 */
int stats_classify(const char *sql, size_t len, uint8_t kw, struct stats_shape_info *out);
/* The hash of a name as obj_hash holds it (never 0). */
uint64_t stats_name_hash(const char *name);
void stats_shape_info_free(struct stats_shape_info *info);

/* ---- hist.c: fixed-memory log-linear latency histogram ---- */
struct stats_hist;

void stats_hist_add(struct stats_hist *h, uint64_t ns);
/* stats_hist_add in two steps, for one value added to several histograms:
 * its bucket, found once, then a count in each. */
unsigned stats_hist_bucket(uint64_t ns);
void stats_hist_add_bucket(struct stats_hist *h, unsigned bucket);
/* <ns> added to <a>, <b> and <c> (each may be NULL) in one call, as a
 * statement's row, class and pool histograms take each statement. */
void stats_hist_add3(struct stats_hist *a, struct stats_hist *b, struct stats_hist *c, uint64_t ns);
/* The <q> quantile (0..1) in ns, within 2 % of the exact value; 0 if empty. */
uint64_t stats_hist_quantile(const struct stats_hist *h, double q);
/* The 0.50, 0.95 and 0.99 quantiles, as stats_hist_quantile gives them, in
 * one walk of the buckets (every view shows the three). */
void stats_hist_p50_p95_p99(const struct stats_hist *h, uint64_t out[3]);
/* How many values were at most <ns> (for Prometheus buckets). */
uint64_t stats_hist_count_le(const struct stats_hist *h, uint64_t ns);
/* stats_hist_count_le for each of <n> ascending bounds <ns>, into <out>,
 * in one walk of the buckets (a scrape asks for many). */
void stats_hist_count_le_many(const struct stats_hist *h, const uint64_t *ns, size_t n,
                              uint64_t *out);
uint64_t stats_hist_count(const struct stats_hist *h);
void stats_hist_merge(struct stats_hist *dst, const struct stats_hist *src);
struct stats_hist *stats_hist_new(void); /* zeroed, NULL on OOM */
void stats_hist_free(struct stats_hist *h);
size_t stats_hist_size(void); /* bytes one takes */

/* ---- stats.c: the tables ---- */
struct stats;        /* owned by the proxy context */
struct stats_scope;  /* one (database, user): a pool's */
struct stats_client; /* one client's N+1 state */

struct stats *stats_new(const struct stats_config *cfg); /* NULL on OOM */
/* New settings (reload); a smaller max_statements folds rows at once. */
void stats_configure(struct stats *st, const struct stats_config *cfg);
void stats_free(struct stats *st);
/* RESET STATS: every row, counter, slow entry and N+1 record goes. */
void stats_reset(struct stats *st);
bool stats_enabled(const struct stats *st);
/* CLOCK_MONOTONIC in ns; inline, as it is read twice per statement */
static inline uint64_t stats_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A (database, user), referenced by its pool; NULL on OOM. */
struct stats_scope *stats_scope_get(struct stats *st, const char *db, const char *user);
void stats_scope_put(struct stats *st, struct stats_scope *sc);

/*
 * Hook 1: a statement was scanned. <s> and <norm> (its normalized text, a
 * NUL-terminated string) come from proto_sql_scan; <src> is the statement's
 * original text (s->src_len bytes), given to the parser the first time
 * the fingerprint is seen, and kept as the example with literals only when
 * track_literals is on. One hash lookup when the shape is known.
 * Returns what the parser said of it, or NULL (tracking and the memo off,
 * or OOM).
 */
const struct stats_shape_info *stats_shape_seen(struct stats *st, const struct proto_sql_stmt *s,
                                                const char *norm, const char *src);
/*
 * A caller's reference to a memoized shape, which the _ref forms of hook 1
 * fill, so that the next statement of that shape needs no lookup. stats/
 * checks it before use: it holds while no shape has been freed since it
 * was set (a generation), and a stale one is looked up again and set
 * anew. While its generation stays the same it names the same shape, so
 * the caller may keep what it derived from that shape's info beside it.
 * Zeroed = none.
 */
struct stats_ref {
	const void *sh;
	uint64_t gen;
};
/* stats_shape_seen, setting <ref> (NULL is fine) to the shape. */
const struct stats_shape_info *stats_shape_seen_ref(struct stats *st,
                                                    const struct proto_sql_stmt *s,
                                                    const char *norm, const char *src,
                                                    struct stats_ref *ref);
/* The shape of <fp> if it is known (memoized), else NULL. */
const struct stats_shape_info *stats_shape_find(struct stats *st, uint64_t fp);
/* Hook 1 for a text whose scan is remembered (proto_sql_skeleton): the
 * shape of <fp> as stats_shape_find, keeping <src, len> as its example
 * when track_literals wants one. NULL if the memo no longer knows <fp>:
 * then scan the text and call stats_shape_seen. */
const struct stats_shape_info *stats_shape_again(struct stats *st, uint64_t fp, const char *src,
                                                 size_t len);
/* stats_shape_again by way of <ref> (not NULL) while it holds; sets it
 * anew otherwise, and to zero when <fp> is not known. */
const struct stats_shape_info *stats_shape_again_ref(struct stats *st, uint64_t fp, const char *src,
                                                     size_t len, struct stats_ref *ref);

/* Hook 2: a reply closed a request. */
struct stats_event {
	struct stats_scope *scope;    /* the pool's */
	uint64_t fp;                  /* from the scanner; 0 = text unknown: counted in <other> */
	uint64_t start_ns;            /* its first byte went to the server */
	uint64_t end_ns;              /* the reply that closed it came */
	uint64_t wait_ns;             /* the client waited this long for a server first */
	int64_t rows;                 /* from the CommandComplete tag; -1 if none */
	char sqlstate[6];             /* "" unless an ErrorResponse closed it */
	bool in_tx;                   /* ran inside a transaction block */
	const char *app_name;         /* for the slow log and N+1; may be NULL */
	const char *client_addr;      /* likewise */
	uint32_t server_pid;          /* PostgreSQL's pid of the server that ran it */
	struct stats_client **client; /* the client's N+1 state, made on first use; may be NULL */
};
void stats_record(struct stats *st, const struct stats_event *ev);
/* Hook 3: the result cache answered <fp> for a client of <scope>: the
 * row's cache_hits rises; calls and times do not (nothing ran). */
void stats_cache_hit(struct stats *st, struct stats_scope *scope, uint64_t fp);
/* A client is gone: its N+1 state goes (NULL is fine). */
void stats_client_free(struct stats *st, struct stats_client *cl);

/* ---- read side, for the admin console and /metrics ---- */
struct stats_row_view {
	uint64_t fp, pg_fp;
	const char *db, *user;
	const char *text;    /* normalized; "<other>" for a database's folded rows */
	const char *example; /* with literals (track_literals), or NULL */
	uint8_t cls;
	bool other; /* the <other> row of its database */
	uint64_t calls, errors, rows;
	double total_ms, mean_ms, min_ms, max_ms, stddev_ms;
	double p50_ms, p95_ms, p99_ms;
	double wait_ms; /* total wait */
	uint64_t cache_hits;
	double first_seen, last_seen; /* Unix time, seconds */
	const char *error_classes;    /* "23:2 42:1": SQLSTATE classes and counts, "" if none */
};

enum stats_order {
	STATS_ORDER_TOTAL = 0, /* total time, largest first (the default) */
	STATS_ORDER_CALLS,
	STATS_ORDER_MEAN,
	STATS_ORDER_MAX,
	STATS_ORDER_P95,
	STATS_ORDER_P99,
	STATS_ORDER_ERRORS,
	STATS_ORDER_ROWS,
	STATS_ORDER_WAIT,
};

typedef void (*stats_row_cb)(void *arg, const struct stats_row_view *r);
/* Rows in <order>, at most <limit> (0 = all). Returns how many. */
size_t stats_queries(struct stats *st, enum stats_order order, size_t limit, stats_row_cb cb,
                     void *arg);

struct stats_class_view {
	uint8_t cls;
	uint64_t calls, errors, rows;
	double total_ms, mean_ms, p50_ms, p95_ms, p99_ms;
	const struct stats_hist *hist;
};
typedef void (*stats_class_cb)(void *arg, const struct stats_class_view *v);
void stats_classes(struct stats *st, stats_class_cb cb, void *arg);

/* Per (database, user): the same figures, for /metrics and SHOW STATS. */
struct stats_scope_view {
	const char *db, *user;
	uint64_t calls, errors, rows;
	double total_ms, wait_ms;
	const struct stats_hist *hist;
};
typedef void (*stats_scope_cb)(void *arg, const struct stats_scope_view *v);
void stats_scopes(struct stats *st, stats_scope_cb cb, void *arg);

struct stats_slow_view {
	double at; /* Unix time, seconds, when it ended */
	const char *db, *user, *app_name, *client_addr;
	double wait_ms, exec_ms;
	uint32_t server_pid;
	uint8_t cls;
	uint64_t fp;
	const char *sqlstate; /* "" when it succeeded */
	const char *text;     /* normalized */
};
typedef void (*stats_slow_cb)(void *arg, const struct stats_slow_view *v);
/* Newest first. */
void stats_slow(struct stats *st, stats_slow_cb cb, void *arg);

struct stats_nplus1_view {
	uint64_t fp;
	const char *db, *user, *text;
	uint64_t bursts;  /* times the threshold was reached */
	uint64_t largest; /* most repeats in one burst */
	double last_at;   /* Unix time of the latest burst */
	const char *last_app, *last_addr;
	uint64_t prev_fp;      /* the statement run just before the latest burst (the "1") */
	const char *prev_text; /* its normalized text, or "" */
};
typedef void (*stats_nplus1_cb)(void *arg, const struct stats_nplus1_view *v);
void stats_nplus1(struct stats *st, stats_nplus1_cb cb, void *arg);

/* Bytes held by the tables (SHOW MEM). */
size_t stats_mem(const struct stats *st);

/*
 * ---- health.c: the SHOW HEALTH / GET /health checks ----
 *
 * Pure: the proxy hands in what it sees (its pools, as plain figures) and
 * the statement statistics; health.c compares them with the thresholds.
 * Rates and the p95 are "recent": the difference between now and a
 * sample taken about a minute ago (struct stats_health_window, which the
 * proxy feeds every STATS_HEALTH_PERIOD seconds), not since start.
 */
enum stats_health_status {
	STATS_HEALTH_OK = 0,
	STATS_HEALTH_WARN,
	STATS_HEALTH_CRITICAL,
};
const char *stats_health_status_name(enum stats_health_status s); /* "ok", "warn", "critical" */

enum stats_health_check_id {
	STATS_HC_BACKEND = 0, /* PostgreSQL reachable from every pool */
	STATS_HC_POOL,        /* pool saturation: servers in use / pool size, % */
	STATS_HC_WAIT,        /* clients queued for a server: the longest wait, s */
	STATS_HC_ERRORS,      /* statements that failed, % of the recent ones */
	STATS_HC_P95,         /* p95 of the recent statements, ms */
	STATS_HC_SLOW,        /* statements over slow_query_ms, % of the recent ones */
	STATS_HC_CACHE,       /* cache hits, % of the recent lookups */
	STATS_HC_REDIS,       /* Redis reachable (warn only: the cache fails open) */
	STATS_HEALTH_NCHECKS
};
const char *stats_health_check_name(enum stats_health_check_id id); /* "backend_reachable", ... */

/* Thresholds; 0 turns a check's level off. Units as in the names. */
struct stats_health_thresholds {
	double p95_warn_ms, p95_critical_ms; /* default 100 / 500 */
	double pool_warn_pct;                /* default 90 */
	double error_rate_critical_pct;      /* default 1 */
	double slow_rate_warn_pct;           /* default 5 */
	double cache_hit_warn_pct;           /* default 70 (warn below) */
	double wait_warn_s, wait_critical_s; /* default 1 / half of query_wait_timeout */
	uint32_t slow_ms;                    /* slow_query_ms: what "slow" means */
};

/* One pool as the proxy sees it. */
struct stats_health_pool {
	const char *db, *user;
	uint32_t servers;   /* logged in (idle or in use) */
	uint32_t in_use;    /* linked to a client or being reset */
	uint32_t pool_size; /* its ceiling */
	uint32_t waiting;   /* clients queued */
	double max_wait_s;  /* how long the first of them has waited */
	bool failing;       /* its last server login failed, recently, and none succeeded since */
	const char *last_error; /* why, or NULL */
};

/* Grid of latency bounds the window keeps counts at (50 µs .. ~50 s). */
#define STATS_HEALTH_GRID   200
#define STATS_HEALTH_RING   7    /* samples kept: the oldest is about a minute old */
#define STATS_HEALTH_PERIOD 10.0 /* seconds between samples */

struct stats_health_sample {
	double at; /* seconds (the caller's clock) */
	uint64_t calls, errors, slow, n;
	uint64_t le[STATS_HEALTH_GRID]; /* statements at most stats_health_grid_ns(i) */
	/* the result cache's totals (the caller fills them after
	 * stats_health_measure; 0 when the cache is off) */
	uint64_t cache_hits, cache_lookups;
};

struct stats_health_window {
	struct stats_health_sample ring[STATS_HEALTH_RING];
	unsigned head, n; /* next slot, samples held */
};

/* The recent figures: now minus the oldest sample (or since start / RESET). */
struct stats_health_recent {
	double span_s;   /* seconds they cover; 0 = since start */
	uint64_t calls;  /* succeeded */
	uint64_t errors; /* failed */
	uint64_t slow;   /* succeeded, over slow_ms */
	bool have_p95;   /* some statement succeeded in the window */
	double p95_ms;   /* upper bound of the grid cell holding the p95 (within 7 %) */
	uint64_t cache_hits, cache_lookups; /* result cache lookups, and those that hit */
	double cache_span_s;                /* seconds the cache figures cover; 0 = since start */
};

uint64_t stats_health_grid_ns(unsigned i);
/* Fill <out> from <all> (every class merged), <calls> and <errors> totals. */
void stats_health_measure(struct stats_health_sample *out, double now, const struct stats_hist *all,
                          uint64_t calls, uint64_t errors, uint32_t slow_ms);
/* Keep <cur> as a sample (call every STATS_HEALTH_PERIOD seconds). */
void stats_health_window_push(struct stats_health_window *w, const struct stats_health_sample *cur);
/* <cur> against the oldest sample; counters that went back (RESET STATS)
 * are measured from zero. */
void stats_health_recent(const struct stats_health_window *w, const struct stats_health_sample *cur,
                         struct stats_health_recent *out);

struct stats_health_input {
	const struct stats_health_pool *pools;
	size_t npools;
	struct stats_health_recent recent;
	bool cache_enabled; /* [cache] enabled: the hit ratio is recent.cache_hits
	                       over recent.cache_lookups */
	bool redis_enabled;
	bool redis_up;
	const char *redis_state; /* what it is doing when not up ("open", ...), or NULL */
};

struct stats_health_check {
	enum stats_health_check_id id;
	enum stats_health_status status;
	bool has_value;
	double value;
	const char *unit;      /* "pools", "%", "s", "ms", "" */
	double warn, critical; /* thresholds that apply (0 = none) */
	bool below;            /* the check fails below its threshold (cache hit ratio) */
	char detail[192];      /* what it saw, which pool */
};

/* Run every check; <out> gets STATS_HEALTH_NCHECKS entries in id order. */
void stats_health_evaluate(const struct stats_health_input *in,
                           const struct stats_health_thresholds *th,
                           struct stats_health_check *out);
/* The worst status of <n> checks. */
enum stats_health_status stats_health_overall(const struct stats_health_check *c, size_t n);
/* /health's body: {"status":..., "checks":[...]} appended to <b>. -1 on OOM. */
int stats_health_json(const struct stats_health_check *c, size_t n, struct proto_buf *b)
        __attribute__((warn_unused_result));

/*
 * ---- metrics.c: /metrics in the Prometheus text format (0.0.4) ----
 *
 * Pure: the proxy gathers its figures into these neutral structs (stats/
 * never sees a proxy struct); the statement families come from <st>
 * itself. O(pools + classes + top statements); nothing is sorted but the
 * top-N statements, which stats_queries bounds.
 */
struct stats_metrics_pool {
	const char *db, *user, *mode;
	uint32_t cl_active, cl_waiting, cl_idle, cl_login;
	uint32_t sv_active, sv_idle, sv_used, sv_tested, sv_login;
	double maxwait_s;
	uint32_t pool_size, min_pool_size;
	/* since start or RESET STATS; times in microseconds (struct pool_stats) */
	uint64_t xact_count, query_count, bytes_recv, bytes_sent;
	uint64_t xact_time_us, query_time_us, wait_time_us;
	uint64_t server_assignments, client_parses, server_parses, client_binds, server_binds;
	uint64_t server_connects, server_failures, wait_timeouts;
};

/* The result cache's figures (cache_get_stats), since start. */
struct stats_metrics_cache {
	bool enabled; /* false: only sluice_cache_enabled 0 is written */
	uint64_t hits, misses, stores, evictions, invalidations, redis_errors;
	uint64_t l1_bytes;       /* held in the in-process L1 now */
	bool redis_up;           /* both connections ready and subscribed */
	uint64_t redis_requests; /* Redis round trips timed */
	double redis_seconds;    /* their summed time */
	/* statements not served from the cache, by reason: <nreasons> names
	 * (cache_reason_name) and counts; a NULL name is skipped */
	const char *const *reason_names;
	const uint64_t *uncacheable;
	size_t nreasons;
	/* invalidation = notify: LISTEN connections configured (0: none, and
	 * the notify families are not written), up now, notifications acted
	 * on, failed attempts and lost connections */
	uint32_t notify_listeners, notify_up;
	uint64_t notify_received, notify_failures;
};

struct stats_metrics_input {
	const char *version;
	const struct stats_metrics_pool *pools;
	size_t npools;
	uint32_t clients, servers, logins; /* connected now */
	uint32_t max_client_conn;
	double uptime_s;
	uint64_t accepted, login_failures, cancels, login_refused;
	/* memory, bytes, as SHOW MEM counts it */
	uint64_t mem_buffers, mem_slabs, mem_statistics, mem_prepared;
	uint64_t http_requests, http_refused;
	const struct stats_health_check *health; /* STATS_HEALTH_NCHECKS, or NULL */
	uint32_t top_statements;                 /* metrics_top_statements */
	bool pgbouncer_names;                    /* also the pgbouncer_* families */
	struct stats_metrics_cache cache;
};

/* Append the exposition to <b>. -1 on OOM (then <b> holds a part). */
int stats_metrics_render(struct stats *st, const struct stats_metrics_input *in,
                         struct proto_buf *b) __attribute__((warn_unused_result));
/* Append <v> to <b> escaped as a label value (\\, \", \n). -1 on OOM. */
int stats_metrics_label(struct proto_buf *b, const char *v) __attribute__((warn_unused_result));

#endif /* SLUICE_STATS_H */
