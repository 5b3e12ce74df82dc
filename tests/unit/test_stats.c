/*
 * Statement statistics, pure: the shape memo, rows and their bound with
 * the <other> fold, Welford moments, errors by SQLSTATE class, per-class
 * and per-scope counters, reset, tracking off, the slow-query ring and
 * its log line, N+1 bursts, and memory that stays flat under many shapes.
 * Nothing here depends on what the classifier says beyond a class.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"
#include "tests/unit/stats_seen.h"

static struct stats_config cfg_default(void)
{
	struct stats_config c = {
	        .track = true,
	        .track_literals = false,
	        .max_statements = 5000,
	        .slow_ms = 100,
	        .slow_log_size = 1000,
	        .nplus1_threshold = 10,
	        .nplus1_window_ms = 1000,
	};
	return c;
}

struct ev_opts {
	uint64_t at_ns, exec_ns, wait_ns;
	int64_t rows;
	const char *sqlstate;
	bool in_tx;
	struct stats_client **client;
	const char *app;
};

static void rec(struct stats *st, struct stats_scope *sc, uint64_t fp, struct ev_opts o)
{
	struct stats_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.scope = sc;
	ev.fp = fp;
	ev.start_ns = o.at_ns ? o.at_ns : 1000000000ull;
	ev.end_ns = ev.start_ns + o.exec_ns;
	ev.wait_ns = o.wait_ns;
	ev.rows = o.rows;
	if (o.sqlstate)
		snprintf(ev.sqlstate, sizeof(ev.sqlstate), "%s", o.sqlstate);
	ev.in_tx = o.in_tx;
	ev.app_name = o.app ? o.app : "app";
	ev.client_addr = "10.0.0.1:5000";
	ev.server_pid = 4242;
	ev.client = o.client;
	stats_record(st, &ev);
}

/* ---- collecting views ---- */

#define MAXV 8192
struct rows_seen {
	size_t n;
	struct stats_row_view v[MAXV];
	char text[MAXV][64];
	char errs[MAXV][64];
	char user[MAXV][16];
};

static void row_cb(void *arg, const struct stats_row_view *r)
{
	struct rows_seen *rs = arg;

	cr_assert_lt(rs->n, MAXV);
	rs->v[rs->n] = *r;
	snprintf(rs->text[rs->n], 64, "%s", r->text);
	snprintf(rs->errs[rs->n], 64, "%s", r->error_classes);
	snprintf(rs->user[rs->n], 16, "%s", r->user);
	rs->n++;
}

static struct rows_seen *queries(struct stats *st, enum stats_order o)
{
	struct rows_seen *rs = calloc(1, sizeof(*rs));

	cr_assert(rs);
	cr_assert_eq(stats_queries(st, o, 0, row_cb, rs), rs->n);
	return rs;
}

static const struct stats_row_view *find_row(const struct rows_seen *rs, uint64_t fp)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].fp == fp && !rs->v[i].other)
			return &rs->v[i];
	return NULL;
}

#define EV(...) ((struct ev_opts){__VA_ARGS__})

Test(stats, shape_memo_and_row_text)
{
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "alice");
	const struct stats_shape_info *a, *b;
	struct rows_seen *rs;

	a = seen(st, 1, PROTO_KW_SELECT, "select $1");
	cr_assert(a);
	cr_assert_eq(a->cls, STATS_CL_SELECT);
	b = seen(st, 1, PROTO_KW_SELECT, "select $1");
	cr_assert_eq(a, b, "a known shape is the same memo entry");
	cr_assert_eq(stats_shape_find(st, 1), a);
	cr_assert_null(stats_shape_find(st, 2));
	/* recorded before the memo knew it: "<unknown>" until it does */
	rec(st, sc, 2, EV(.exec_ns = 1000000, .rows = 1));
	rec(st, sc, 1, EV(.exec_ns = 1000000, .rows = 3));
	rs = queries(st, STATS_ORDER_TOTAL);
	cr_assert_eq(rs->n, 2);
	cr_assert_str_eq(rs->text[find_row(rs, 2) - rs->v], "<unknown>");
	cr_assert_str_eq(rs->text[find_row(rs, 1) - rs->v], "select $1");
	cr_assert_eq(find_row(rs, 1)->rows, 3);
	cr_assert_str_eq(rs->user[0], "alice");
	free(rs);
	seen(st, 2, PROTO_KW_INSERT, "insert into t values ($1)");
	rs = queries(st, STATS_ORDER_TOTAL);
	cr_assert_str_eq(rs->text[find_row(rs, 2) - rs->v], "insert into t values ($1)");
	cr_assert_eq(find_row(rs, 2)->cls, STATS_CL_INSERT);
	free(rs);
	stats_scope_put(st, sc);
	stats_free(st);
}

