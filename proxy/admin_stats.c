/*
 * The admin console's statement views: SHOW QUERIES, SLOW, CLASSES,
 * NPLUSONE, HEALTH and CACHE, and RESET STATS. The figures come from stats/ through its read
 * side; this file only lays them out, with typed columns (int8 counts,
 * float8 milliseconds, timestamptz times) so that drivers get numbers.
 */
#include "proxy/admin_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "stats/stats.h"

#define I8 PROTO_OID_INT8
#define I4 PROTO_OID_INT4
#define F8 PROTO_OID_FLOAT8
#define TX PROTO_OID_TEXT
#define TS PROTO_OID_TIMESTAMPTZ

/* <v> as decimal digits ending at <end>; returns where they start. */
static char *digits_back(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

/* <v> (<w> digits, zero-padded) at <p>; returns the byte after them. */
static char *digits_fixed(char *p, unsigned v, int w)
{
	for (int i = w - 1; i >= 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	return p + w;
}

/*
 * Milliseconds as float8 text with three decimals. A view is many rows of
 * nine such cells, read every few seconds by dashboards: written by hand,
 * not by printf's float conversion, which was most of SHOW QUERIES' cost.
 * The value is rounded to the microsecond once (llround of v * 1000), which
 * can differ from "%.3f" only on an exact tie a float cannot hold anyway.
 */
static void put_ms(struct admin_table *t, double v)
{
	char *out, buf[32], *p;
	bool neg = v < 0;
	uint64_t us;

	if (t->n >= ADMIN_MAX_COLS)
		return;
	out = t->cells[t->n];
	if (!(v > -9e15 && v < 9e15)) { /* NaN, infinities, beyond an exact int64 */
		snprintf(out, sizeof(t->cells[0]), "%.3f", v);
		admin_put_text(t, out);
		return;
	}
	us = (uint64_t)llabs(llround(v * 1000.0));
	p = buf + sizeof(buf);
	*--p = '\0';
	p -= 3;
	digits_fixed(p, (unsigned)(us % 1000), 3);
	*--p = '.';
	p = digits_back(p, us / 1000);
	if (neg && us)
		*--p = '-';
	memcpy(out, p, (size_t)(buf + sizeof(buf) - p));
	admin_put_text(t, out);
}

/* A fingerprint as 16 hex digits; NULL for 0. */
static void put_fp(struct admin_table *t, uint64_t fp)
{
	static const char hex[] = "0123456789abcdef";
	char *out;

	if (t->n >= ADMIN_MAX_COLS)
		return;
	if (!fp) {
		admin_put_text(t, NULL);
		return;
	}
	out = t->cells[t->n];
	for (int i = 15; i >= 0; i--, fp >>= 4)
		out[i] = hex[fp & 15];
	out[16] = '\0';
	admin_put_text(t, out);
}

/* Unix seconds as timestamptz text (these views are typed, unlike
 * PgBouncer's text times); NULL for 0. By hand, as put_ms. */
static void put_ts(struct admin_table *t, double at)
{
	time_t tt = (time_t)at;
	struct tm tm;
	char *p;
	long us;

	if (t->n >= ADMIN_MAX_COLS)
		return;
	if (at <= 0 || !gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999) {
		admin_put_text(t, NULL);
		return;
	}
	us = (long)((at - (double)tt) * 1e6);
	if (us < 0 || us > 999999)
		us = 0;
	p = t->cells[t->n];
	p = digits_fixed(p, (unsigned)(tm.tm_year + 1900), 4);
	*p++ = '-';
	p = digits_fixed(p, (unsigned)(tm.tm_mon + 1), 2);
	*p++ = '-';
	p = digits_fixed(p, (unsigned)tm.tm_mday, 2);
	*p++ = ' ';
	p = digits_fixed(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = digits_fixed(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = digits_fixed(p, (unsigned)tm.tm_sec, 2);
	*p++ = '.';
	p = digits_fixed(p, (unsigned)us, 6);
	memcpy(p, "+00", 4);
	admin_put_text(t, t->cells[t->n]);
}

/* Answer one view: <fill> puts its rows. May close <c> if it cannot. */
static void show(struct proxy_client *c, const struct admin_col *cols, size_t ncols,
                 void (*fill)(struct proxy_client *c, struct admin_table *t, const void *arg),
                 const void *arg)
{
	struct admin_table *t = malloc(sizeof(*t));

	if (!t) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	admin_tbl_begin(t, cols, ncols);
	fill(c, t, arg);
	admin_tbl_end(c, t, "SHOW");
	free(t);
}

#define SHOW(c, cols, fill, arg) show(c, cols, sizeof(cols) / sizeof((cols)[0]), fill, arg)

/* ---- SHOW QUERIES [ORDER BY col] [LIMIT n] ---- */

static void query_row(void *arg, const struct stats_row_view *v)
{
	struct admin_table *t = arg;

	put_fp(t, v->fp);
	put_fp(t, v->pg_fp);
	admin_put_text(t, v->db);
	admin_put_text(t, v->user);
	admin_put_text(t, stats_class_name((enum stats_class)v->cls));
	admin_put_u64(t, v->calls);
	admin_put_u64(t, v->errors);
	admin_put_u64(t, v->rows);
	put_ms(t, v->total_ms);
	put_ms(t, v->mean_ms);
	put_ms(t, v->min_ms);
	put_ms(t, v->max_ms);
	put_ms(t, v->stddev_ms);
	put_ms(t, v->p50_ms);
	put_ms(t, v->p95_ms);
	put_ms(t, v->p99_ms);
	put_ms(t, v->wait_ms);
	admin_put_u64(t, v->cache_hits);
	put_ts(t, v->first_seen);
	put_ts(t, v->last_seen);
	admin_put_text(t, v->error_classes);
	admin_put_text(t, v->text);
	admin_put_text(t, v->example);
	admin_tbl_row(t);
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

struct queries_arg {
	enum stats_order order;
	size_t limit;
};

static void fill_queries(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	const struct queries_arg *q = arg;

	stats_queries(c->ctx->stats, q->order, q->limit, query_row, t);
}

static void show_queries(struct proxy_client *c, const char *tail)
{
	static const struct admin_col cols[] = {
	        {"fingerprint", TX}, {"pg_fingerprint", TX}, {"database", TX},
	        {"user", TX},        {"class", TX},          {"calls", I8},
	        {"errors", I8},      {"rows", I8},           {"total_ms", F8},
	        {"mean_ms", F8},     {"min_ms", F8},         {"max_ms", F8},
	        {"stddev_ms", F8},   {"p50_ms", F8},         {"p95_ms", F8},
	        {"p99_ms", F8},      {"wait_ms", F8},        {"cache_hits", I8},
	        {"first_seen", TS},  {"last_seen", TS},      {"error_classes", TX},
	        {"query", TX},       {"example", TX}};
	struct queries_arg q = {STATS_ORDER_TOTAL, 0};

	if (!parse_tail(tail, &q.order, &q.limit)) {
		proxy_client_fail_hint(
		        c, PROXY_ERR_ADMIN_SYNTAX,
		        "SHOW QUERIES [ORDER BY total_ms | calls | mean_ms | max_ms | "
		        "p95_ms | p99_ms | errors | rows | wait_ms] [LIMIT n]",
		        "cannot read SHOW QUERIES%s", tail);
		return;
	}
	SHOW(c, cols, fill_queries, &q);
}

/* ---- SHOW SLOW ---- */

static void slow_row(void *arg, const struct stats_slow_view *v)
{
	struct admin_table *t = arg;

	put_ts(t, v->at);
	admin_put_text(t, v->db);
	admin_put_text(t, v->user);
	admin_put_text(t, v->app_name);
	admin_put_text(t, v->client_addr);
	put_ms(t, v->wait_ms);
	put_ms(t, v->exec_ms);
	admin_put_u64(t, v->server_pid);
	admin_put_text(t, stats_class_name((enum stats_class)v->cls));
	put_fp(t, v->fp);
	admin_put_text(t, v->sqlstate && *v->sqlstate ? v->sqlstate : NULL);
	admin_put_text(t, v->text);
	admin_tbl_row(t);
}

static void fill_slow(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	(void)arg;
	stats_slow(c->ctx->stats, slow_row, t);
}

static void show_slow(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"at", TS},          {"database", TX},
	                                        {"user", TX},        {"application_name", TX},
	                                        {"client_addr", TX}, {"wait_ms", F8},
	                                        {"exec_ms", F8},     {"server_pid", I4},
	                                        {"class", TX},       {"fingerprint", TX},
	                                        {"sqlstate", TX},    {"query", TX}};

	SHOW(c, cols, fill_slow, NULL);
}

/* ---- SHOW CLASSES ---- */

static void class_row(void *arg, const struct stats_class_view *v)
{
	struct admin_table *t = arg;

	admin_put_text(t, stats_class_name((enum stats_class)v->cls));
	admin_put_u64(t, v->calls);
	admin_put_u64(t, v->errors);
	admin_put_u64(t, v->rows);
	put_ms(t, v->total_ms);
	put_ms(t, v->mean_ms);
	put_ms(t, v->p50_ms);
	put_ms(t, v->p95_ms);
	put_ms(t, v->p99_ms);
	admin_tbl_row(t);
}

static void fill_classes(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	(void)arg;
	stats_classes(c->ctx->stats, class_row, t);
}

static void show_classes(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"class", TX},  {"calls", I8},    {"errors", I8},
	                                        {"rows", I8},   {"total_ms", F8}, {"mean_ms", F8},
	                                        {"p50_ms", F8}, {"p95_ms", F8},   {"p99_ms", F8}};

	SHOW(c, cols, fill_classes, NULL);
}

/* ---- SHOW NPLUSONE ---- */

static void nplus1_row(void *arg, const struct stats_nplus1_view *v)
{
	struct admin_table *t = arg;

	put_fp(t, v->fp);
	admin_put_text(t, v->db);
	admin_put_text(t, v->user);
	admin_put_u64(t, v->bursts);
	admin_put_u64(t, v->largest);
	put_ts(t, v->last_at);
	admin_put_text(t, v->last_app);
	admin_put_text(t, v->last_addr);
	put_fp(t, v->prev_fp);
	admin_put_text(t, v->prev_text && *v->prev_text ? v->prev_text : NULL);
	admin_put_text(t, v->text);
	admin_tbl_row(t);
}

static void fill_nplus1(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	(void)arg;
	stats_nplus1(c->ctx->stats, nplus1_row, t);
}

static void show_nplus1(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"fingerprint", TX},
	                                        {"database", TX},
	                                        {"user", TX},
	                                        {"bursts", I8},
	                                        {"largest_burst", I8},
	                                        {"last_at", TS},
	                                        {"last_application_name", TX},
	                                        {"last_client_addr", TX},
	                                        {"preceding_fingerprint", TX},
	                                        {"preceding_query", TX},
	                                        {"query", TX}};

	SHOW(c, cols, fill_nplus1, NULL);
}

