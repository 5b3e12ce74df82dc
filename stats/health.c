/*
 * The health checks behind SHOW HEALTH and GET /health.
 *
 * Each check turns figures the proxy hands in into a status (ok, warn,
 * critical), the value it measured and the thresholds it used. The
 * statement-based checks (error rate, p95, slow rate) look at the recent
 * past only: a window of samples, one every STATS_HEALTH_PERIOD seconds,
 * each holding the cumulative counts at a fixed grid of latency bounds;
 * "recent" is now minus the oldest sample, so a bad minute shows at once
 * and a bad hour long ago does not. A sample is ~1.6 KB and costs one
 * walk of the histogram's buckets (stats_hist_count_le_many).
 *
 * Pure: no socket, no clock of its own, no proxy struct.
 */
#include "stats/stats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define GRID_LOW_NS 50000.0 /* 50 µs */
/*
 * Fewer statements than this in the window can make the error-rate and
 * p95 checks warn, not go critical: one failed or slow statement in a
 * quiet minute is no reason for /health to answer 503 and a load balancer
 * to take sluice out.
 */
#define MIN_FOR_CRITICAL 100
#define GRID_RATIO       1.072 /* 200 bounds reach ~51 s */

const char *stats_health_status_name(enum stats_health_status s)
{
	switch (s) {
	case STATS_HEALTH_OK:
		return "ok";
	case STATS_HEALTH_WARN:
		return "warn";
	case STATS_HEALTH_CRITICAL:
		return "critical";
	}
	return "unknown";
}

static const char *const check_names[STATS_HEALTH_NCHECKS] = {
        "backend_reachable", "pool_saturation", "wait_queue",      "error_rate",
        "p95_latency",       "slow_rate",       "cache_hit_ratio", "redis",
};

const char *stats_health_check_name(enum stats_health_check_id id)
{
	return (unsigned)id < STATS_HEALTH_NCHECKS ? check_names[id] : "unknown";
}

/* The grid's bounds, filled once before main() (read-only afterwards). */
static uint64_t grid[STATS_HEALTH_GRID];

__attribute__((constructor)) static void grid_init(void)
{
	for (unsigned i = 0; i < STATS_HEALTH_GRID; i++)
		grid[i] = (uint64_t)(GRID_LOW_NS * pow(GRID_RATIO, (double)i));
}

uint64_t stats_health_grid_ns(unsigned i)
{
	return i < STATS_HEALTH_GRID ? grid[i] : grid[STATS_HEALTH_GRID - 1];
}

void stats_health_measure(struct stats_health_sample *out, double now, const struct stats_hist *all,
                          uint64_t calls, uint64_t errors, uint32_t slow_ms)
{
	memset(out, 0, sizeof(*out));
	out->at = now;
	out->calls = calls;
	out->errors = errors;
	if (!all)
		return;
	out->n = stats_hist_count(all);
	stats_hist_count_le_many(all, grid, STATS_HEALTH_GRID, out->le);
	if (slow_ms) {
		uint64_t below = stats_hist_count_le(all, (uint64_t)slow_ms * 1000000ull - 1);

		out->slow = out->n > below ? out->n - below : 0;
	}
}

void stats_health_window_push(struct stats_health_window *w, const struct stats_health_sample *cur)
{
	w->ring[w->head] = *cur;
	w->head = (w->head + 1) % STATS_HEALTH_RING;
	if (w->n < STATS_HEALTH_RING)
		w->n++;
}