Test(stats, text_and_example_caps)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *sc;
	char *big = malloc(5001);
	struct rows_seen *rs;
	const struct stats_row_view *r;

	c.track_literals = true;
	st = stats_new(&c);
	sc = stats_scope_get(st, "db", "u");
	memset(big, 'x', 5000);
	big[5000] = 0;
	memcpy(big, "select ", 7);
	seen(st, 9, PROTO_KW_SELECT, big);
	rec(st, sc, 9, EV(.exec_ns = 1000));
	rs = queries(st, STATS_ORDER_TOTAL);
	r = find_row(rs, 9);
	cr_assert(r);
	cr_assert_eq(strlen(r->text), 2047, "normalized text kept to 2 KB");
	cr_assert(r->example);
	cr_assert_eq(strlen(r->example), 1023, "example kept to 1 KB");
	free(rs);
	/* track_literals off at a reload: no example is kept or shown */
	c.track_literals = false;
	stats_configure(st, &c);
	rs = queries(st, STATS_ORDER_TOTAL);
	cr_assert_null(find_row(rs, 9)->example);
	free(rs);
	free(big);
	stats_scope_put(st, sc);
	stats_free(st);
}

Test(stats, bound_folds_into_other)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *s1, *s2;
	const uint64_t nshapes = 100000;
	uint64_t calls = 0, folded1 = 0, folded2 = 0, live = 0, errors = 0;
	struct rows_seen *rs;
	size_t others = 0, plain = 0;

	c.max_statements = 1000;
	c.slow_ms = 0;
	st = stats_new(&c);
	s1 = stats_scope_get(st, "db1", "u");
	s2 = stats_scope_get(st, "db2", "u");
	for (uint64_t i = 1; i <= nshapes; i++) {
		struct stats_scope *sc = i % 2 ? s1 : s2;
		uint64_t k = 1 + i % 3;
		char text[64];

		snprintf(text, sizeof(text), "select c%llu from t", (unsigned long long)i);
		seen(st, i, PROTO_KW_SELECT, text);
		for (uint64_t j = 0; j < k; j++)
			rec(st, sc, i, EV(.exec_ns = 1000 * i, .rows = 1));
		rec(st, sc, i, EV(.exec_ns = 5, .sqlstate = "23505"));
		calls += k;
		errors++;
		/* the LRU keeps the last 1,000 shapes: every earlier one is folded */
		if (i <= nshapes - c.max_statements) {
			if (i % 2)
				folded1 += k;
			else
				folded2 += k;
		} else {
			live += k;
		}
	}
	rs = queries(st, STATS_ORDER_CALLS);
	{
		uint64_t sum = 0, sum_err = 0;

		for (size_t i = 0; i < rs->n; i++) {
			const struct stats_row_view *r = &rs->v[i];

			sum += r->calls;
			sum_err += r->errors;
			if (r->other) {
				others++;
				cr_assert_str_eq(rs->text[i], "<other>");
				cr_assert_str_eq(rs->user[i], "");
				cr_assert_eq(r->calls,
				             strcmp(r->db, "db1") == 0 ? folded1 : folded2);
				cr_assert_eq(r->rows, r->calls);
			} else {
				plain++;
				cr_assert_gt(r->fp, nshapes - c.max_statements);
			}
		}
		cr_assert_eq(sum, calls, "calls are conserved through folding");
		cr_assert_eq(sum_err, errors);
	}
	cr_assert_eq(plain, c.max_statements);
	cr_assert_eq(others, 2, "one <other> row per database");
	(void)live;
	free(rs);

	/* a smaller bound at reload folds at once, and still conserves */
	c.max_statements = 10;
	stats_configure(st, &c);
	rs = queries(st, STATS_ORDER_TOTAL);
	{
		uint64_t sum = 0;

		for (size_t i = 0; i < rs->n; i++)
			sum += rs->v[i].calls;
		cr_assert_eq(rs->n, 12);
		cr_assert_eq(sum, calls);
	}
	free(rs);
	stats_scope_put(st, s1);
	stats_scope_put(st, s2);
	stats_free(st);
}

static uint64_t rng_state = 5;

