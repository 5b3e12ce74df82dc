/*
 * The admin console's statement views: SHOW QUERIES, SLOW, CLASSES,
 * NPLUSONE, HEALTH and CACHE, and RESET STATS. The figures come from stats/ through its read
 * side; this file only lays them out, with typed columns (int8 counts,
 * float8 milliseconds, timestamptz times) so that drivers get numbers.
 */
#include "proxy/proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats/stats.h"

#define I8 PROTO_OID_INT8
#define I4 PROTO_OID_INT4
#define F8 PROTO_OID_FLOAT8
#define TX PROTO_OID_TEXT
#define TS PROTO_OID_TIMESTAMPTZ

/* A result set being built; values are formatted into <cells>. */
struct table {
	struct proto_buf b;
	size_t ncols;
	size_t nrows;
	int rc;
	char cells[32][40]; /* numbers of the current row */
	const char *vals[32];
	size_t n; /* values of the current row so far */
};

static void tbl_begin(struct table *t, const char *const *cols, const uint32_t *oids, size_t n)
{
	proto_buf_init(&t->b);
	t->ncols = n;
	t->nrows = 0;
	t->n = 0;
	t->rc = proto_put_row_desc_typed(&t->b, cols, oids, n);
}

static void put_text(struct table *t, const char *v)
{
	if (t->n < 32)
		t->vals[t->n++] = v;
}

static void put_u64(struct table *t, uint64_t v)
{
	if (t->n >= 32)
		return;
	snprintf(t->cells[t->n], sizeof(t->cells[0]), "%" PRIu64, v);
	put_text(t, t->cells[t->n]);
}

static void put_ms(struct table *t, double v)
{
	if (t->n >= 32)
		return;
	snprintf(t->cells[t->n], sizeof(t->cells[0]), "%.3f", v);
	put_text(t, t->cells[t->n]);
}

static void put_fp(struct table *t, uint64_t fp)
{
	if (t->n >= 32)
		return;
	if (!fp) {
		put_text(t, NULL);
		return;
	}
	snprintf(t->cells[t->n], sizeof(t->cells[0]), "%016" PRIx64, fp);
	put_text(t, t->cells[t->n]);
}

/* Unix seconds as timestamptz text; NULL for 0. */
static void put_time(struct table *t, double at)
{
	time_t tt = (time_t)at;
	struct tm tm;
	char *out;

	if (t->n >= 32)
		return;
	if (at <= 0) {
		put_text(t, NULL);
		return;
	}
	out = t->cells[t->n];
	gmtime_r(&tt, &tm);
	strftime(out, sizeof(t->cells[0]), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out + strlen(out), sizeof(t->cells[0]) - strlen(out), ".%06d+00",
	         (int)((at - (double)tt) * 1e6));
	put_text(t, out);
}

static void tbl_row(struct table *t)
{
	if (t->rc == 0)
		t->rc = proto_put_data_row(&t->b, t->vals, t->ncols);
	t->nrows++;
	t->n = 0;
}

/* Send the result; may close <c> if it cannot. */
static void tbl_end(struct proxy_client *c, struct table *t)
{
	if (t->rc == 0)
		t->rc = proto_put_command_complete(&t->b, "SHOW");
	if (t->rc == 0)
		t->rc = proto_put_rfq(&t->b, 'I');
	(void)proxy_client_send(c, &t->b, t->rc);
}

/* ---- SHOW QUERIES [ORDER BY col] [LIMIT n] ---- */

static void query_row(void *arg, const struct stats_row_view *v)
{
	struct table *t = arg;

	put_fp(t, v->fp);
	put_fp(t, v->pg_fp);
	put_text(t, v->db);
	put_text(t, v->user);
	put_text(t, stats_class_name((enum stats_class)v->cls));
	put_u64(t, v->calls);
	put_u64(t, v->errors);
	put_u64(t, v->rows);
	put_ms(t, v->total_ms);
	put_ms(t, v->mean_ms);
	put_ms(t, v->min_ms);
	put_ms(t, v->max_ms);
	put_ms(t, v->stddev_ms);
	put_ms(t, v->p50_ms);
	put_ms(t, v->p95_ms);
	put_ms(t, v->p99_ms);
	put_ms(t, v->wait_ms);
	put_u64(t, v->cache_hits);
	put_time(t, v->first_seen);
	put_time(t, v->last_seen);
	put_text(t, v->error_classes);
	put_text(t, v->text);
	put_text(t, v->example);
	tbl_row(t);
}

static const struct {
	const char *name;
	enum stats_order order;
} orders[] = {
        {"total_ms", STATS_ORDER_TOTAL}, {"total", STATS_ORDER_TOTAL},
        {"calls", STATS_ORDER_CALLS},    {"mean_ms", STATS_ORDER_MEAN},
        {"mean", STATS_ORDER_MEAN},      {"max_ms", STATS_ORDER_MAX},
        {"max", STATS_ORDER_MAX},        {"p95_ms", STATS_ORDER_P95},
        {"p95", STATS_ORDER_P95},        {"p99_ms", STATS_ORDER_P99},
        {"p99", STATS_ORDER_P99},        {"errors", STATS_ORDER_ERRORS},
        {"rows", STATS_ORDER_ROWS},      {"wait_ms", STATS_ORDER_WAIT},
        {"wait", STATS_ORDER_WAIT},
};

