/*
 * The health checks, pure: every check's status at, below and above its
 * thresholds, thresholds set to 0 turn a level off, the backend check per
 * pool, the recent window (now minus a sample a minute ago, not since
 * start, and RESET STATS starting it from zero), the p95 from the grid
 * within its 7 %, and the /health JSON shape and escaping.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

static struct stats_health_thresholds defaults(void)
{
	struct stats_health_thresholds th = {
	        .p95_warn_ms = 100,
	        .p95_critical_ms = 500,
	        .pool_warn_pct = 90,
	        .error_rate_critical_pct = 1,
	        .slow_rate_warn_pct = 5,
	        .cache_hit_warn_pct = 70,
	        .wait_warn_s = 1,
	        .wait_critical_s = 60,
	        .slow_ms = 100,
	};
	return th;
}

static void eval(const struct stats_health_input *in, struct stats_health_check *out)
{
	struct stats_health_thresholds th = defaults();

	stats_health_evaluate(in, &th, out);
}

static struct stats_health_pool pool(uint32_t servers, uint32_t in_use, uint32_t size)
{
	struct stats_health_pool p = {.db = "app",
	                              .user = "app",
	                              .servers = servers,
	                              .in_use = in_use,
	                              .pool_size = size};
	return p;
}

Test(health, all_ok_when_quiet)
{
	struct stats_health_pool p = pool(2, 0, 50);
	struct stats_health_input in = {.pools = &p, .npools = 1};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	eval(&in, c);
	for (size_t i = 0; i < STATS_HEALTH_NCHECKS; i++) {
		cr_assert_eq(c[i].id, (enum stats_health_check_id)i);
		cr_assert_eq(c[i].status, STATS_HEALTH_OK, "%s", stats_health_check_name(c[i].id));
	}
	cr_assert_eq(stats_health_overall(c, STATS_HEALTH_NCHECKS), STATS_HEALTH_OK);
	/* nothing ran: no p95 to show, and the cache says it is not there */
	cr_assert_not(c[STATS_HC_P95].has_value);
	cr_assert_not(c[STATS_HC_CACHE].has_value);
	cr_assert_str_eq(c[STATS_HC_CACHE].detail, "not enabled");
	cr_assert_str_eq(c[STATS_HC_REDIS].detail, "not enabled");
	cr_assert_eq(c[STATS_HC_CACHE].warn, 70);
	cr_assert(c[STATS_HC_CACHE].below);
}

Test(health, backend_down_is_critical_flaky_is_warn)
{
	struct stats_health_pool p[2] = {pool(2, 0, 50), pool(0, 0, 50)};
	struct stats_health_input in = {.pools = p, .npools = 2};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	p[1].db = "other";
	p[1].failing = true;
	p[1].last_error = "connection refused";
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_BACKEND].status, STATS_HEALTH_CRITICAL);
	cr_assert_eq(c[STATS_HC_BACKEND].value, 1);
	cr_assert(strstr(c[STATS_HC_BACKEND].detail, "other/app: connection refused"), "%s",
	          c[STATS_HC_BACKEND].detail);
	cr_assert_eq(stats_health_overall(c, STATS_HEALTH_NCHECKS), STATS_HEALTH_CRITICAL);

	/* a failed login while servers are still open: warn, not critical */
	p[1].servers = 1;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_BACKEND].status, STATS_HEALTH_WARN);
	cr_assert_eq(c[STATS_HC_BACKEND].value, 0);

	/* no pool without servers is down if none failed */
	p[1].failing = false;
	p[1].servers = 0;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_BACKEND].status, STATS_HEALTH_OK);
}

Test(health, pool_saturation_over_90_percent_warns)
{
	struct stats_health_pool p[2] = {pool(50, 45, 50), pool(10, 1, 10)};
	struct stats_health_input in = {.pools = p, .npools = 2};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	eval(&in, c);
	/* 90 % is not over 90 % */
	cr_assert_eq(c[STATS_HC_POOL].status, STATS_HEALTH_OK);
	cr_assert_float_eq(c[STATS_HC_POOL].value, 90.0, 1e-9);
	p[0].in_use = 46;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_POOL].status, STATS_HEALTH_WARN);
	cr_assert_float_eq(c[STATS_HC_POOL].value, 92.0, 1e-9);
	cr_assert(strstr(c[STATS_HC_POOL].detail, "46 of 50"), "%s", c[STATS_HC_POOL].detail);
}