static uint64_t rnd(void)
{
	/* splitmix64, fixed seed */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void moments(const double *x, size_t n, double *mean, double *sd)
{
	double s = 0, q = 0;

	for (size_t i = 0; i < n; i++)
		s += x[i];
	*mean = s / (double)n;
	for (size_t i = 0; i < n; i++)
		q += (x[i] - *mean) * (x[i] - *mean);
	*sd = sqrt(q / (double)n);
}

static bool close_to(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fmax(1, fabs(b));
}

Test(stats, welford_exact_and_merged)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *sc;
	double xa[1000], xb[700], all[1700], mean, sd, mn = 1e300, mx = 0, tot = 0;
	struct rows_seen *rs;
	const struct stats_row_view *r = NULL;

	c.max_statements = 1;
	c.slow_ms = 0;
	st = stats_new(&c);
	sc = stats_scope_get(st, "db", "u");
	for (int i = 0; i < 1000; i++) {
		uint64_t ns = 1000 + rnd() % 5000000;

		xa[i] = all[i] = (double)ns / 1e6;
		rec(st, sc, 100, EV(.exec_ns = ns));
	}
	rs = queries(st, STATS_ORDER_TOTAL);
	r = find_row(rs, 100);
	cr_assert(r);
	moments(xa, 1000, &mean, &sd);
	cr_assert(close_to(r->mean_ms, mean), "mean %.12f vs %.12f", r->mean_ms, mean);
	cr_assert(close_to(r->stddev_ms, sd), "stddev %.12f vs %.12f", r->stddev_ms, sd);
	free(rs);
	for (int i = 0; i < 700; i++) {
		uint64_t ns = 20000000 + rnd() % 1000000;

		xb[i] = all[1000 + i] = (double)ns / 1e6;
		rec(st, sc, 200, EV(.exec_ns = ns)); /* folds 100 into <other> */
	}
	rec(st, sc, 300, EV(.exec_ns = 1)); /* folds 200 */
	rs = queries(st, STATS_ORDER_TOTAL);
	r = NULL;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->v[i].other)
			r = &rs->v[i];
	cr_assert(r);
	for (int i = 0; i < 1700; i++) {
		mn = fmin(mn, all[i]);
		mx = fmax(mx, all[i]);
		tot += all[i];
	}
	moments(all, 1700, &mean, &sd);
	cr_assert_eq(r->calls, 1700);
	cr_assert(close_to(r->mean_ms, mean), "merged mean %.12f vs %.12f", r->mean_ms, mean);
	cr_assert(close_to(r->stddev_ms, sd), "merged stddev %.12f vs %.12f", r->stddev_ms, sd);
	cr_assert(close_to(r->min_ms, mn));
	cr_assert(close_to(r->max_ms, mx));
	cr_assert(close_to(r->total_ms, tot));
	/* the merged histogram's median lies in the first group (1,000 of 1,700) */
	cr_assert_lt(r->p50_ms, 5.2);
	cr_assert_gt(r->p99_ms, 19.0);
	(void)xb;
	free(rs);
	stats_scope_put(st, sc);
	stats_free(st);
}

Test(stats, errors_by_class)
{
	static const char *const states[] = {"23505", "23505", "42P01", "42601",
	                                     "57014", "08006", "22012", "xx"};
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "u");
	struct rows_seen *rs;
	const struct stats_row_view *r;

	seen(st, 5, PROTO_KW_INSERT, "insert into t values ($1)");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		rec(st, sc, 5, EV(.exec_ns = 1000, .sqlstate = states[i], .wait_ns = 10));
	rec(st, sc, 5, EV(.exec_ns = 3000, .rows = 1, .wait_ns = 10));
	rs = queries(st, STATS_ORDER_ERRORS);
	r = find_row(rs, 5);
	cr_assert_eq(r->errors, 8);
	cr_assert_eq(r->calls, 1, "calls are the executions that succeeded");
	cr_assert_eq(r->rows, 1);
	cr_assert_str_eq(rs->errs[r - rs->v], "23:2 42:2 57:1 08:1 other:2");
	cr_assert(close_to(r->total_ms, 0.003), "errors take no run time");
	cr_assert(close_to(r->wait_ms, 9 * 10 / 1e6));
	free(rs);
	stats_scope_put(st, sc);
	stats_free(st);
}

struct class_seen {
	struct stats_class_view v[STATS_NCLASSES];
	unsigned n;
};

static void class_cb(void *arg, const struct stats_class_view *v)
{
	struct class_seen *cs = arg;

	cs->v[cs->n++] = *v;
}

struct scope_seen {
	struct stats_scope_view v[8];
	char db[8][16], user[8][16];
	unsigned n;
};

static void scope_cb(void *arg, const struct stats_scope_view *v)
{
	struct scope_seen *ss = arg;

	cr_assert_lt(ss->n, 8);
	ss->v[ss->n] = *v;
	snprintf(ss->db[ss->n], 16, "%s", v->db);
	snprintf(ss->user[ss->n], 16, "%s", v->user);
	ss->n++;
}

