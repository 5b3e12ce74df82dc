/*
 * The Prometheus exposition, pure: a body rendered from known statistics
 * and pools goes through a strict reader written here (every sample under
 * a HELP and TYPE of its family, families contiguous, valid names, counters
 * ending in _total, histograms cumulative to +Inf with _count equal to the
 * +Inf bucket, no duplicate series), carries the figures it was given,
 * bounds per-statement series to the top N, adds pgbouncer_exporter's
 * families only when asked, and escapes label values.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"
#include "tests/unit/stats_seen.h"

static struct stats *new_stats(void)
{
	struct stats_config c = {
	        .track = true,
	        .max_statements = 5000,
	        .slow_ms = 0, /* no slow-log lines in the test output */
	        .slow_log_size = 100,
	        .nplus1_threshold = 10,
	        .nplus1_window_ms = 1000,
	};
	struct stats *st = stats_new(&c);

	cr_assert(st);
	return st;
}

static void rec(struct stats *st, struct stats_scope *sc, uint64_t fp, uint64_t exec_ns,
                const char *sqlstate)
{
	struct stats_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.scope = sc;
	ev.fp = fp;
	ev.start_ns = 1000000000ull;
	ev.end_ns = ev.start_ns + exec_ns;
	ev.rows = 1;
	if (sqlstate)
		snprintf(ev.sqlstate, sizeof(ev.sqlstate), "%s", sqlstate);
	stats_record(st, &ev);
}

/* ---- a strict reader of the text format ---- */

#define MAXF 256
#define MAXS 8192

struct family {
	char name[128];
	char type[16];
	bool help, done;
};

struct parsed {
	struct family f[MAXF];
	size_t nf;
	char *series[MAXS]; /* name + sorted label text, for duplicates */
	size_t ns;
	size_t samples;
};

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return false;
	return true;
}

static struct family *family_of(struct parsed *p, const char *sample, const char **suffix)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count", ""};

	for (size_t i = p->nf; i-- > 0;) {
		size_t n = strlen(p->f[i].name);

		if (strncmp(sample, p->f[i].name, n) != 0)
			continue;
		for (size_t j = 0; j < 4; j++)
			if (strcmp(sample + n, sfx[j]) == 0) {
				*suffix = sfx[j];
				return &p->f[i];
			}
	}
	return NULL;
}

/* Labels of a sample, parsed and checked; "le" is returned apart. */
static void read_labels(const char *s, const char **end, char *canon, size_t clen, char *le)
{
	size_t o = 0;

	le[0] = '\0';
	canon[0] = '\0';
	if (*s != '{') {
		*end = s;
		return;
	}
	s++;
	while (*s != '}') {
		const char *k = s;
		char val[512];
		size_t v = 0;

		while (*s && *s != '=')
			s++;
		cr_assert(valid_name(k, (size_t)(s - k)), "bad label name at %s", k);
		cr_assert_eq(s[1], '"', "label value unquoted at %s", k);
		s += 2;
		while (*s != '"') {
			cr_assert(*s && *s != '\n', "unterminated label value at %s", k);
			if (*s == '\\') {
				cr_assert(s[1] == '\\' || s[1] == '"' || s[1] == 'n',
				          "bad escape %c", s[1]);
				s++;
			}
			if (v < sizeof(val) - 1)
				val[v++] = *s;
			s++;
		}
		val[v] = '\0';
		if ((size_t)(s - k) > 3 && strncmp(k, "le=", 3) == 0)
			snprintf(le, 32, "%.31s", val);
		else
			o += (size_t)snprintf(canon + o, clen > o ? clen - o : 0, "%.*s;",
			                      (int)(s - k), k);
		s++;
		if (*s == ',')
			s++;
		else
			cr_assert_eq(*s, '}', "labels not separated at %s", s);
	}
	*end = s + 1;
}

struct hist_state {
	char key[1200];
	double last;
	bool inf;
	double inf_count;
};