Test(health, wait_queue_levels)
{
	struct stats_health_pool p = pool(50, 50, 50);
	struct stats_health_input in = {.pools = &p, .npools = 1};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	p.waiting = 3;
	p.max_wait_s = 0.5;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_WAIT].status, STATS_HEALTH_OK);
	p.max_wait_s = 2;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_WAIT].status, STATS_HEALTH_WARN);
	cr_assert(strstr(c[STATS_HC_WAIT].detail, "3 clients waiting"), "%s",
	          c[STATS_HC_WAIT].detail);
	p.max_wait_s = 61;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_WAIT].status, STATS_HEALTH_CRITICAL);
}

Test(health, error_rate_over_1_percent_is_critical)
{
	struct stats_health_input in = {0};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	in.recent.calls = 990;
	in.recent.errors = 10; /* exactly 1 % */
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_ERRORS].status, STATS_HEALTH_OK);
	cr_assert_float_eq(c[STATS_HC_ERRORS].value, 1.0, 1e-9);
	in.recent.errors = 11;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_ERRORS].status, STATS_HEALTH_CRITICAL);
	/* one failure in a quiet minute: a warning, not a 503 */
	in.recent.calls = 20;
	in.recent.errors = 1;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_ERRORS].status, STATS_HEALTH_WARN);
	cr_assert(strstr(c[STATS_HC_ERRORS].detail, "too few"), "%s", c[STATS_HC_ERRORS].detail);
}

Test(health, p95_levels_and_thresholds_off)
{
	struct stats_health_input in = {0};
	struct stats_health_thresholds th = defaults();
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	in.recent.calls = 100;
	in.recent.have_p95 = true;
	in.recent.p95_ms = 100;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_OK);
	in.recent.p95_ms = 101;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_WARN);
	in.recent.p95_ms = 501;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_CRITICAL);
	cr_assert_eq(c[STATS_HC_P95].warn, 100);
	/* a lone slow statement in a quiet minute: a warning only */
	in.recent.calls = 3;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_WARN);
	in.recent.calls = 100;
	cr_assert_eq(c[STATS_HC_P95].critical, 500);
	/* configurable, and 0 turns a level off */
	th.p95_critical_ms = 0;
	stats_health_evaluate(&in, &th, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_WARN);
	th.p95_warn_ms = 1000;
	stats_health_evaluate(&in, &th, c);
	cr_assert_eq(c[STATS_HC_P95].status, STATS_HEALTH_OK);
}

Test(health, slow_rate_and_cache)
{
	struct stats_health_input in = {0};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	in.recent.calls = 100;
	in.recent.slow = 6;
	in.cache_enabled = true;
	in.recent.cache_lookups = 200;
	in.recent.cache_hits = 138;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_SLOW].status, STATS_HEALTH_WARN);
	cr_assert_float_eq(c[STATS_HC_SLOW].value, 6.0, 1e-9);
	cr_assert_eq(c[STATS_HC_CACHE].status, STATS_HEALTH_WARN);
	cr_assert(c[STATS_HC_CACHE].has_value);
	cr_assert_float_eq(c[STATS_HC_CACHE].value, 69.0, 1e-9);
	in.recent.cache_hits = 140;
	in.recent.slow = 5;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_CACHE].status, STATS_HEALTH_OK);
	cr_assert_float_eq(c[STATS_HC_CACHE].value, 70.0, 1e-9);
	cr_assert_eq(c[STATS_HC_SLOW].status, STATS_HEALTH_OK);
}

/* A quiet window (no marked read) has nothing to measure: ok, no value. */
Test(health, cache_without_lookups_is_ok)
{
	struct stats_health_input in = {0};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	in.cache_enabled = true;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_CACHE].status, STATS_HEALTH_OK);
	cr_assert_not(c[STATS_HC_CACHE].has_value);
	cr_assert(strstr(c[STATS_HC_CACHE].detail, "no cache lookup"), "%s",
	          c[STATS_HC_CACHE].detail);
}