/* ---- SHOW HEALTH ---- */

static void fill_health(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	const struct stats_health_check *checks = arg;

	(void)c;
	for (size_t i = 0; i < STATS_HEALTH_NCHECKS; i++) {
		const struct stats_health_check *h = &checks[i];

		admin_put_text(t, stats_health_check_name(h->id));
		admin_put_text(t, stats_health_status_name(h->status));
		if (h->has_value)
			put_ms(t, h->value);
		else
			admin_put_text(t, NULL);
		admin_put_text(t, h->unit);
		if (h->warn > 0)
			put_ms(t, h->warn);
		else
			admin_put_text(t, NULL);
		if (h->critical > 0)
			put_ms(t, h->critical);
		else
			admin_put_text(t, NULL);
		admin_put_text(t, h->below ? "below" : "above");
		admin_put_text(t, h->detail);
		admin_tbl_row(t);
	}
}

static void show_health(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"check", TX}, {"status", TX}, {"value", F8},
	                                        {"unit", TX},  {"warn", F8},   {"critical", F8},
	                                        {"fails", TX}, {"detail", TX}};
	struct stats_health_check checks[STATS_HEALTH_NCHECKS];

	if (proxy_health_checks(c->ctx, checks) < 0) {
		proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
		return;
	}
	SHOW(c, cols, fill_health, checks);
}