static struct parsed *parse_exposition(const char *body)
{
	struct parsed *p = calloc(1, sizeof(*p));
	struct hist_state hs = {{0}, 0, false, 0};
	const char *line = body;

	cr_assert(p);
	cr_assert(strlen(body) > 0 && body[strlen(body) - 1] == '\n', "body must end in a newline");
	while (*line) {
		const char *eol = strchr(line, '\n');
		char buf[2048];

		cr_assert(eol);
		cr_assert_lt((size_t)(eol - line), sizeof(buf));
		memcpy(buf, line, (size_t)(eol - line));
		buf[eol - line] = '\0';
		line = eol + 1;
		if (strncmp(buf, "# HELP ", 7) == 0) {
			char name[128];

			cr_assert_eq(sscanf(buf + 7, "%127s", name), 1);
			for (size_t i = 0; i < p->nf; i++)
				cr_assert(strcmp(p->f[i].name, name) != 0, "family %s twice", name);
			cr_assert_lt(p->nf, MAXF);
			if (p->nf)
				p->f[p->nf - 1].done = true;
			snprintf(p->f[p->nf].name, sizeof(p->f[0].name), "%s", name);
			cr_assert(valid_name(name, strlen(name)), "bad name %s", name);
			p->f[p->nf++].help = true;
			continue;
		}
		if (strncmp(buf, "# TYPE ", 7) == 0) {
			char name[128], type[16];
			struct family *f = &p->f[p->nf - 1];

			cr_assert_eq(sscanf(buf + 7, "%127s %15s", name, type), 2);
			cr_assert(p->nf > 0 && strcmp(f->name, name) == 0, "TYPE %s without HELP",
			          name);
			cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
			                  strcmp(type, "histogram") == 0 ||
			                  strcmp(type, "summary") == 0,
			          "type %s", type);
			snprintf(f->type, sizeof(f->type), "%s", type);
			if (strcmp(type, "counter") == 0) {
				size_t n = strlen(name);

				cr_assert(n > 6 && strcmp(name + n - 6, "_total") == 0,
				          "counter %s does not end in _total", name);
			}
			continue;
		}
		cr_assert_neq(buf[0], '#', "stray comment %s", buf);
		cr_assert_neq(buf[0], '\0', "empty line");
		{
			const char *s = buf, *suffix = NULL, *end;
			char name[128], canon[1024], le[32], key[1200];
			struct family *f;
			double v;
			char *num_end;

			while (*s && *s != '{' && *s != ' ')
				s++;
			snprintf(name, sizeof(name), "%.*s", (int)(s - buf), buf);
			f = family_of(p, name, &suffix);
			cr_assert(f, "sample %s has no family", name);
			cr_assert(f == &p->f[p->nf - 1], "sample %s away from its family", name);
			cr_assert(f->type[0], "sample %s before its TYPE", name);
			if (suffix[0])
				cr_assert(strcmp(f->type, "histogram") == 0 ||
				                  (strcmp(f->type, "summary") == 0 &&
				                   strcmp(suffix, "_bucket") != 0),
				          "%s in a %s", name, f->type);
			read_labels(s, &end, canon, sizeof(canon), le);
			cr_assert_eq(*end, ' ', "no value in %s", buf);
			v = strtod(end + 1, &num_end);
			cr_assert(num_end != end + 1 && *num_end == '\0', "bad value in %s", buf);
			snprintf(key, sizeof(key), "%s{%s}le=%s", name, canon, le);
			for (size_t i = 0; i < p->ns; i++)
				cr_assert(strcmp(p->series[i], key) != 0, "duplicate series %s",
				          key);
			cr_assert_lt(p->ns, MAXS);
			p->series[p->ns++] = strdup(key);
			p->samples++;
			if (strcmp(f->type, "histogram") == 0) {
				char hkey[1200];

				snprintf(hkey, sizeof(hkey), "%s{%s}", f->name, canon);
				if (strcmp(suffix, "_bucket") == 0) {
					cr_assert(le[0], "bucket without le: %s", buf);
					if (strcmp(hkey, hs.key) != 0) {
						cr_assert(hs.key[0] == '\0' || hs.inf,
						          "histogram %s ended without +Inf",
						          hs.key);
						snprintf(hs.key, sizeof(hs.key), "%s", hkey);
						hs.last = 0;
						hs.inf = false;
					}
					cr_assert_not(hs.inf, "bucket after +Inf in %s", buf);
					cr_assert_geq(v, hs.last, "not cumulative: %s", buf);
					hs.last = v;
					if (strcmp(le, "+Inf") == 0) {
						hs.inf = true;
						hs.inf_count = v;
					}
				} else if (strcmp(suffix, "_count") == 0) {
					cr_assert(hs.inf && strcmp(hkey, hs.key) == 0,
					          "_count before +Inf: %s", buf);
					cr_assert_eq(v, hs.inf_count, "_count != +Inf bucket: %s",
					             buf);
				}
			}
		}
	}
	return p;
}