/* Redis down is a warning, never critical: the cache fails open. */
Test(health, redis_down_warns)
{
	struct stats_health_input in = {0};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];

	eval(&in, c);
	cr_assert_eq(c[STATS_HC_REDIS].status, STATS_HEALTH_OK);
	cr_assert_str_eq(c[STATS_HC_REDIS].detail, "not enabled");
	in.redis_enabled = true;
	in.redis_up = true;
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_REDIS].status, STATS_HEALTH_OK);
	in.redis_up = false;
	in.redis_state = "connecting";
	eval(&in, c);
	cr_assert_eq(c[STATS_HC_REDIS].status, STATS_HEALTH_WARN);
	cr_assert_eq(stats_health_overall(c, STATS_HEALTH_NCHECKS), STATS_HEALTH_WARN);
	cr_assert(strstr(c[STATS_HC_REDIS].detail, "connecting"), "%s", c[STATS_HC_REDIS].detail);
}

/* ---- the recent window ---- */

static void add_n(struct stats_hist *h, uint64_t ns, int n)
{
	for (int i = 0; i < n; i++)
		stats_hist_add(h, ns);
}

Test(health_window, recent_is_now_minus_the_oldest_sample)
{
	struct stats_health_window *w = calloc(1, sizeof(*w));
	struct stats_health_sample *s = malloc(sizeof(*s));
	struct stats_health_recent r;
	struct stats_hist *h = stats_hist_new();

	cr_assert(w && s && h);
	/* a bad start: 100 statements of 800 ms */
	add_n(h, 800000000ull, 100);
	stats_health_measure(s, 0, h, 100, 0, 100);
	stats_health_recent(w, s, &r);
	cr_assert_eq(r.span_s, 0);
	cr_assert(r.have_p95);
	cr_assert_gt(r.p95_ms, 700);
	cr_assert_eq(r.slow, 100);
	stats_health_window_push(w, s);
	/* then a minute of samples, every 10 s, of 2 ms statements */
	for (int t = 1; t <= 7; t++) {
		add_n(h, 2000000ull, 1000);
		stats_health_measure(s, t * 10.0, h, 100 + 1000ull * t, 0, 100);
		stats_health_window_push(w, s);
	}
	/* the ring dropped the sample at 0: the 800 ms statements are gone */
	add_n(h, 2000000ull, 1000);
	stats_health_measure(s, 80, h, 8100, 5, 100);
	stats_health_recent(w, s, &r);
	cr_assert_float_eq(r.span_s, 70, 1e-9);
	cr_assert_eq(r.calls, 7000);
	cr_assert_eq(r.errors, 5);
	cr_assert_eq(r.slow, 0);
	cr_assert(r.have_p95);
	/* within the grid's 7.2 % above, the histogram's 2 % below */
	cr_assert(r.p95_ms >= 2 * 0.97 && r.p95_ms <= 2 * 1.08, "p95 %f", r.p95_ms);
	/* since start it would have been 800 ms at the 99th percentile, not here */
	cr_assert_gt(stats_hist_quantile(h, 0.995), 700000000ull);
	free(s);
	free(w);
	stats_hist_free(h);
}

Test(health_window, reset_stats_counts_from_zero)
{
	struct stats_health_window *w = calloc(1, sizeof(*w));
	struct stats_health_sample *s = malloc(sizeof(*s));
	struct stats_health_recent r;
	struct stats_hist *h = stats_hist_new();

	cr_assert(w && s && h);
	add_n(h, 1000000ull, 500);
	stats_health_measure(s, 0, h, 500, 50, 100);
	stats_health_window_push(w, s);
	/* RESET STATS: the histogram and counters start again */
	stats_hist_free(h);
	h = stats_hist_new();
	add_n(h, 1000000ull, 20);
	stats_health_measure(s, 5, h, 20, 1, 100);
	stats_health_recent(w, s, &r);
	cr_assert_eq(r.calls, 20);
	cr_assert_eq(r.errors, 1);
	cr_assert_eq(r.span_s, 0);
	free(s);
	free(w);
	stats_hist_free(h);
}

/* Cache lookups are measured over the window like the statements, and
 * RESET STATS (which leaves the cache's counters) does not widen them. */