Test(stats, classes_and_scopes)
{
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *a = stats_scope_get(st, "db", "a"), *b = stats_scope_get(st, "db", "b");
	struct class_seen cs = {0};
	struct scope_seen ss = {0};

	cr_assert_eq(stats_scope_get(st, "db", "a"), a, "one scope per (db, user)");
	stats_scope_put(st, a);
	seen(st, 1, PROTO_KW_SELECT, "select $1");
	seen(st, 2, PROTO_KW_UPDATE, "update t set x = $1");
	for (int i = 0; i < 30; i++)
		rec(st, a, 1, EV(.exec_ns = 2000000, .rows = 2, .wait_ns = 1000000));
	for (int i = 0; i < 10; i++)
		rec(st, b, 2, EV(.exec_ns = 4000000, .rows = 1));
	rec(st, b, 2, EV(.exec_ns = 1, .sqlstate = "40001"));
	rec(st, b, 0, EV(.exec_ns = 1000000)); /* text unknown: class other */
	stats_classes(st, class_cb, &cs);
	cr_assert_eq(cs.n, STATS_NCLASSES);
	cr_assert_eq(cs.v[STATS_CL_SELECT].calls, 30);
	cr_assert_eq(cs.v[STATS_CL_SELECT].rows, 60);
	cr_assert(close_to(cs.v[STATS_CL_SELECT].total_ms, 60));
	cr_assert(fabs(cs.v[STATS_CL_SELECT].p95_ms - 2) <= 0.04);
	cr_assert_eq(stats_hist_count(cs.v[STATS_CL_SELECT].hist), 30);
	cr_assert_eq(cs.v[STATS_CL_UPDATE].calls, 10);
	cr_assert_eq(cs.v[STATS_CL_UPDATE].errors, 1);
	cr_assert_eq(cs.v[STATS_CL_OTHER].calls, 1);
	cr_assert_eq(cs.v[STATS_CL_DDL].calls, 0);
	stats_scopes(st, scope_cb, &ss);
	cr_assert_eq(ss.n, 2, "the <other> row's database scope is not listed");
	for (unsigned i = 0; i < ss.n; i++) {
		cr_assert_str_eq(ss.db[i], "db");
		if (strcmp(ss.user[i], "a") == 0) {
			cr_assert_eq(ss.v[i].calls, 30);
			cr_assert(close_to(ss.v[i].wait_ms, 30));
			cr_assert_eq(stats_hist_count(ss.v[i].hist), 30);
		} else {
			cr_assert_eq(ss.v[i].calls, 11);
			cr_assert_eq(ss.v[i].errors, 1);
			cr_assert_eq(ss.v[i].rows, 10);
		}
	}
	stats_scope_put(st, a);
	stats_scope_put(st, b);
	/* rows keep their scopes; reset lets them go */
	ss.n = 0;
	stats_scopes(st, scope_cb, &ss);
	cr_assert_eq(ss.n, 2);
	stats_reset(st);
	ss.n = 0;
	stats_scopes(st, scope_cb, &ss);
	cr_assert_eq(ss.n, 0);
	stats_free(st);
}

static void count_cb(void *arg, const void *v)
{
	(void)v;
	(*(size_t *)arg)++;
}

static void slow_count(void *arg, const struct stats_slow_view *v)
{
	count_cb(arg, v);
}

static void np_count(void *arg, const struct stats_nplus1_view *v)
{
	count_cb(arg, v);
}

Test(stats, reset_clears_everything)
{
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "u");
	struct stats_client *cl = NULL;
	struct class_seen cs = {0};
	struct scope_seen ss = {0};
	size_t nslow = 0, nnp = 0;
	struct rows_seen *rs;

	cr_assert_eq(log_open("/dev/null"), 0);
	seen(st, 1, PROTO_KW_SELECT, "select $1");
	for (int i = 0; i < 12; i++)
		rec(st, sc, 1, EV(.exec_ns = 200000000, .in_tx = true, .client = &cl));
	stats_slow(st, slow_count, &nslow);
	stats_nplus1(st, np_count, &nnp);
	cr_assert_eq(nslow, 12);
	cr_assert_eq(nnp, 1);
	stats_reset(st);
	nslow = nnp = 0;
	stats_slow(st, slow_count, &nslow);
	stats_nplus1(st, np_count, &nnp);
	cr_assert_eq(nslow, 0);
	cr_assert_eq(nnp, 0);
	cr_assert_eq(stats_queries(st, STATS_ORDER_TOTAL, 0, row_cb, NULL), 0);
	stats_classes(st, class_cb, &cs);
	for (unsigned i = 0; i < cs.n; i++)
		cr_assert_eq(cs.v[i].calls + cs.v[i].errors + stats_hist_count(cs.v[i].hist), 0);
	stats_scopes(st, scope_cb, &ss);
	cr_assert_eq(ss.n, 1, "the pool's scope stays");
	cr_assert_eq(ss.v[0].calls, 0);
	cr_assert_eq(stats_hist_count(ss.v[0].hist), 0);
	/* the shape memo is no statistic: it stays; the client's N+1 state starts over */
	cr_assert(stats_shape_find(st, 1));
	for (int i = 0; i < 9; i++)
		rec(st, sc, 1, EV(.exec_ns = 1000, .in_tx = true, .client = &cl));
	stats_nplus1(st, np_count, &nnp);
	cr_assert_eq(nnp, 0, "runs before the reset do not count toward a burst after it");
	rs = queries(st, STATS_ORDER_TOTAL);
	cr_assert_eq(rs->n, 1);
	cr_assert_eq(rs->v[0].calls, 9);
	free(rs);
	stats_client_free(st, cl);
	stats_scope_put(st, sc);
	stats_free(st);
}