static void parsed_free(struct parsed *p)
{
	for (size_t i = 0; i < p->ns; i++)
		free(p->series[i]);
	free(p);
}

static bool has_family(const struct parsed *p, const char *name)
{
	for (size_t i = 0; i < p->nf; i++)
		if (strcmp(p->f[i].name, name) == 0)
			return true;
	return false;
}

static size_t count_prefix(const char *body, const char *prefix)
{
	size_t n = 0, len = strlen(prefix);

	for (const char *l = body; *l; l = strchr(l, '\n') + 1) {
		if (strncmp(l, prefix, len) == 0)
			n++;
		if (!strchr(l, '\n'))
			break;
	}
	return n;
}

static char *render(struct stats *st, const struct stats_metrics_input *in)
{
	struct proto_buf b;
	char *s;

	proto_buf_init(&b);
	cr_assert_eq(stats_metrics_render(st, in, &b), 0);
	cr_assert_eq(proto_buf_append(&b, "", 1), 0);
	s = strdup((char *)proto_buf_head(&b));
	proto_buf_free(&b);
	return s;
}

static struct stats_metrics_pool mpool(const char *db, const char *user)
{
	struct stats_metrics_pool p = {
	        .db = db,
	        .user = user,
	        .mode = "transaction",
	        .cl_active = 3,
	        .cl_waiting = 1,
	        .sv_active = 3,
	        .sv_idle = 2,
	        .maxwait_s = 1.5,
	        .pool_size = 50,
	        .min_pool_size = 5,
	        .xact_count = 500,
	        .query_count = 3500,
	        .bytes_recv = 1000,
	        .bytes_sent = 2000,
	        .xact_time_us = 2500000,
	        .query_time_us = 1500000,
	        .wait_time_us = 250,
	};
	return p;
}