/* ---- SHOW CACHE ---- */

/* One row: the cache's counters, or zeros and "not enabled" when [cache]
 * is off. "uncacheable" lists "reason=count" for each reason seen, then
 * "too_big=count" for results not stored for their size. */
static void fill_cache(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	struct cache_stats st;
	uint64_t hits;
	char *why;
	size_t o = 0;

	(void)arg;
	if (!c->ctx->cache) {
		admin_put_u64(t, 0);
		admin_put_u64(t, 0);
		admin_put_text(t, NULL); /* no lookup yet: no ratio */
		for (int i = 0; i < 4; i++)
			admin_put_u64(t, 0);
		admin_put_text(t, "");
		admin_put_text(t, "not enabled");
		admin_tbl_row(t);
		return;
	}
	cache_get_stats(c->ctx->cache, &st);
	hits = st.hits_l1 + st.hits_redis;
	admin_put_u64(t, hits);
	admin_put_u64(t, st.misses);
	if (hits + st.misses)
		put_ms(t, (double)hits / (double)(hits + st.misses));
	else
		admin_put_text(t, NULL);
	admin_put_u64(t, st.stores);
	admin_put_u64(t, st.l1.bytes);
	admin_put_u64(t, st.l1.evictions);
	admin_put_u64(t, st.invalidations);
	why = t->n < ADMIN_MAX_COLS ? t->cells[t->n] : NULL;
	if (why) {
		why[0] = 0;
		for (int r = 0; r < CACHE_NREASONS; r++) {
			int n;

			if (!st.uncacheable[r])
				continue;
			n = snprintf(why + o, sizeof(t->cells[0]) - o, "%s%s=%" PRIu64,
			             o ? "," : "", cache_reason_name((enum cache_reason)r),
			             st.uncacheable[r]);
			if (n < 0 || (size_t)n >= sizeof(t->cells[0]) - o)
				break;
			o += (size_t)n;
		}
		/* results not stored for their size, after the reasons not to look up */
		if (st.too_big)
			snprintf(why + o, sizeof(t->cells[0]) - o, "%stoo_big=%" PRIu64,
			         o ? "," : "", st.too_big);
	}
	admin_put_text(t, why ? why : "");
	admin_put_text(t, cache_redis_state_name(st.state));
	admin_tbl_row(t);
}