Test(stats, track_off)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *sc;
	struct stats_client *cl = NULL;
	struct class_seen cs = {0};
	size_t mem, nslow = 0;

	c.track = false;
	st = stats_new(&c);
	sc = stats_scope_get(st, "db", "u");
	cr_assert_not(stats_enabled(st));
	mem = stats_mem(st);
	cr_assert_null(seen(st, 1, PROTO_KW_SELECT, "select $1"));
	cr_assert_null(stats_shape_find(st, 1));
	for (int i = 0; i < 20; i++)
		rec(st, sc, 1, EV(.exec_ns = 500000000, .client = &cl));
	cr_assert_null(cl, "no N+1 state is made");
	cr_assert_eq(stats_queries(st, STATS_ORDER_TOTAL, 0, row_cb, NULL), 0);
	stats_slow(st, slow_count, &nslow);
	cr_assert_eq(nslow, 0);
	stats_classes(st, class_cb, &cs);
	for (unsigned i = 0; i < cs.n; i++)
		cr_assert_eq(cs.v[i].calls, 0);
	cr_assert_eq(stats_mem(st), mem);
	c.track = true;
	stats_configure(st, &c);
	cr_assert(stats_enabled(st));
	stats_scope_put(st, sc);
	stats_free(st);
}

struct slow_seen {
	size_t n;
	double exec[16];
	char app[16][32], text[16][64], state[16][8];
};

static void slow_cb(void *arg, const struct stats_slow_view *v)
{
	struct slow_seen *s = arg;

	cr_assert_lt(s->n, 16);
	s->exec[s->n] = v->exec_ms;
	snprintf(s->app[s->n], 32, "%s", v->app_name);
	snprintf(s->text[s->n], 64, "%s", v->text);
	snprintf(s->state[s->n], 8, "%s", v->sqlstate);
	cr_assert_eq(v->server_pid, 4242);
	cr_assert_gt(v->at, 1.6e9);
	s->n++;
}

Test(stats, slow_ring_and_line)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *sc;
	struct slow_seen s = {0};
	char path[] = "/tmp/sluice-slow-XXXXXX", line[4096];
	FILE *fp;
	int fd, lines = 0;
	bool found = false;

	c.slow_log_size = 5;
	st = stats_new(&c);
	sc = stats_scope_get(st, "db", "u");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(log_open(path), 0);
	seen(st, 1, PROTO_KW_SELECT, "select pg_sleep($1)");
	for (int i = 0; i < 8; i++) {
		rec(st, sc, 1, EV(.exec_ns = (uint64_t)(100 + i) * 1000000, .app = "evil\napp"));
		rec(st, sc, 1, EV(.exec_ns = 99999999)); /* just under 100 ms */
	}
	rec(st, sc, 1, EV(.exec_ns = 300000000, .sqlstate = "57014"));
	cr_assert_eq(log_open("/dev/null"), 0);
	stats_slow(st, slow_cb, &s);
	cr_assert_eq(s.n, 5, "the ring keeps slow_query_log_size entries");
	cr_assert(close_to(s.exec[0], 300));
	cr_assert_str_eq(s.state[0], "57014");
	for (unsigned i = 1; i < 5; i++) {
		cr_assert(close_to(s.exec[i], 108 - i), "newest first: %u is %.3f", i, s.exec[i]);
		cr_assert_str_eq(s.app[i], "evil\napp");
		cr_assert_str_eq(s.text[i], "select pg_sleep($1)");
		cr_assert_str_eq(s.state[i], "");
	}
	fp = fopen(path, "r");
	cr_assert(fp);
	while (fgets(line, sizeof(line), fp)) {
		lines++;
		cr_assert(strstr(line, " LOG slow statement: "), "%s", line);
		if (strstr(line, "101.000 ms") && strstr(line, "app=evil\\x0aapp") &&
		    strstr(line, "db=db user=u") && strstr(line, "client=10.0.0.1:5000") &&
		    strstr(line, "server_pid=4242 class=select") &&
		    strstr(line, ": select pg_sleep($1)\n"))
			found = true;
	}
	fclose(fp);
	unlink(path);
	cr_assert_eq(lines, 9, "one line per slow statement, none for the fast ones");
	cr_assert(found, "the line names its context, escaped");
	/* a smaller ring keeps the newest; a larger one then fills in order */
	c.slow_log_size = 3;
	stats_configure(st, &c);
	memset(&s, 0, sizeof(s));
	stats_slow(st, slow_cb, &s);
	cr_assert_eq(s.n, 3);
	cr_assert(close_to(s.exec[0], 300));
	cr_assert(close_to(s.exec[2], 106));
	c.slow_log_size = 10;
	stats_configure(st, &c);
	rec(st, sc, 1, EV(.exec_ns = 400000000));
	memset(&s, 0, sizeof(s));
	stats_slow(st, slow_cb, &s);
	cr_assert_eq(s.n, 4);
	cr_assert(close_to(s.exec[0], 400));
	cr_assert(close_to(s.exec[1], 300));
	cr_assert(close_to(s.exec[3], 106));
	/* slow_query_ms = 0: no slow log */
	c.slow_ms = 0;
	stats_configure(st, &c);
	rec(st, sc, 1, EV(.exec_ns = 900000000));
	memset(&s, 0, sizeof(s));
	stats_slow(st, slow_cb, &s);
	cr_assert_eq(s.n, 4);
	stats_scope_put(st, sc);
	stats_free(st);
}