Test(metrics, strict_exposition_with_known_figures)
{
	struct stats *st = new_stats();
	struct stats_scope *a = stats_scope_get(st, "app", "app");
	struct stats_scope *b = stats_scope_get(st, "app", "we\"ird\\user\n");
	struct stats_metrics_pool pools[2] = {mpool("app", "app"), mpool("app", "we\"ird\\user\n")};
	struct stats_health_check checks[STATS_HEALTH_NCHECKS];
	struct stats_health_input hin = {0};
	struct stats_health_thresholds th = {.p95_warn_ms = 100};
	struct stats_metrics_input in = {0};
	struct parsed *p;
	char *body;

	cr_assert(a && b);
	cr_assert(seen(st, 1, PROTO_KW_SELECT, "SELECT $1"));
	cr_assert(seen(st, 2, PROTO_KW_UPDATE, "UPDATE t SET v = $1"));
	for (int i = 0; i < 100; i++)
		rec(st, a, 1, 3000000ull, NULL); /* 3 ms */
	for (int i = 0; i < 10; i++)
		rec(st, b, 2, 200000000ull, NULL); /* 200 ms */
	rec(st, b, 2, 1000000ull, "23505");
	stats_health_evaluate(&hin, &th, checks);
	in.version = "0.1.0";
	in.pools = pools;
	in.npools = 2;
	in.clients = 7;
	in.servers = 5;
	in.uptime_s = 12.5;
	in.mem_statistics = 4096;
	in.health = checks;
	in.top_statements = 50;
	body = render(st, &in);
	p = parse_exposition(body);
	cr_assert_gt(p->samples, 100);
	/* every family is sluice's own */
	for (size_t i = 0; i < p->nf; i++)
		cr_assert(strncmp(p->f[i].name, "sluice_", 7) == 0, "%s", p->f[i].name);
	cr_assert(has_family(p, "sluice_statement_class_duration_seconds"));
	cr_assert(has_family(p, "sluice_pool_statement_duration_seconds"));
	cr_assert_not(has_family(p, "pgbouncer_up"));
	/* the figures handed in, in base units */
	cr_assert(strstr(body,
	                 "\nsluice_pool_transactions_total{database=\"app\",user=\"app\"} 500\n"),
	          "%s", body);
	cr_assert(
	        strstr(body, "\nsluice_pool_queries_total{database=\"app\",user=\"app\"} 3500\n"));
	cr_assert(strstr(body,
	                 "\nsluice_pool_transaction_seconds_total{database=\"app\",user=\"app\"} "
	                 "2.5\n"));
	cr_assert(strstr(body,
	                 "\nsluice_pool_clients{database=\"app\",user=\"app\",state=\"waiting\"} "
	                 "1\n"));
	cr_assert(strstr(body, "\nsluice_client_connections 7\n"));
	/* the class histogram: 100 selects of 3 ms, all under 5 ms, none under 2.5 ms */
	cr_assert(strstr(body, "\nsluice_statement_class_duration_seconds_bucket{class=\"select\","
	                       "le=\"0.0025\"} 0\n"),
	          "%s", body);
	cr_assert(strstr(body, "\nsluice_statement_class_duration_seconds_bucket{class=\"select\","
	                       "le=\"0.005\"} 100\n"));
	cr_assert(strstr(body, "\nsluice_statement_class_duration_seconds_count{class=\"select\"} "
	                       "100\n"));
	cr_assert(strstr(body, "\nsluice_statement_class_duration_seconds_sum{class=\"select\"} "
	                       "0.3\n"));
	cr_assert(strstr(body, "\nsluice_statement_class_errors_total{class=\"update\"} 1\n"));
	/* a class no statement ran in has no series */
	cr_assert_null(strstr(body, "class=\"merge\""), "%s", body);
	cr_assert_null(strstr(body, "class=\"copy\""));
	/* the escaped user, in a pool's histogram */
	cr_assert(strstr(body, "sluice_pool_statement_duration_seconds_bucket{database=\"app\","
	                       "user=\"we\\\"ird\\\\user\\n\",le=\"0.25\"} 10\n"),
	          "%s", body);
	/* a statement's series: fingerprint, class, database, user; no text */
	cr_assert(strstr(body, "sluice_statement_duration_seconds_count{fingerprint="
	                       "\"0000000000000001\",class=\"select\",database=\"app\",user="
	                       "\"app\"} 100\n"),
	          "%s", body);
	cr_assert_null(strstr(body, "SELECT $1"));
	/* the health gauges */
	cr_assert(strstr(body, "\nsluice_health_status{check=\"backend_reachable\"} 0\n"));
	parsed_free(p);
	free(body);
	stats_scope_put(st, a);
	stats_scope_put(st, b);
	stats_free(st);
}