/* "[order by <col>] [limit <n>]" after SHOW QUERIES; false if malformed. */
static bool parse_tail(const char *s, enum stats_order *order, size_t *limit)
{
	char col[32];
	int used = 0;

	while (*s == ' ')
		s++;
	if (strncmp(s, "order by ", 9) == 0) {
		bool found = false;

		if (sscanf(s + 9, "%31s%n", col, &used) != 1)
			return false;
		for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++)
			if (strcmp(orders[i].name, col) == 0) {
				*order = orders[i].order;
				found = true;
			}
		if (!found)
			return false;
		s += 9 + used;
		while (*s == ' ')
			s++;
	}
	if (strncmp(s, "limit ", 6) == 0) {
		char *end;
		unsigned long n = strtoul(s + 6, &end, 10);

		if (end == s + 6 || n > 1000000)
			return false;
		*limit = n;
		s = end;
		while (*s == ' ')
			s++;
	}
	return *s == '\0';
}

static void show_queries(struct proxy_client *c, const char *tail)
{
	static const char *const cols[] = {
	        "fingerprint",   "pg_fingerprint", "database",   "user",       "class",
	        "calls",         "errors",         "rows",       "total_ms",   "mean_ms",
	        "min_ms",        "max_ms",         "stddev_ms",  "p50_ms",     "p95_ms",
	        "p99_ms",        "wait_ms",        "cache_hits", "first_seen", "last_seen",
	        "error_classes", "query",          "example"};
	static const uint32_t oids[] = {TX, TX, TX, TX, TX, I8, I8, I8, F8, F8, F8, F8,
	                                F8, F8, F8, F8, F8, I8, TS, TS, TX, TX, TX};
	enum stats_order order = STATS_ORDER_TOTAL;
	size_t limit = 0;
	struct table *t;

	if (!parse_tail(tail, &order, &limit)) {
		proxy_client_fail_hint(
		        c, PROXY_ERR_ADMIN_SYNTAX,
		        "SHOW QUERIES [ORDER BY total_ms | calls | mean_ms | max_ms | "
		        "p95_ms | p99_ms | errors | rows | wait_ms] [LIMIT n]",
		        "cannot read SHOW QUERIES%s", tail);
		return;
	}
	if (!(t = malloc(sizeof(*t)))) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	stats_queries(c->ctx->stats, order, limit, query_row, t);
	tbl_end(c, t);
	free(t);
}

/* ---- SHOW SLOW ---- */

static void slow_row(void *arg, const struct stats_slow_view *v)
{
	struct table *t = arg;

	put_time(t, v->at);
	put_text(t, v->db);
	put_text(t, v->user);
	put_text(t, v->app_name);
	put_text(t, v->client_addr);
	put_ms(t, v->wait_ms);
	put_ms(t, v->exec_ms);
	put_u64(t, v->server_pid);
	put_text(t, stats_class_name((enum stats_class)v->cls));
	put_fp(t, v->fp);
	put_text(t, v->sqlstate && *v->sqlstate ? v->sqlstate : NULL);
	put_text(t, v->text);
	tbl_row(t);
}

static void show_slow(struct proxy_client *c)
{
	static const char *const cols[] = {
	        "at",      "database",   "user",  "application_name", "client_addr", "wait_ms",
	        "exec_ms", "server_pid", "class", "fingerprint",      "sqlstate",    "query"};
	static const uint32_t oids[] = {TS, TX, TX, TX, TX, F8, F8, I4, TX, TX, TX, TX};
	struct table *t = malloc(sizeof(*t));

	if (!t) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	stats_slow(c->ctx->stats, slow_row, t);
	tbl_end(c, t);
	free(t);
}

/* ---- SHOW CLASSES ---- */

static void class_row(void *arg, const struct stats_class_view *v)
{
	struct table *t = arg;

	put_text(t, stats_class_name((enum stats_class)v->cls));
	put_u64(t, v->calls);
	put_u64(t, v->errors);
	put_u64(t, v->rows);
	put_ms(t, v->total_ms);
	put_ms(t, v->mean_ms);
	put_ms(t, v->p50_ms);
	put_ms(t, v->p95_ms);
	put_ms(t, v->p99_ms);
	tbl_row(t);
}

static void show_classes(struct proxy_client *c)
{
	static const char *const cols[] = {"class",   "calls",  "errors", "rows",  "total_ms",
	                                   "mean_ms", "p50_ms", "p95_ms", "p99_ms"};
	static const uint32_t oids[] = {TX, I8, I8, I8, F8, F8, F8, F8, F8};
	struct table *t = malloc(sizeof(*t));

	if (!t) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	stats_classes(c->ctx->stats, class_row, t);
	tbl_end(c, t);
	free(t);
}