/* ---- N+1 ---- */

struct np_seen {
	size_t n;
	struct stats_nplus1_view v[16];
	char text[16][64], prev[16][64], app[16][32];
};

static void np_cb(void *arg, const struct stats_nplus1_view *v)
{
	struct np_seen *s = arg;

	cr_assert_lt(s->n, 16);
	s->v[s->n] = *v;
	snprintf(s->text[s->n], 64, "%s", v->text);
	snprintf(s->prev[s->n], 64, "%s", v->prev_text);
	snprintf(s->app[s->n], 32, "%s", v->last_app);
	s->n++;
}

static const struct stats_nplus1_view *np_find(const struct np_seen *s, uint64_t fp)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].fp == fp)
			return &s->v[i];
	return NULL;
}

struct np_fixture {
	struct stats *st;
	struct stats_scope *sc;
	struct stats_client *cl;
	uint64_t now;
};

enum { FP_BEGIN = 1, FP_COMMIT, FP_AUTHOR, FP_BOOKS, FP_OTHER, FP_SAVEPOINT };

static void np_setup(struct np_fixture *f)
{
	struct stats_config c = cfg_default();

	c.slow_ms = 0;
	f->st = stats_new(&c);
	f->sc = stats_scope_get(f->st, "shop", "web");
	f->cl = NULL;
	f->now = 1000000000000ull;
	seen(f->st, FP_BEGIN, PROTO_KW_BEGIN, "begin");
	seen(f->st, FP_COMMIT, PROTO_KW_COMMIT, "commit");
	seen(f->st, FP_AUTHOR, PROTO_KW_SELECT, "select * from authors where id = $1");
	seen(f->st, FP_BOOKS, PROTO_KW_SELECT, "select * from books where author_id = $1");
	seen(f->st, FP_OTHER, PROTO_KW_SELECT, "select * from shelves");
	seen(f->st, FP_SAVEPOINT, PROTO_KW_SAVEPOINT, "savepoint s1");
}

static void np_teardown(struct np_fixture *f)
{
	stats_client_free(f->st, f->cl);
	stats_scope_put(f->st, f->sc);
	stats_free(f->st);
}

/* One statement by the fixture's client, <gap_ms> after the one before. */
static void run(struct np_fixture *f, uint64_t fp, bool in_tx, uint64_t gap_ms)
{
	f->now += gap_ms * 1000000ull;
	rec(f->st, f->sc, fp,
	    EV(.at_ns = f->now, .exec_ns = 100000, .in_tx = in_tx, .client = &f->cl,
	       .app = "rails"));
}

static struct np_seen np_view(struct np_fixture *f)
{
	struct np_seen s;

	memset(&s, 0, sizeof(s));
	stats_nplus1(f->st, np_cb, &s);
	return s;
}

Test(nplus1, loop_of_50_in_tx)
{
	struct np_fixture f;
	struct np_seen s;
	const struct stats_nplus1_view *v;

	np_setup(&f);
	run(&f, FP_BEGIN, false, 1);
	run(&f, FP_AUTHOR, true, 1);
	for (int i = 0; i < 50; i++)
		run(&f, FP_BOOKS, true, 50); /* slow: inside a transaction time does not matter */
	run(&f, FP_COMMIT, true, 1);
	s = np_view(&f);
	cr_assert_eq(s.n, 1, "only the looped shape is flagged");
	v = np_find(&s, FP_BOOKS);
	cr_assert(v);
	cr_assert_eq(v->bursts, 1);
	cr_assert_eq(v->largest, 50);
	cr_assert_eq(v->prev_fp, FP_AUTHOR, "the 1 of the N+1");
	cr_assert_str_eq(s.prev[0], "select * from authors where id = $1");
	cr_assert_str_eq(s.text[0], "select * from books where author_id = $1");
	cr_assert_str_eq(s.app[0], "rails");
	cr_assert_str_eq(v->last_addr, "10.0.0.1:5000");
	cr_assert_str_eq(v->db, "shop");
	cr_assert_str_eq(v->user, "web");
	/* a second transaction with a shorter loop: two bursts, the largest stays */
	run(&f, FP_BEGIN, false, 1);
	run(&f, FP_AUTHOR, true, 1);
	for (int i = 0; i < 12; i++)
		run(&f, FP_BOOKS, true, 1);
	run(&f, FP_COMMIT, true, 1);
	s = np_view(&f);
	v = np_find(&s, FP_BOOKS);
	cr_assert_eq(v->bursts, 2);
	cr_assert_eq(v->largest, 50);
	np_teardown(&f);
}