Test(metrics, top_statements_bound_the_series)
{
	struct stats *st = new_stats();
	struct stats_scope *a = stats_scope_get(st, "app", "app");
	struct stats_metrics_input in = {.version = "x", .top_statements = 5};
	struct parsed *p;
	char *body;

	for (uint64_t fp = 1; fp <= 40; fp++) {
		char text[64];

		snprintf(text, sizeof(text), "SELECT %d", (int)fp);
		cr_assert(seen(st, fp, PROTO_KW_SELECT, text));
		/* statement fp takes fp ms: the top five by total time are 36..40 */
		rec(st, a, fp, fp * 1000000ull, NULL);
	}
	body = render(st, &in);
	p = parse_exposition(body);
	cr_assert_eq(count_prefix(body, "sluice_statement_duration_seconds_count{"), 5);
	cr_assert(strstr(body, "fingerprint=\"0000000000000028\""));      /* 40 */
	cr_assert(strstr(body, "fingerprint=\"0000000000000024\""));      /* 36 */
	cr_assert_null(strstr(body, "fingerprint=\"0000000000000023\"")); /* 35 */
	parsed_free(p);
	free(body);
	/* 0: none at all, and the exposition is still valid */
	in.top_statements = 0;
	body = render(st, &in);
	p = parse_exposition(body);
	cr_assert_eq(count_prefix(body, "sluice_statement_duration_seconds_count{"), 0);
	cr_assert(has_family(p, "sluice_statement_duration_seconds"));
	parsed_free(p);
	free(body);
	stats_scope_put(st, a);
	stats_free(st);
}

Test(metrics, pgbouncer_names_when_asked)
{
	struct stats_metrics_pool pools[3] = {mpool("app", "a"), mpool("app", "b"),
	                                      mpool("other", "a")};
	struct stats_metrics_input in = {
	        .version = "0.1.0", .pools = pools, .npools = 3, .pgbouncer_names = true};
	struct parsed *p;
	char *body = render(NULL, &in);

	p = parse_exposition(body);
	cr_assert(has_family(p, "pgbouncer_up"));
	cr_assert(has_family(p, "pgbouncer_pools_client_active_connections"));
	cr_assert(strstr(body, "\npgbouncer_pools_client_active_connections{database=\"app\","
	                       "user=\"b\"} 3\n"));
	/* SHOW STATS is per database: the two pools of app are summed */
	cr_assert(strstr(body, "\npgbouncer_stats_queries_pooled_total{database=\"app\"} 7000\n"),
	          "%s", body);
	cr_assert(
	        strstr(body, "\npgbouncer_stats_queries_pooled_total{database=\"other\"} 3500\n"));
	cr_assert(strstr(body, "\npgbouncer_stats_server_in_transaction_seconds_total{database="
	                       "\"app\"} 5\n"));
	cr_assert_eq(count_prefix(body, "pgbouncer_stats_sent_bytes_total{"), 2);
	parsed_free(p);
	free(body);
}

static char *label(const char *v)
{
	struct proto_buf b;
	char *s;

	proto_buf_init(&b);
	cr_assert_eq(stats_metrics_label(&b, v), 0);
	cr_assert_eq(proto_buf_append(&b, "", 1), 0);
	s = strdup((char *)proto_buf_head(&b));
	proto_buf_free(&b);
	return s;
}