static uint64_t sub(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

void stats_health_recent(const struct stats_health_window *w, const struct stats_health_sample *cur,
                         struct stats_health_recent *out)
{
	static const struct stats_health_sample zero;
	const struct stats_health_sample *base = &zero;
	uint64_t n, rank;

	const struct stats_health_sample *cbase = &zero;

	memset(out, 0, sizeof(*out));
	if (w && w->n > 0) {
		/* the oldest sample still held */
		base = &w->ring[(w->head + STATS_HEALTH_RING - w->n) % STATS_HEALTH_RING];
		/* the cache's counters are not the statements': RESET STATS
		 * leaves them, so they are measured against the same sample
		 * unless they themselves went back */
		if (cur->cache_lookups >= base->cache_lookups &&
		    cur->cache_hits >= base->cache_hits) {
			cbase = base;
			out->cache_span_s = cur->at - base->at;
		}
		/* a RESET STATS since then: the counters start again from zero */
		if (cur->n < base->n || cur->calls < base->calls || cur->errors < base->errors)
			base = &zero;
		else
			out->span_s = cur->at - base->at;
	}
	out->cache_hits = sub(cur->cache_hits, cbase->cache_hits);
	out->cache_lookups = sub(cur->cache_lookups, cbase->cache_lookups);
	out->calls = sub(cur->calls, base->calls);
	out->errors = sub(cur->errors, base->errors);
	out->slow = sub(cur->slow, base->slow);
	n = sub(cur->n, base->n);
	if (n == 0)
		return;
	rank = (uint64_t)ceil(0.95 * (double)n);
	out->have_p95 = true;
	out->p95_ms = (double)stats_health_grid_ns(STATS_HEALTH_GRID - 1) / 1e6;
	for (unsigned i = 0; i < STATS_HEALTH_GRID; i++)
		if (sub(cur->le[i], base->le[i]) >= rank) {
			out->p95_ms = (double)stats_health_grid_ns(i) / 1e6;
			break;
		}
}

/* ok / warn / critical for <v> against thresholds (0 = that level off). */
static enum stats_health_status above(double v, double warn, double critical)
{
	if (critical > 0 && v > critical)
		return STATS_HEALTH_CRITICAL;
	if (warn > 0 && v > warn)
		return STATS_HEALTH_WARN;
	return STATS_HEALTH_OK;
}

static void set(struct stats_health_check *c, enum stats_health_check_id id, const char *unit,
                double warn, double critical)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->unit = unit;
	c->warn = warn;
	c->critical = critical;
}

static void check_backend(const struct stats_health_input *in, struct stats_health_check *c)
{
	size_t down = 0, flaky = 0;
	const struct stats_health_pool *first = NULL;

	set(c, STATS_HC_BACKEND, "pools", 0, 0);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_health_pool *p = &in->pools[i];

		if (!p->failing)
			continue;
		if (p->servers == 0)
			down++;
		else
			flaky++;
		/* name a pool with no server first: that is the one clients feel */
		if (!first || (p->servers == 0 && first->servers > 0))
			first = p;
	}
	c->has_value = true;
	c->value = (double)down;
	if (down)
		c->status = STATS_HEALTH_CRITICAL;
	else if (flaky)
		c->status = STATS_HEALTH_WARN;
	if (first)
		snprintf(c->detail, sizeof(c->detail),
		         "%zu of %zu pools cannot log in to PostgreSQL%s; %s/%s: %s", down + flaky,
		         in->npools, down ? "" : " (servers still open)", first->db, first->user,
		         first->last_error ? first->last_error : "login failed");
	else
		snprintf(c->detail, sizeof(c->detail), "%zu pools, no failed server login",
		         in->npools);
}

static void check_pool(const struct stats_health_input *in,
                       const struct stats_health_thresholds *th, struct stats_health_check *c)
{
	const struct stats_health_pool *worst = NULL;
	double max = 0;

	set(c, STATS_HC_POOL, "%", th->pool_warn_pct, 0);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_health_pool *p = &in->pools[i];
		double pct = p->pool_size ? 100.0 * p->in_use / p->pool_size : 0;

		if (!worst || pct > max) {
			worst = p;
			max = pct;
		}
	}
	c->has_value = true;
	c->value = max;
	c->status = above(max, th->pool_warn_pct, 0);
	if (worst)
		snprintf(c->detail, sizeof(c->detail), "%s/%s: %u of %u servers in use", worst->db,
		         worst->user, worst->in_use, worst->pool_size);
	else
		snprintf(c->detail, sizeof(c->detail), "no pool yet");
}

static void check_wait(const struct stats_health_input *in,
                       const struct stats_health_thresholds *th, struct stats_health_check *c)
{
	const struct stats_health_pool *worst = NULL;
	uint64_t waiting = 0;

	set(c, STATS_HC_WAIT, "s", th->wait_warn_s, th->wait_critical_s);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_health_pool *p = &in->pools[i];

		waiting += p->waiting;
		if (p->waiting && (!worst || p->max_wait_s > worst->max_wait_s))
			worst = p;
	}
	c->has_value = true;
	c->value = worst ? worst->max_wait_s : 0;
	c->status = above(c->value, th->wait_warn_s, th->wait_critical_s);
	if (worst)
		snprintf(c->detail, sizeof(c->detail),
		         "%llu clients waiting for a server; longest %.1f s in %s/%s",
		         (unsigned long long)waiting, worst->max_wait_s, worst->db, worst->user);
	else
		snprintf(c->detail, sizeof(c->detail), "no client waiting for a server");
}