/* ---- SHOW NPLUSONE ---- */

static void nplus1_row(void *arg, const struct stats_nplus1_view *v)
{
	struct table *t = arg;

	put_fp(t, v->fp);
	put_text(t, v->db);
	put_text(t, v->user);
	put_u64(t, v->bursts);
	put_u64(t, v->largest);
	put_time(t, v->last_at);
	put_text(t, v->last_app);
	put_text(t, v->last_addr);
	put_fp(t, v->prev_fp);
	put_text(t, v->prev_text && *v->prev_text ? v->prev_text : NULL);
	put_text(t, v->text);
	tbl_row(t);
}

static void show_nplus1(struct proxy_client *c)
{
	static const char *const cols[] = {"fingerprint",
	                                   "database",
	                                   "user",
	                                   "bursts",
	                                   "largest_burst",
	                                   "last_at",
	                                   "last_application_name",
	                                   "last_client_addr",
	                                   "preceding_fingerprint",
	                                   "preceding_query",
	                                   "query"};
	static const uint32_t oids[] = {TX, TX, TX, I8, I8, TS, TX, TX, TX, TX, TX};
	struct table *t = malloc(sizeof(*t));

	if (!t) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	stats_nplus1(c->ctx->stats, nplus1_row, t);
	tbl_end(c, t);
	free(t);
}

/* ---- SHOW HEALTH ---- */

static void show_health(struct proxy_client *c)
{
	static const char *const cols[] = {"check", "status",   "value", "unit",
	                                   "warn",  "critical", "fails", "detail"};
	static const uint32_t oids[] = {TX, TX, F8, TX, F8, F8, TX, TX};
	struct stats_health_check checks[STATS_HEALTH_NCHECKS];
	struct table *t;

	if (proxy_health_checks(c->ctx, checks) < 0 || !(t = malloc(sizeof(*t)))) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	for (size_t i = 0; i < STATS_HEALTH_NCHECKS; i++) {
		const struct stats_health_check *h = &checks[i];

		put_text(t, stats_health_check_name(h->id));
		put_text(t, stats_health_status_name(h->status));
		if (h->has_value)
			put_ms(t, h->value);
		else
			put_text(t, NULL);
		put_text(t, h->unit);
		if (h->warn > 0)
			put_ms(t, h->warn);
		else
			put_text(t, NULL);
		if (h->critical > 0)
			put_ms(t, h->critical);
		else
			put_text(t, NULL);
		put_text(t, h->below ? "below" : "above");
		put_text(t, h->detail);
		tbl_row(t);
	}
	tbl_end(c, t);
	free(t);
}

/* ---- SHOW CACHE ---- */

/* The cache is not built yet: its one row says so, with the columns it
 * will fill (so scripts can be written against the layout now). */
static void show_cache(struct proxy_client *c)
{
	static const char *const cols[] = {"hits",          "misses",      "hit_ratio",
	                                   "stores",        "bytes",       "evictions",
	                                   "invalidations", "uncacheable", "redis"};
	static const uint32_t oids[] = {I8, I8, F8, I8, I8, I8, I8, TX, TX};
	struct table *t = malloc(sizeof(*t));

	if (!t) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	tbl_begin(t, cols, oids, sizeof(cols) / sizeof(cols[0]));
	put_u64(t, 0);
	put_u64(t, 0);
	put_text(t, NULL); /* no lookup yet: no ratio */
	for (int i = 0; i < 4; i++)
		put_u64(t, 0);
	put_text(t, "");
	put_text(t, "not enabled");
	tbl_row(t);
	tbl_end(c, t);
	free(t);
}

bool proxy_admin_stats_command(struct proxy_client *c, const char *cmd)
{
	if (strncmp(cmd, "show queries", 12) == 0 && (cmd[12] == '\0' || cmd[12] == ' ')) {
		show_queries(c, cmd + 12);
		return true;
	}
	if (strcmp(cmd, "show slow") == 0)
		show_slow(c);
	else if (strcmp(cmd, "show classes") == 0)
		show_classes(c);
	else if (strcmp(cmd, "show nplusone") == 0)
		show_nplus1(c);
	else if (strcmp(cmd, "show health") == 0)
		show_health(c);
	else if (strcmp(cmd, "show cache") == 0)
		show_cache(c);
	else if (strcmp(cmd, "reset stats") == 0) {
		if (!c->admin) {
			proxy_client_fail(
			        c, PROXY_ERR_ADMIN_DENIED,
			        "permission denied: only admin_users may run RESET STATS");
			return true;
		}
		stats_reset(c->ctx->stats);
		{
			struct proto_buf b;

			proto_buf_init(&b);
			(void)proxy_client_send(c, &b,
			                        proto_put_command_complete(&b, "RESET") < 0 ||
			                                        proto_put_rfq(&b, 'I') < 0
			                                ? -1
			                                : 0);
		}
	} else
		return false;
	return true;
}