Test(health_window, cache_hits_over_the_window)
{
	struct stats_health_window *w = calloc(1, sizeof(*w));
	struct stats_health_sample *s = malloc(sizeof(*s));
	struct stats_health_recent r;
	struct stats_hist *h = stats_hist_new();

	cr_assert(w && s && h);
	add_n(h, 1000000ull, 500);
	stats_health_measure(s, 0, h, 500, 0, 100);
	s->cache_lookups = 1000;
	s->cache_hits = 100; /* a cold start: 10 % */
	stats_health_window_push(w, s);
	stats_hist_free(h);
	h = stats_hist_new(); /* RESET STATS */
	add_n(h, 1000000ull, 20);
	stats_health_measure(s, 30, h, 20, 0, 100);
	s->cache_lookups = 1100;
	s->cache_hits = 190; /* 90 of the last 100 */
	stats_health_recent(w, s, &r);
	cr_assert_eq(r.span_s, 0);
	cr_assert_eq(r.cache_lookups, 100);
	cr_assert_eq(r.cache_hits, 90);
	cr_assert_float_eq(r.cache_span_s, 30.0, 1e-9);
	free(s);
	free(w);
	stats_hist_free(h);
}

Test(health_window, grid_is_increasing_and_covers_the_range)
{
	for (unsigned i = 1; i < STATS_HEALTH_GRID; i++)
		cr_assert_gt(stats_health_grid_ns(i), stats_health_grid_ns(i - 1));
	cr_assert_leq(stats_health_grid_ns(0), 50000);
	cr_assert_geq(stats_health_grid_ns(STATS_HEALTH_GRID - 1), 10000000000ull);
}

/* ---- /health JSON ---- */

Test(health_json, shape_and_escaping)
{
	struct stats_health_pool p = pool(0, 0, 50);
	struct stats_health_input in = {.pools = &p, .npools = 1};
	struct stats_health_check c[STATS_HEALTH_NCHECKS];
	struct proto_buf b;
	char *s;

	p.failing = true;
	p.db = "we\"ird\\db\n";
	p.last_error = "connect: refused";
	eval(&in, c);
	proto_buf_init(&b);
	cr_assert_eq(stats_health_json(c, STATS_HEALTH_NCHECKS, &b), 0);
	cr_assert_eq(proto_buf_append(&b, "", 1), 0);
	s = (char *)proto_buf_head(&b);
	{
		static const char head[] =
		        "{\"status\":\"critical\",\"checks\":[{\"check\":"
		        "\"backend_reachable\",\"status\":\"critical\",\"value\":1,";

		cr_assert(strncmp(s, head, sizeof(head) - 1) == 0, "%s", s);
	}
	cr_assert(strstr(s, "we\\\"ird\\\\db\\u000a/app"), "%s", s);
	/* absent values are null, not 0 */
	cr_assert(strstr(s, "{\"check\":\"p95_latency\",\"status\":\"ok\",\"value\":null,"), "%s",
	          s);
	cr_assert(strstr(s, "\"check\":\"cache_hit_ratio\",\"status\":\"ok\",\"value\":null,"
	                    "\"unit\":\"%\",\"warn\":70,\"critical\":null,\"fails\":\"below\","
	                    "\"detail\":\"not enabled\"}"),
	          "%s", s);
	cr_assert_eq(s[strlen(s) - 1], '\n');
	cr_assert_eq(s[strlen(s) - 2], '}');
	proto_buf_free(&b);
}

/* The one-walk batch gives exactly what stats_hist_count_le gives. */
Test(health_window, count_le_many_matches_count_le)
{
	struct stats_hist *h = stats_hist_new();
	uint64_t ns[STATS_HEALTH_GRID + 2], many[STATS_HEALTH_GRID + 2];
	uint64_t x = 12345;

	cr_assert(h);
	for (int i = 0; i < 100000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		stats_hist_add(h, (x >> 33) % 20000000000ull);
	}
	ns[0] = 0;
	for (unsigned i = 0; i < STATS_HEALTH_GRID; i++)
		ns[i + 1] = stats_health_grid_ns(i);
	ns[STATS_HEALTH_GRID + 1] = UINT64_MAX;
	stats_hist_count_le_many(h, ns, STATS_HEALTH_GRID + 2, many);
	for (unsigned i = 0; i < STATS_HEALTH_GRID + 2; i++)
		cr_assert_eq(many[i], stats_hist_count_le(h, ns[i]), "bound %u", i);
	stats_hist_free(h);
}