static void span_text(const struct stats_health_recent *r, char *buf, size_t n)
{
	if (r->span_s > 0)
		snprintf(buf, n, "last %.1f s", r->span_s);
	else
		snprintf(buf, n, "since start");
}

static void check_errors(const struct stats_health_input *in,
                         const struct stats_health_thresholds *th, struct stats_health_check *c)
{
	const struct stats_health_recent *r = &in->recent;
	uint64_t all = r->calls + r->errors;
	char span[32];

	set(c, STATS_HC_ERRORS, "%", 0, th->error_rate_critical_pct);
	span_text(r, span, sizeof(span));
	c->has_value = true;
	c->value = all ? 100.0 * (double)r->errors / (double)all : 0;
	c->status = above(c->value, 0, th->error_rate_critical_pct);
	if (c->status == STATS_HEALTH_CRITICAL && all < MIN_FOR_CRITICAL)
		c->status = STATS_HEALTH_WARN;
	snprintf(c->detail, sizeof(c->detail), "%llu of %llu statements failed (%s)%s",
	         (unsigned long long)r->errors, (unsigned long long)all, span,
	         all < MIN_FOR_CRITICAL ? "; too few to be critical" : "");
}

static void check_p95(const struct stats_health_input *in, const struct stats_health_thresholds *th,
                      struct stats_health_check *c)
{
	const struct stats_health_recent *r = &in->recent;
	char span[32];

	set(c, STATS_HC_P95, "ms", th->p95_warn_ms, th->p95_critical_ms);
	span_text(r, span, sizeof(span));
	if (!r->have_p95) {
		snprintf(c->detail, sizeof(c->detail), "no statement completed (%s)", span);
		return;
	}
	c->has_value = true;
	c->value = r->p95_ms;
	c->status = above(r->p95_ms, th->p95_warn_ms, th->p95_critical_ms);
	if (c->status == STATS_HEALTH_CRITICAL && r->calls < MIN_FOR_CRITICAL)
		c->status = STATS_HEALTH_WARN;
	snprintf(c->detail, sizeof(c->detail), "p95 of %llu statements (%s), within 7 %%%s",
	         (unsigned long long)r->calls, span,
	         r->calls < MIN_FOR_CRITICAL ? "; too few to be critical" : "");
}

static void check_slow(const struct stats_health_input *in,
                       const struct stats_health_thresholds *th, struct stats_health_check *c)
{
	const struct stats_health_recent *r = &in->recent;
	char span[32];

	set(c, STATS_HC_SLOW, "%", th->slow_rate_warn_pct, 0);
	span_text(r, span, sizeof(span));
	if (!th->slow_ms) {
		snprintf(c->detail, sizeof(c->detail), "slow_query_ms = 0: no slow threshold");
		return;
	}
	c->has_value = true;
	c->value = r->calls ? 100.0 * (double)r->slow / (double)r->calls : 0;
	c->status = above(c->value, th->slow_rate_warn_pct, 0);
	snprintf(c->detail, sizeof(c->detail), "%llu of %llu statements took %u ms or more (%s)",
	         (unsigned long long)r->slow, (unsigned long long)r->calls, th->slow_ms, span);
}

static void check_cache(const struct stats_health_input *in,
                        const struct stats_health_thresholds *th, struct stats_health_check *c)
{
	const struct stats_health_recent *r = &in->recent;
	char span[32];

	set(c, STATS_HC_CACHE, "%", th->cache_hit_warn_pct, 0);
	c->below = true;
	if (!in->cache_enabled) {
		snprintf(c->detail, sizeof(c->detail), "not enabled");
		return;
	}
	if (r->cache_span_s > 0)
		snprintf(span, sizeof(span), "last %.1f s", r->cache_span_s);
	else
		snprintf(span, sizeof(span), "since start");
	/* no marked read lately is no sign of trouble: nothing to measure */
	if (r->cache_lookups == 0) {
		snprintf(c->detail, sizeof(c->detail), "no cache lookup (%s)", span);
		return;
	}
	c->has_value = true;
	c->value = 100.0 * (double)r->cache_hits / (double)r->cache_lookups;
	if (th->cache_hit_warn_pct > 0 && c->value < th->cache_hit_warn_pct)
		c->status = STATS_HEALTH_WARN;
	snprintf(c->detail, sizeof(c->detail), "%llu of %llu lookups hit (%s)",
	         (unsigned long long)r->cache_hits, (unsigned long long)r->cache_lookups, span);
}