static void show_cache(struct proxy_client *c)
{
	/* the layout PgBouncer-style scripts were written against: kept */
	static const struct admin_col cols[] = {
	        {"hits", I8},          {"misses", I8},      {"hit_ratio", F8},
	        {"stores", I8},        {"bytes", I8},       {"evictions", I8},
	        {"invalidations", I8}, {"uncacheable", TX}, {"redis", TX}};

	SHOW(c, cols, fill_cache, NULL);
}

static void rule_row(void *arg, const struct cache_rule_view *v)
{
	struct admin_table *t = arg;

	admin_put_text(t, v->kind);
	admin_put_text(t, v->table);
	put_fp(t, v->table ? 0 : v->fp);
	if (v->ttl_s)
		admin_put_u64(t, v->ttl_s);
	else
		admin_put_text(t, NULL);
	admin_tbl_row(t);
}

static void fill_rules(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	(void)arg;
	if (c->ctx->cache_rules)
		cache_rules_each(c->ctx->cache_rules, rule_row, t);
}

static void show_cache_rules(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"kind", TX}, {"table", TX}, {"fingerprint", TX}, {"ttl_s", I8}};

	SHOW(c, cols, fill_rules, NULL);
}

/* ---- SHOW CACHE NOTIFY: the LISTEN connections (invalidation = notify) ---- */

static void notify_row(void *arg, const struct cache_notify_view *v)
{
	struct admin_table *t = arg;

	admin_put_text(t, v->db);
	admin_put_text(t, v->state);
	admin_put_u64(t, v->received);
	admin_put_u64(t, v->failures);
	admin_put_text(t, v->last_error);
	admin_tbl_row(t);
}

/* One row per notify.<db>; none when the cache is off or invalidation =
 * none. */
static void fill_notify(struct proxy_client *c, struct admin_table *t, const void *arg)
{
	(void)arg;
	if (c->ctx->cache)
		cache_notify_each(cache_get_notify(c->ctx->cache), notify_row, t);
}

static void show_cache_notify(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"database", TX},
	                                        {"state", TX},
	                                        {"notifications", I8},
	                                        {"failures", I8},
	                                        {"last_error", TX}};

	SHOW(c, cols, fill_notify, NULL);
}