Test(nplus1, nine_is_none)
{
	struct np_fixture f;

	np_setup(&f);
	for (int t = 0; t < 3; t++) {
		run(&f, FP_BEGIN, false, 1);
		for (int i = 0; i < 9; i++)
			run(&f, FP_BOOKS, true, 1);
		run(&f, FP_COMMIT, true, 1); /* the transaction ends: the count starts over */
	}
	cr_assert_eq(np_view(&f).n, 0);
	/* and the end of a transaction is seen also when only in_tx says so */
	for (int i = 0; i < 9; i++)
		run(&f, FP_BOOKS, true, 1);
	run(&f, FP_OTHER, false, 1);
	for (int i = 0; i < 9; i++)
		run(&f, FP_BOOKS, true, 1);
	cr_assert_eq(np_view(&f).n, 0);
	/* savepoints do not end it: 5 + 5 is a burst of 10 */
	run(&f, FP_COMMIT, true, 1);
	run(&f, FP_BEGIN, false, 1);
	for (int i = 0; i < 5; i++)
		run(&f, FP_BOOKS, true, 1);
	run(&f, FP_SAVEPOINT, true, 1);
	for (int i = 0; i < 5; i++)
		run(&f, FP_BOOKS, true, 1);
	cr_assert_eq(np_view(&f).n, 1);
	np_teardown(&f);
}

Test(nplus1, window_outside_tx)
{
	struct np_fixture f;
	struct np_seen s;

	np_setup(&f);
	/* a trickle: one every 200 ms, never 10 within a second */
	for (int i = 0; i < 40; i++)
		run(&f, FP_BOOKS, false, 200);
	cr_assert_eq(np_view(&f).n, 0);
	/* a loop, 20 ms apart: a burst of 30 */
	run(&f, FP_AUTHOR, false, 5000);
	for (int i = 0; i < 30; i++)
		run(&f, FP_BOOKS, false, 20);
	s = np_view(&f);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.v[0].fp, FP_BOOKS);
	cr_assert_eq(s.v[0].bursts, 1);
	cr_assert_eq(s.v[0].largest, 30);
	cr_assert_eq(s.v[0].prev_fp, FP_AUTHOR);
	np_teardown(&f);
}

Test(nplus1, interleaved_shapes)
{
	struct np_fixture f;
	struct np_seen s;

	np_setup(&f);
	run(&f, FP_BEGIN, false, 1);
	run(&f, FP_OTHER, true, 1);
	for (int i = 0; i < 20; i++) {
		run(&f, FP_AUTHOR, true, 1);
		run(&f, FP_BOOKS, true, 1);
	}
	run(&f, FP_COMMIT, true, 1);
	s = np_view(&f);
	cr_assert_eq(s.n, 2, "both shapes of the loop are flagged");
	cr_assert_eq(np_find(&s, FP_AUTHOR)->largest, 20);
	cr_assert_eq(np_find(&s, FP_BOOKS)->largest, 20);
	cr_assert_eq(np_find(&s, FP_AUTHOR)->prev_fp, FP_OTHER);
	cr_assert_eq(np_find(&s, FP_BOOKS)->prev_fp, FP_AUTHOR);
	np_teardown(&f);
}

Test(nplus1, per_client)
{
	struct np_fixture f;
	struct stats_client *other = NULL;

	np_setup(&f);
	/* two clients, 6 runs each in their own transaction: no one looped 10 times */
	for (int i = 0; i < 6; i++) {
		run(&f, FP_BOOKS, true, 1);
		rec(f.st, f.sc, FP_BOOKS, EV(.at_ns = f.now, .in_tx = true, .client = &other));
	}
	cr_assert_eq(np_view(&f).n, 0);
	cr_assert(other);
	stats_client_free(f.st, other);
	np_teardown(&f);
}

Test(stats, memory_flat)
{
	struct stats_config c = cfg_default();
	struct stats *st;
	struct stats_scope *sc[4];
	struct stats_client *cl[8] = {0};
	size_t mem_mid = 0, mem_end, mem_empty;
	uint64_t x = 1;

	c.max_statements = 1000;
	c.track_literals = true;
	c.slow_log_size = 100;
	st = stats_new(&c);
	cr_assert_eq(log_open("/dev/null"), 0);
	mem_empty = stats_mem(st);
	for (int i = 0; i < 4; i++) {
		char user[16];

		snprintf(user, sizeof(user), "u%d", i);
		sc[i] = stats_scope_get(st, i < 2 ? "a" : "b", user);
	}
	for (int i = 0; i < 1000000; i++) {
		uint64_t fp;
		char text[96];

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		fp = 1 + (x >> 33) % 100000;
		snprintf(text, sizeof(text), "select a, b, c from t%llu where id = $1",
		         (unsigned long long)fp);
		seen(st, fp, PROTO_KW_SELECT, text);
		rec(st, sc[i % 4], fp,
		    EV(.at_ns = 1000000000ull + (uint64_t)i * 1000,
		       .exec_ns = (x >> 40) % 200000000, .rows = 1,
		       .sqlstate = i % 97 ? NULL : "23505", .in_tx = i % 3, .client = &cl[i % 8]));
		if (i == 200000)
			mem_mid = stats_mem(st);
	}
	mem_end = stats_mem(st);
	cr_assert_leq(mem_end, mem_mid + mem_mid / 20, "mid %zu, end %zu", mem_mid, mem_end);
	/* 1,000 rows of ~2.4 KB, 2,000 shapes and their pins, 100 slow entries, N+1 */
	cr_assert_lt(mem_end, 8u << 20, "%zu bytes", mem_end);
	for (int i = 0; i < 8; i++)
		stats_client_free(st, cl[i]);
	stats_reset(st);
	for (int i = 0; i < 4; i++)
		stats_scope_put(st, sc[i]);
	cr_assert_gt(stats_mem(st), mem_empty, "the memo stays");
	stats_free(st);
}