static void check_redis(const struct stats_health_input *in, struct stats_health_check *c)
{
	set(c, STATS_HC_REDIS, "", 0, 0);
	if (!in->redis_enabled) {
		snprintf(c->detail, sizeof(c->detail), "not enabled");
		return;
	}
	/* the cache fails open: Redis down costs hits, never a client error,
	 * so it is never a reason for /health to answer 503 */
	c->has_value = true;
	c->value = in->redis_up ? 1 : 0;
	c->status = in->redis_up ? STATS_HEALTH_OK : STATS_HEALTH_WARN;
	if (in->redis_up)
		snprintf(c->detail, sizeof(c->detail), "connected");
	else
		snprintf(c->detail, sizeof(c->detail),
		         "unreachable (%s): marked reads go to PostgreSQL until it is back",
		         in->redis_state ? in->redis_state : "down");
}

void stats_health_evaluate(const struct stats_health_input *in,
                           const struct stats_health_thresholds *th, struct stats_health_check *out)
{
	check_backend(in, &out[STATS_HC_BACKEND]);
	check_pool(in, th, &out[STATS_HC_POOL]);
	check_wait(in, th, &out[STATS_HC_WAIT]);
	check_errors(in, th, &out[STATS_HC_ERRORS]);
	check_p95(in, th, &out[STATS_HC_P95]);
	check_slow(in, th, &out[STATS_HC_SLOW]);
	check_cache(in, th, &out[STATS_HC_CACHE]);
	check_redis(in, &out[STATS_HC_REDIS]);
}

enum stats_health_status stats_health_overall(const struct stats_health_check *c, size_t n)
{
	enum stats_health_status s = STATS_HEALTH_OK;

	for (size_t i = 0; i < n; i++)
		if (c[i].status > s)
			s = c[i].status;
	return s;
}

/* <s> as a JSON string: quotes, backslashes and control characters escaped. */
static int json_str(struct proto_buf *b, const char *s)
{
	char esc[8];

	if (proto_buf_append(b, "\"", 1) < 0)
		return -1;
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			if (proto_buf_append(b, esc, 2) < 0)
				return -1;
		} else if (ch < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			if (proto_buf_append(b, esc, 6) < 0)
				return -1;
		} else if (proto_buf_append(b, s, 1) < 0)
			return -1;
	}
	return proto_buf_append(b, "\"", 1);
}

static int json_raw(struct proto_buf *b, const char *s)
{
	return proto_buf_append(b, s, strlen(s));
}

/* A number, or null when absent (JSON has no NaN). */
static int json_num(struct proto_buf *b, bool has, double v)
{
	char num[40];

	if (!has || !isfinite(v))
		return json_raw(b, "null");
	snprintf(num, sizeof(num), "%.6g", v);
	return json_raw(b, num);
}

int stats_health_json(const struct stats_health_check *c, size_t n, struct proto_buf *b)
{
	if (json_raw(b, "{\"status\":") < 0 ||
	    json_str(b, stats_health_status_name(stats_health_overall(c, n))) < 0 ||
	    json_raw(b, ",\"checks\":[") < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((i && json_raw(b, ",") < 0) || json_raw(b, "{\"check\":") < 0 ||
		    json_str(b, stats_health_check_name(c[i].id)) < 0 ||
		    json_raw(b, ",\"status\":") < 0 ||
		    json_str(b, stats_health_status_name(c[i].status)) < 0 ||
		    json_raw(b, ",\"value\":") < 0 || json_num(b, c[i].has_value, c[i].value) < 0 ||
		    json_raw(b, ",\"unit\":") < 0 || json_str(b, c[i].unit) < 0 ||
		    json_raw(b, ",\"warn\":") < 0 || json_num(b, c[i].warn > 0, c[i].warn) < 0 ||
		    json_raw(b, ",\"critical\":") < 0 ||
		    json_num(b, c[i].critical > 0, c[i].critical) < 0 ||
		    json_raw(b, c[i].below ? ",\"fails\":\"below\"" : ",\"fails\":\"above\"") < 0 ||
		    json_raw(b, ",\"detail\":") < 0 || json_str(b, c[i].detail) < 0 ||
		    json_raw(b, "}") < 0)
			return -1;
	}
	return json_raw(b, "]}\n");
}