Test(metrics, label_escaping)
{
	static const char *const cases[][2] = {
	        {"plain", "plain"},
	        {"a\\b", "a\\\\b"},
	        {"say \"hi\"", "say \\\"hi\\\""},
	        {"two\nlines", "two\\nlines"},
	        {"tab\there", "tab\there"}, /* only \\, \" and \n are escaped */
	        {"caf\xc3\xa9", "caf\xc3\xa9"},
	        {"bad\xff", "bad\xef\xbf\xbd"}, /* not UTF-8: U+FFFD */
	        {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},
	        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
	        {"", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = label(cases[i][0]);

		cr_assert_str_eq(s, cases[i][1], "case %zu", i);
		free(s);
	}
	{
		char *s = label(NULL);

		cr_assert_str_eq(s, "");
		free(s);
	}
}

Test(metrics, cache_families)
{
	static const char *const names[] = {NULL, "volatile", "locking"};
	static const uint64_t counts[] = {9, 3, 0};
	struct stats_metrics_input in = {0};
	struct parsed *p;
	char *body;

	in.version = "0.1.0";
	/* off: only the enabled gauge */
	body = render(NULL, &in);
	p = parse_exposition(body);
	cr_assert(strstr(body, "\nsluice_cache_enabled 0\n"), "%s", body);
	cr_assert_not(has_family(p, "sluice_cache_hits_total"));
	parsed_free(p);
	free(body);

	in.cache = (struct stats_metrics_cache){
	        .enabled = true,
	        .hits = 4,
	        .misses = 2,
	        .stores = 2,
	        .evictions = 1,
	        .invalidations = 5,
	        .redis_errors = 6,
	        .l1_bytes = 4096,
	        .redis_up = true,
	        .redis_requests = 8,
	        .redis_seconds = 0.004,
	        .reason_names = names,
	        .uncacheable = counts,
	        .nreasons = 3,
	};
	body = render(NULL, &in);
	p = parse_exposition(body);
	for (size_t i = 0; i < p->nf; i++)
		cr_assert(strncmp(p->f[i].name, "sluice_", 7) == 0, "%s", p->f[i].name);
	cr_assert(strstr(body, "\nsluice_cache_enabled 1\n"), "%s", body);
	cr_assert(strstr(body, "\nsluice_cache_hits_total 4\n"), "%s", body);
	cr_assert(strstr(body, "\nsluice_cache_misses_total 2\n"));
	cr_assert(strstr(body, "\nsluice_cache_stores_total 2\n"));
	cr_assert(strstr(body, "\nsluice_cache_evictions_total 1\n"));
	cr_assert(strstr(body, "\nsluice_cache_invalidations_total 5\n"));
	cr_assert(strstr(body, "\nsluice_cache_redis_errors_total 6\n"));
	cr_assert(strstr(body, "\nsluice_cache_l1_bytes 4096\n"));
	cr_assert(strstr(body, "\nsluice_cache_redis_up 1\n"));
	cr_assert(strstr(body, "\nsluice_cache_redis_requests_total 8\n"));
	cr_assert(strstr(body, "\nsluice_cache_redis_seconds_total 0.004\n"), "%s", body);
	/* one series per named reason, zeros included; a NULL name is none */
	cr_assert(strstr(body, "\nsluice_cache_uncacheable_total{reason=\"volatile\"} 3\n"));
	cr_assert(strstr(body, "\nsluice_cache_uncacheable_total{reason=\"locking\"} 0\n"));
	cr_assert_null(strstr(body, " 9\n"), "%s", body);
	parsed_free(p);
	free(body);
	in.cache.redis_up = false;
	body = render(NULL, &in);
	cr_assert(strstr(body, "\nsluice_cache_redis_up 0\n"));
	free(body);
}

/* invalidation = notify: its families appear only when listeners exist. */
Test(metrics, cache_notify_families)
{
	struct stats_metrics_input in = {0};
	struct parsed *p;
	char *body;

	in.version = "0.1.0";
	in.cache.enabled = true;
	body = render(NULL, &in);
	p = parse_exposition(body);
	cr_assert_not(has_family(p, "sluice_cache_notify_listeners"));
	cr_assert_not(has_family(p, "sluice_cache_notify_received_total"));
	parsed_free(p);
	free(body);

	in.cache.notify_listeners = 2;
	in.cache.notify_up = 1;
	in.cache.notify_received = 7;
	in.cache.notify_failures = 3;
	body = render(NULL, &in);
	p = parse_exposition(body);
	cr_assert(has_family(p, "sluice_cache_notify_listeners_up"));
	cr_assert(strstr(body, "\nsluice_cache_notify_listeners 2\n"), "%s", body);
	cr_assert(strstr(body, "\nsluice_cache_notify_listeners_up 1\n"), "%s", body);
	cr_assert(strstr(body, "\nsluice_cache_notify_received_total 7\n"), "%s", body);
	cr_assert(strstr(body, "\nsluice_cache_notify_failures_total 3\n"), "%s", body);
	parsed_free(p);
	free(body);
}