/*
 * A limit keeps only the first rows of the order (a heap, not a sort of
 * every row): for every order and several limits, with many ties on the
 * key, the rows are exactly the first of the unlimited order, in its order.
 */
Test(stats, limit_is_the_head_of_the_full_order)
{
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *a = stats_scope_get(st, "app", "a");
	struct stats_scope *b = stats_scope_get(st, "app", "b");
	static const size_t limits[] = {1, 2, 7, 50, 299, 300, 301, 1000};

	cr_assert(st && a && b);
	for (uint64_t fp = 1; fp <= 300; fp++) {
		char text[32];

		snprintf(text, sizeof(text), "SELECT %d", (int)fp);
		seen(st, fp, PROTO_KW_SELECT, text);
		/* few distinct times, calls and rows: the tie-breaks decide */
		for (uint64_t k = 0; k <= fp % 3; k++)
			rec(st, fp % 2 ? a : b, fp,
			    EV(.exec_ns = (fp % 5) * 1000000ull, .rows = (int64_t)(fp % 4),
			       .wait_ns = (fp % 2) * 1000ull, .sqlstate = fp % 7 ? NULL : "23505"));
	}
	for (int o = STATS_ORDER_TOTAL; o <= STATS_ORDER_WAIT; o++) {
		struct rows_seen *all = queries(st, (enum stats_order)o);

		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			struct rows_seen *part = calloc(1, sizeof(*part));
			size_t want = limits[i] < all->n ? limits[i] : all->n;

			cr_assert(part);
			cr_assert_eq(
			        stats_queries(st, (enum stats_order)o, limits[i], row_cb, part),
			        want);
			cr_assert_eq(part->n, want);
			for (size_t j = 0; j < want; j++) {
				cr_assert_eq(part->v[j].fp, all->v[j].fp,
				             "order %d limit %zu row %zu", o, limits[i], j);
				cr_assert_str_eq(part->user[j], all->user[j]);
			}
			free(part);
		}
		free(all);
	}
	stats_scope_put(st, a);
	stats_scope_put(st, b);
	stats_free(st);
}

Test(stats, cache_hit_is_no_call)
{
	struct stats_config c = cfg_default();
	struct stats *st = stats_new(&c);
	struct stats_scope *sc = stats_scope_get(st, "db", "alice");
	struct class_seen cs = {0};
	struct scope_seen ss = {0};
	struct rows_seen *rs;
	const struct stats_row_view *r;

	seen(st, 1, PROTO_KW_SELECT, "select $1");
	rec(st, sc, 1, EV(.exec_ns = 2000000, .rows = 1));
	stats_cache_hit(st, sc, 1);
	stats_cache_hit(st, sc, 1);
	/* a hit before any execution makes the row, with its text */
	seen(st, 2, PROTO_KW_SELECT, "select 2");
	stats_cache_hit(st, sc, 2);
	rs = queries(st, STATS_ORDER_TOTAL);
	r = find_row(rs, 1);
	cr_assert(r);
	cr_assert_eq(r->cache_hits, 2);
	cr_assert_eq(r->calls, 1, "a hit did not run at PostgreSQL");
	cr_assert_eq(r->rows, 1);
	cr_assert(close_to(r->total_ms, 2));
	r = find_row(rs, 2);
	cr_assert(r);
	cr_assert_eq(r->cache_hits, 1);
	cr_assert_eq(r->calls, 0);
	cr_assert_str_eq(rs->text[r - rs->v], "select 2");
	cr_assert_gt(r->last_seen, 0);
	free(rs);
	/* nor in the class and scope tallies */
	stats_classes(st, class_cb, &cs);
	cr_assert_eq(cs.v[STATS_CL_SELECT].calls, 1);
	stats_scopes(st, scope_cb, &ss);
	cr_assert_eq(ss.n, 1);
	cr_assert_eq(ss.v[0].calls, 1);
	/* tracking off, no scope, no stats: nothing, no crash */
	stats_cache_hit(NULL, sc, 1);
	stats_cache_hit(st, NULL, 1);
	stats_reset(st);
	rs = queries(st, STATS_ORDER_TOTAL);
	cr_assert_eq(rs->n, 0);
	free(rs);
	stats_scope_put(st, sc);
	stats_free(st);
}