static void cache_tag(struct proxy_client *c, const char *tag)
{
	struct proto_buf b;

	proto_buf_init(&b);
	(void)proxy_client_send(
	        c, &b,
	        proto_put_command_complete(&b, tag) < 0 || proto_put_rfq(&b, 'I') < 0 ? -1 : 0);
}

/* A fingerprint as SHOW QUERIES prints it: 1 to 16 hex digits, not 0. */
static bool parse_fp(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	for (; *s && *s != ' '; s++, n++) {
		int d = *s >= '0' && *s <= '9'   ? *s - '0'
		        : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
		                                 : -1;

		if (d < 0 || n >= 16)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return n > 0 && v != 0;
}

/* CACHE CLEAR, CACHE INVALIDATE <table>, CACHE ADD <fp> [TTL n], CACHE DROP
 * <fp>: admin_users only. */
static void cache_command(struct proxy_client *c, const char *arg)
{
	struct proxy_ctx *ctx = c->ctx;

	if (!c->admin) {
		proxy_client_fail(c, PROXY_ERR_ADMIN_DENIED,
		                  "permission denied: only admin_users may change the cache");
		return;
	}
	if (!ctx->cache) {
		proxy_client_fail(c, PROXY_ERR_ADMIN_UNSUPPORTED,
		                  "the cache is not enabled (set [cache] enabled = 1 and restart)");
		return;
	}
	if (strcmp(arg, "clear") == 0) {
		cache_clear(ctx->cache);
		cache_tag(c, "CACHE CLEAR");
	} else if (strncmp(arg, "invalidate ", 11) == 0 && arg[11]) {
		/* every database this instance serves: a table is named without one */
		const char *table = arg + 11;
		struct pool *p, *tmp;

		HASH_ITER(hh, ctx->pools.by_key, p, tmp)
		cache_bump(ctx->cache, p->db_name, &table, 1);
		for (size_t i = 0; i < ctx->conf->ndbs; i++)
			cache_bump(ctx->cache, ctx->conf->dbs[i].name, &table, 1);
		cache_tag(c, "CACHE INVALIDATE");
	} else if (strncmp(arg, "add ", 4) == 0 || strncmp(arg, "drop ", 5) == 0) {
		bool add = arg[0] == 'a';
		const char *s = arg + (add ? 4 : 5), *ttl = strstr(s, " ttl ");
		uint64_t fp;
		long t = 0;

		if (!parse_fp(s, &fp) || (!add && strchr(s, ' ')) ||
		    (add && strchr(s, ' ') &&
		     (!ttl || ttl != strchr(s, ' ') || (t = strtol(ttl + 5, NULL, 10)) < 1 ||
		      t > 2592000))) {
			proxy_client_fail(c, PROXY_ERR_ADMIN_SYNTAX,
			                  "CACHE %s expects a statement fingerprint in hex as SHOW "
			                  "QUERIES prints it%s",
			                  add ? "ADD" : "DROP",
			                  add ? ", then optionally TTL <seconds>" : "");
			return;
		}
		if (add) {
			if (cache_rules_add(ctx->cache_rules, fp, (uint32_t)t) < 0) {
				proxy_client_fail(c, PROXY_ERR_OOM, "out of memory");
				return;
			}
			ctx->cache_nrules++;
		} else if (cache_rules_drop(ctx->cache_rules, fp)) {
			ctx->cache_nrules--;
		}
		cache_tag(c, add ? "CACHE ADD" : "CACHE DROP");
	} else {
		proxy_client_fail(
		        c, PROXY_ERR_ADMIN_SYNTAX,
		        "CACHE expects CLEAR, INVALIDATE <table>, ADD <fingerprint> [TTL n] "
		        "or DROP <fingerprint>");
	}
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
	else if (strcmp(cmd, "show cache rules") == 0)
		show_cache_rules(c);
	else if (strcmp(cmd, "show cache notify") == 0)
		show_cache_notify(c);
	else if (strncmp(cmd, "cache ", 6) == 0)
		cache_command(c, cmd + 6);
	else if (strcmp(cmd, "show pins") == 0)
		proxy_pin_show(c);
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
