/*
 * /metrics: the Prometheus text exposition format, version 0.0.4.
 *
 * Every family has HELP and TYPE and its samples together; names start
 * with sluice_, are in base units (seconds, bytes) and counters end in
 * _total. Latency is a real histogram (cumulative _bucket{le} ending with
 * +Inf, then _sum and _count) per statement class and per pool, read from
 * the statement statistics' log-linear histograms at fixed bounds. Per
 * statement only the top metrics_top_statements by total time appear, as
 * summaries (p50/p95/p99): their labels are the fingerprint, class,
 * database and user, never the query text, which can be kilobytes long,
 * holds whatever literals the normalizer missed, and is one SHOW QUERIES
 * away by fingerprint. With pgbouncer_names the families pgbouncer_exporter
 * derives from SHOW POOLS and SHOW STATS come too, under its names, so its
 * dashboards work with no exporter. The result cache's counters come as
 * sluice_cache_* families when it is on.
 *
 * Pure: the proxy's figures arrive in neutral structs; the cost is
 * O(pools + classes + top statements), bounded by the configuration.
 */
#include "stats/stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Histogram bounds, seconds: 0.5 ms .. 10 s, then +Inf. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

/*
 * A scrape renders thousands of samples, so the sample path avoids printf:
 * each label set is escaped once into <lb> and referred to by offset, each
 * sample is its name, that label text, perhaps one extra pair (le,
 * quantile, state) and a number written by hand. Only a non-integral
 * double goes through snprintf("%.12g").
 */
/* A label set in o->lb: k1="v1",k2="v2" (escaped, no braces). */
struct lref {
	size_t off, len;
};

struct out {
	struct proto_buf *b; /* borrowed: the body */
	int rc;
	struct proto_buf lb;         /* owned: label sets, back to back */
	const struct lref *pool_lbl; /* borrowed: database/user of in->pools[i] */
};

/* The bounds as le="<bound>" (as %g writes it) and in ns (as the
 * histograms count), made once before main() runs, as hist.c's tables. */
static char le_text[NBOUNDS][24];
static size_t le_len[NBOUNDS];
static uint64_t le_ns[NBOUNDS];

__attribute__((constructor)) static void le_init(void)
{
	for (size_t i = 0; i < NBOUNDS; i++) {
		int n = snprintf(le_text[i], sizeof(le_text[i]), "le=\"%g\"", bounds[i]);

		le_len[i] = n > 0 && (size_t)n < sizeof(le_text[i]) ? (size_t)n : 0;
		le_ns[i] = (uint64_t)(bounds[i] * 1e9);
	}
}

/* Most pieces fit the room reserved up front: copied in place, no call. */
static void put(struct out *o, const char *s, size_t n)
{
	struct proto_buf *b = o->b;

	if (o->rc != 0)
		return;
	if (b->cap - b->len >= n) {
		memcpy(b->data + b->len, s, n);
		b->len += n;
	} else if (proto_buf_append(b, s, n) < 0) {
		o->rc = -1;
	}
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(o, p, (size_t)(buf + sizeof(buf) - p));
}

static void put_d(struct out *o, double v)
{
	char buf[40];
	int n;

	/* %.12g of a whole number under 1e12 is its decimal digits: counts and
	 * whole seconds skip printf (-0 and NaN do not pass the test) */
	if (v >= 0 && v < 1e12 && v == (double)(uint64_t)v && !signbit(v)) {
		put_u64(o, (uint64_t)v);
		return;
	}
	/* the fractional figures are seconds made from nanoseconds (sums,
	 * percentiles) and ratios: nine decimals hold them exactly, written
	 * without printf's float conversion (a third of a scrape's cost) */
	if (v > 0 && v < 1e9) {
		uint64_t whole = (uint64_t)v, frac = (uint64_t)llround((v - (double)whole) * 1e9);
		char *p = buf + 10;

		if (frac >= 1000000000u) {
			whole++;
			frac -= 1000000000u;
		}
		put_u64(o, whole);
		if (frac == 0)
			return;
		buf[0] = '.';
		for (int i = 9; i >= 1; i--, frac /= 10)
			buf[i] = (char)('0' + frac % 10);
		while (p[-1] == '0')
			p--;
		put(o, buf, (size_t)(p - buf));
		return;
	}
	n = snprintf(buf, sizeof(buf), "%.12g", v);
	if (n < 0 || (size_t)n >= sizeof(buf))
		o->rc = -1;
	else
		put(o, buf, (size_t)n);
}

static void lput(struct out *o, const char *s, size_t n)
{
	if (o->rc == 0 && proto_buf_append(&o->lb, s, n) < 0)
		o->rc = -1;
}

/*
 * Render the label pairs <kv> (names and values, NULL-terminated; a NULL
 * value is written as "") once, for any number of samples.
 */
static struct lref lset(struct out *o, const char *const *kv)
{
	struct lref r = {o->lb.len, 0};

	for (size_t i = 0; kv && kv[i]; i += 2) {
		if (i)
			lput(o, ",", 1);
		lput(o, kv[i], strlen(kv[i]));
		lput(o, "=\"", 2);
		if (o->rc == 0 && stats_metrics_label(&o->lb, kv[i + 1]) < 0)
			o->rc = -1;
		lput(o, "\"", 1);
	}
	r.len = o->rc == 0 ? o->lb.len - r.off : 0;
	return r;
}

/*
 * <name>{<l>,<extra>} and the space before the value; <extra> is one
 * rendered pair (or NULL), written after the set's own labels.
 */
static void sample_head(struct out *o, const char *name, struct lref l, const char *extra,
                        size_t extralen)
{
	puts_(o, name);
	if (l.len == 0 && !extra) {
		put(o, " ", 1);
		return;
	}
	put(o, "{", 1);
	if (l.len && o->rc == 0)
		put(o, (const char *)o->lb.data + l.off, l.len);
	if (extra) {
		if (l.len)
			put(o, ",", 1);
		put(o, extra, extralen);
	}
	put(o, "} ", 2);
}

static void sample_lu(struct out *o, const char *name, struct lref l, uint64_t v)
{
	sample_head(o, name, l, NULL, 0);
	put_u64(o, v);
	put(o, "\n", 1);
}

static void sample_ld(struct out *o, const char *name, struct lref l, double v)
{
	sample_head(o, name, l, NULL, 0);
	put_d(o, v);
	put(o, "\n", 1);
}

/* A sample whose label set is used once: rendered, written, given back. */
static void sample_u(struct out *o, const char *name, const char *const *kv, uint64_t v)
{
	size_t mark = o->lb.len;

	sample_lu(o, name, lset(o, kv), v);
	o->lb.len = mark;
}

static void sample_d(struct out *o, const char *name, const char *const *kv, double v)
{
	size_t mark = o->lb.len;

	sample_ld(o, name, lset(o, kv), v);
	o->lb.len = mark;
}

/*
 * Label values are UTF-8 with \\, \" and \n escaped; a byte that is not
 * part of valid UTF-8 (a database name can be any bytes) becomes U+FFFD,
 * since parsers refuse invalid UTF-8.
 */
int stats_metrics_label(struct proto_buf *b, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");

	while (*s) {
		unsigned char c = *s;
		size_t len = 1;

		/* a run of printable ASCII (most names are nothing else) in one append */
		if (c >= 0x20 && c < 0x80 && c != '\\' && c != '"') {
			while (s[len] >= 0x20 && s[len] < 0x80 && s[len] != '\\' && s[len] != '"')
				len++;
			if (proto_buf_append(b, s, len) < 0)
				return -1;
			s += len;
			continue;
		}

		if (c == '\\' || c == '"') {
			char e[2] = {'\\', (char)c};

			if (proto_buf_append(b, e, 2) < 0)
				return -1;
			s++;
			continue;
		}
		if (c == '\n') {
			if (proto_buf_append(b, "\\n", 2) < 0)
				return -1;
			s++;
			continue;
		}
		if (c >= 0x80) {
			size_t need = c >= 0xf0 && c <= 0xf4 ? 4
			              : c >= 0xe0            ? 3
			              : c >= 0xc2            ? 2
			                                     : 0;
			bool ok = need > 0 && c < 0xf5;

			for (size_t i = 1; ok && i < need; i++)
				ok = (s[i] & 0xc0) == 0x80;
			/* overlong and surrogate forms */
			if (ok && need == 3)
				ok = !(c == 0xe0 && s[1] < 0xa0) && !(c == 0xed && s[1] >= 0xa0);
			if (ok && need == 4)
				ok = !(c == 0xf0 && s[1] < 0x90) && !(c == 0xf4 && s[1] >= 0x90);
			if (!ok) {
				if (proto_buf_append(b, "\xef\xbf\xbd", 3) < 0)
					return -1;
				s++;
				continue;
			}
			len = need;
		}
		if (proto_buf_append(b, s, len) < 0)
			return -1;
		s += len;
	}
	return 0;
}

/* A family's HELP and TYPE lines. */
static void fam(struct out *o, const char *name, const char *type, const char *help)
{
	puts_(o, "# HELP ");
	puts_(o, name);
	put(o, " ", 1);
	puts_(o, help);
	puts_(o, "\n# TYPE ");
	puts_(o, name);
	put(o, " ", 1);
	puts_(o, type);
	put(o, "\n", 1);
}

/* A one-sample family. */
static void gauge1(struct out *o, const char *name, const char *help, double v)
{
	fam(o, name, "gauge", help);
	sample_d(o, name, NULL, v);
}

static void counter1(struct out *o, const char *name, const char *help, uint64_t v)
{
	fam(o, name, "counter", help);
	sample_u(o, name, NULL, v);
}

/*
 * The samples of one histogram: <base>_bucket{<l>,le=...} cumulative, then
 * _sum (<sum_s>) and _count, all with the labels <l>.
 */
static void histogram(struct out *o, const char *base, struct lref l, const struct stats_hist *h,
                      double sum_s)
{
	static const char inf[] = "le=\"+Inf\"";
	uint64_t total = h ? stats_hist_count(h) : 0;
	uint64_t cum[NBOUNDS] = {0};
	size_t blen = strlen(base), head, start;
	char name[128];

	if (h)
		stats_hist_count_le_many(h, le_ns, NBOUNDS, cum);
	/* every bucket line starts "<base>_bucket{<labels>,": written once, then
	 * copied from the body itself, so room for all of them is reserved
	 * first (the copy must not see the buffer move) */
	head = blen + 8 + l.len + (l.len ? 1 : 0);
	if (o->rc != 0 || blen + 8 > sizeof(name) ||
	    proto_buf_reserve(o->b, (NBOUNDS + 1) * (head + sizeof(le_text[0]) + 24 + 3)) < 0) {
		o->rc = -1;
		return;
	}
	start = o->b->len;
	put(o, base, blen);
	put(o, "_bucket{", 8);
	if (l.len) {
		put(o, (const char *)o->lb.data + l.off, l.len);
		put(o, ",", 1);
	}
	for (size_t i = 0; i <= NBOUNDS; i++) {
		if (i)
			put(o, (const char *)o->b->data + start, head);
		if (i < NBOUNDS)
			put(o, le_text[i], le_len[i]);
		else
			put(o, inf, sizeof(inf) - 1);
		put(o, "} ", 2);
		put_u64(o, i < NBOUNDS ? cum[i] : total);
		put(o, "\n", 1);
	}
	memcpy(name, base, blen);
	memcpy(name + blen, "_sum", 5);
	sample_ld(o, name, l, sum_s);
	memcpy(name + blen, "_count", 7);
	sample_lu(o, name, l, total);
}

/* ---- process ---- */

static void render_process(struct out *o, const struct stats_metrics_input *in)
{
	static const char *const areas[] = {"buffers", "slabs", "statistics", "prepared"};
	const uint64_t mem[] = {in->mem_buffers, in->mem_slabs, in->mem_statistics,
	                        in->mem_prepared};
	const char *kv[3] = {"version", in->version, NULL};

	gauge1(o, "sluice_up", "1 while sluice answers", 1);
	fam(o, "sluice_info", "gauge", "Always 1; the version of sluice in a label");
	sample_u(o, "sluice_info", kv, 1);
	gauge1(o, "sluice_uptime_seconds", "Seconds since sluice started", in->uptime_s);
	gauge1(o, "sluice_client_connections", "Client connections open now", in->clients);
	gauge1(o, "sluice_client_logins", "Clients connected and not logged in yet", in->logins);
	gauge1(o, "sluice_server_connections", "Server connections open or being opened now",
	       in->servers);
	gauge1(o, "sluice_max_client_connections", "max_client_conn", in->max_client_conn);
	counter1(o, "sluice_accepted_connections_total", "Client connections accepted",
	         in->accepted);
	counter1(o, "sluice_login_failures_total", "Client logins that failed", in->login_failures);
	counter1(o, "sluice_login_refused_total", "Client connections refused by max_login_clients",
	         in->login_refused);
	counter1(o, "sluice_cancel_requests_total", "CancelRequests received", in->cancels);
	fam(o, "sluice_memory_bytes", "gauge", "Memory held, by area, as SHOW MEM counts it");
	for (size_t i = 0; i < 4; i++) {
		const char *akv[3] = {"area", areas[i], NULL};

		sample_u(o, "sluice_memory_bytes", akv, mem[i]);
	}
	counter1(o, "sluice_http_requests_total", "HTTP requests answered on stats_listen",
	         in->http_requests);
	counter1(o, "sluice_http_refused_connections_total",
	         "HTTP connections refused or dropped (connection limit, size limit, timeout)",
	         in->http_refused);
}

/* ---- pools (SHOW POOLS, SHOW STATS) ---- */

#define POOL_KV(p)                                                                                 \
	{                                                                                          \
		"database", (p)->db, "user", (p)->user, NULL                                       \
	}

static void pool_counter(struct out *o, const struct stats_metrics_input *in, const char *name,
                         const char *help, size_t off)
{
	fam(o, name, "counter", help);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_metrics_pool *p = &in->pools[i];

		sample_lu(o, name, o->pool_lbl[i], *(const uint64_t *)((const char *)p + off));
	}
}

static void pool_seconds(struct out *o, const struct stats_metrics_input *in, const char *name,
                         const char *help, size_t off)
{
	fam(o, name, "counter", help);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_metrics_pool *p = &in->pools[i];

		sample_ld(o, name, o->pool_lbl[i],
		          (double)*(const uint64_t *)((const char *)p + off) / 1e6);
	}
}

static void pool_gauge(struct out *o, const struct stats_metrics_input *in, const char *name,
                       const char *help, size_t off)
{
	fam(o, name, "gauge", help);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_metrics_pool *p = &in->pools[i];

		sample_lu(o, name, o->pool_lbl[i], *(const uint32_t *)((const char *)p + off));
	}
}

/* A gauge with a state label: one sample per pool and state. */
static void pool_states(struct out *o, const struct stats_metrics_input *in, const char *name,
                        const char *help, const char *const *states, const size_t *offs, size_t n)
{
	char st[8][32];
	size_t stlen[8];

	for (size_t j = 0; j < n && j < 8; j++) {
		size_t k = strlen(states[j]);

		/* state="<name>": the names are sluice's own words, short, unescaped */
		if (k + 9 > sizeof(st[j])) {
			stlen[j] = 0;
			continue;
		}
		memcpy(st[j], "state=\"", 7);
		memcpy(st[j] + 7, states[j], k);
		st[j][7 + k] = '"';
		stlen[j] = k + 8;
	}
	fam(o, name, "gauge", help);
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_metrics_pool *p = &in->pools[i];

		for (size_t j = 0; j < n && j < 8; j++) {
			sample_head(o, name, o->pool_lbl[i], st[j], stlen[j]);
			put_u64(o, *(const uint32_t *)((const char *)p + offs[j]));
			put(o, "\n", 1);
		}
	}
}

#define PO(f) offsetof(struct stats_metrics_pool, f)

static void render_pools(struct out *o, const struct stats_metrics_input *in)
{
	static const char *const cl_states[] = {"active", "waiting", "idle", "login"};
	static const size_t cl_offs[] = {PO(cl_active), PO(cl_waiting), PO(cl_idle), PO(cl_login)};
	static const char *const sv_states[] = {"active", "idle", "used", "tested", "login"};
	static const size_t sv_offs[] = {PO(sv_active), PO(sv_idle), PO(sv_used), PO(sv_tested),
	                                 PO(sv_login)};

	pool_states(o, in, "sluice_pool_clients",
	            "Clients of the pool by state (SHOW POOLS cl_active, cl_waiting, ...)",
	            cl_states, cl_offs, 4);
	pool_states(o, in, "sluice_pool_servers",
	            "Server connections of the pool by state (SHOW POOLS sv_active, sv_idle, ...)",
	            sv_states, sv_offs, 5);
	fam(o, "sluice_pool_max_wait_seconds", "gauge",
	    "How long the first client in the pool's queue has waited (SHOW POOLS maxwait)");
	for (size_t i = 0; i < in->npools; i++) {
		sample_ld(o, "sluice_pool_max_wait_seconds", o->pool_lbl[i],
		          in->pools[i].maxwait_s);
	}
	fam(o, "sluice_pool_mode", "gauge", "Always 1; the pool mode in a label");
	for (size_t i = 0; i < in->npools; i++) {
		const struct stats_metrics_pool *p = &in->pools[i];
		const char *kv[] = {"database", p->db, "user", p->user, "mode", p->mode, NULL};

		sample_u(o, "sluice_pool_mode", kv, 1);
	}
	pool_gauge(o, in, "sluice_pool_size", "Most server connections the pool opens",
	           PO(pool_size));
	pool_gauge(o, in, "sluice_pool_min_size", "Server connections the pool keeps open",
	           PO(min_pool_size));
	pool_counter(o, in, "sluice_pool_transactions_total",
	             "Transactions pooled (SHOW STATS total_xact_count)", PO(xact_count));
	pool_counter(o, in, "sluice_pool_queries_total",
	             "Queries pooled (SHOW STATS total_query_count)", PO(query_count));
	pool_counter(o, in, "sluice_pool_received_bytes_total", "Bytes received from clients",
	             PO(bytes_recv));
	pool_counter(o, in, "sluice_pool_sent_bytes_total", "Bytes sent to clients",
	             PO(bytes_sent));
	pool_seconds(o, in, "sluice_pool_transaction_seconds_total",
	             "Seconds servers spent in transactions (SHOW STATS total_xact_time)",
	             PO(xact_time_us));
	pool_seconds(o, in, "sluice_pool_query_seconds_total",
	             "Seconds servers spent running queries (SHOW STATS total_query_time)",
	             PO(query_time_us));
	pool_seconds(o, in, "sluice_pool_wait_seconds_total",
	             "Seconds clients spent queued for a server (SHOW STATS total_wait_time)",
	             PO(wait_time_us));
	pool_counter(o, in, "sluice_pool_server_assignments_total",
	             "Times a server was linked to a client", PO(server_assignments));
	pool_counter(o, in, "sluice_pool_client_parses_total", "Parse messages from clients",
	             PO(client_parses));
	pool_counter(o, in, "sluice_pool_server_parses_total", "Parse messages sent to servers",
	             PO(server_parses));
	pool_counter(o, in, "sluice_pool_client_binds_total", "Bind messages from clients",
	             PO(client_binds));
	pool_counter(o, in, "sluice_pool_server_binds_total", "Bind messages sent to servers",
	             PO(server_binds));
	pool_counter(o, in, "sluice_pool_server_connects_total", "Server connections opened",
	             PO(server_connects));
	pool_counter(o, in, "sluice_pool_server_connect_failures_total",
	             "Server connections or logins that failed", PO(server_failures));
	pool_counter(o, in, "sluice_pool_wait_timeouts_total",
	             "Clients failed by query_wait_timeout", PO(wait_timeouts));
}

/* ---- statement statistics ---- */

struct views {
	struct stats_scope_view *v;
	size_t n, cap;
	bool oom;
};

static void scope_cb(void *arg, const struct stats_scope_view *v)
{
	struct views *a = arg;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct stats_scope_view *nv = realloc(a->v, cap * sizeof(*nv));

		if (!nv) {
			a->oom = true;
			return;
		}
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = *v;
}

static void render_scopes(struct out *o, struct stats *st)
{
	struct views a = {0};

	size_t mark = o->lb.len;
	struct lref *l;

	stats_scopes(st, scope_cb, &a);
	l = calloc(a.n ? a.n : 1, sizeof(*l));
	if (a.oom || !l)
		o->rc = -1;
	for (size_t i = 0; l && i < a.n; i++) {
		const char *kv[] = POOL_KV(&a.v[i]);

		l[i] = lset(o, kv);
	}
	if (!l)
		a.n = 0;
	fam(o, "sluice_pool_statement_duration_seconds", "histogram",
	    "Run time of the pool's statements that succeeded, from the first byte sent to "
	    "PostgreSQL to the reply");
	for (size_t i = 0; i < a.n; i++) {
		histogram(o, "sluice_pool_statement_duration_seconds", l[i], a.v[i].hist,
		          a.v[i].total_ms / 1e3);
	}
	fam(o, "sluice_pool_statement_errors_total", "counter",
	    "The pool's statements that ended in an error");
	for (size_t i = 0; i < a.n; i++) {
		sample_lu(o, "sluice_pool_statement_errors_total", l[i], a.v[i].errors);
	}
	fam(o, "sluice_pool_statement_rows_total", "counter",
	    "Rows the pool's statements returned or changed");
	for (size_t i = 0; i < a.n; i++) {
		sample_lu(o, "sluice_pool_statement_rows_total", l[i], a.v[i].rows);
	}
	free(l);
	free(a.v);
	o->lb.len = mark;
}

struct classes {
	struct stats_class_view v[STATS_NCLASSES];
	size_t n;
};

static void class_cb(void *arg, const struct stats_class_view *v)
{
	struct classes *a = arg;

	/* a class appears once a statement of it ran, as a labelled child of a
	 * client library's histogram does: ten empty histograms were two
	 * thirds of a small scrape */
	if (v->calls == 0 && v->errors == 0)
		return;
	if (a->n < STATS_NCLASSES)
		a->v[a->n++] = *v;
}

static void render_classes(struct out *o, struct stats *st)
{
	struct classes a = {.n = 0};
	struct lref l[STATS_NCLASSES];
	size_t mark = o->lb.len;

	stats_classes(st, class_cb, &a);
	for (size_t i = 0; i < a.n; i++) {
		const char *kv[] = {"class", stats_class_name((enum stats_class)a.v[i].cls), NULL};

		l[i] = lset(o, kv);
	}
	fam(o, "sluice_statement_class_duration_seconds", "histogram",
	    "Run time of the statements that succeeded, by class");
	for (size_t i = 0; i < a.n; i++)
		histogram(o, "sluice_statement_class_duration_seconds", l[i], a.v[i].hist,
		          a.v[i].total_ms / 1e3);
	fam(o, "sluice_statement_class_errors_total", "counter",
	    "Statements that ended in an error, by class");
	for (size_t i = 0; i < a.n; i++)
		sample_lu(o, "sluice_statement_class_errors_total", l[i], a.v[i].errors);
	fam(o, "sluice_statement_class_rows_total", "counter",
	    "Rows statements returned or changed, by class");
	for (size_t i = 0; i < a.n; i++)
		sample_lu(o, "sluice_statement_class_rows_total", l[i], a.v[i].rows);
	o->lb.len = mark;
}

/* What the top statements' families need of a row, copied in the callback. */
struct top_row {
	char fp[20];
	const char *db, *user; /* borrowed from the statistics; stable while rendering */
	uint8_t cls;
	uint64_t calls, errors, rows;
	double total_s, wait_s, p50_s, p95_s, p99_s;
	struct lref l; /* its labels, rendered once */
};

struct tops {
	struct top_row *v;
	size_t n, cap;
};

static void top_cb(void *arg, const struct stats_row_view *r)
{
	struct tops *a = arg;
	struct top_row *t;

	if (a->n >= a->cap)
		return;
	t = &a->v[a->n++];
	if (r->other) {
		memcpy(t->fp, "other", 6);
	} else {
		uint64_t fp = r->fp;

		for (int i = 15; i >= 0; i--, fp >>= 4)
			t->fp[i] = "0123456789abcdef"[fp & 15];
		t->fp[16] = '\0';
	}
	t->db = r->db;
	t->user = r->user;
	t->cls = r->cls;
	t->calls = r->calls;
	t->errors = r->errors;
	t->rows = r->rows;
	t->total_s = r->total_ms / 1e3;
	t->wait_s = r->wait_ms / 1e3;
	t->p50_s = r->p50_ms / 1e3;
	t->p95_s = r->p95_ms / 1e3;
	t->p99_s = r->p99_ms / 1e3;
}

#define TOP_KV(t)                                                                                  \
	{                                                                                          \
		"fingerprint", (t)->fp, "class", stats_class_name((enum stats_class)(t)->cls),     \
		        "database", (t)->db, "user", (t)->user, NULL                               \
	}

static void render_top(struct out *o, struct stats *st, uint32_t top)
{
	struct tops a = {0};
	static const char *const qs[] = {"quantile=\"0.5\"", "quantile=\"0.95\"",
	                                 "quantile=\"0.99\""};
	size_t mark = o->lb.len;

	if (top) {
		a.v = malloc(top * sizeof(*a.v)); /* top_cb fills what it counts */
		if (!a.v) {
			o->rc = -1;
			return;
		}
		a.cap = top;
		stats_queries(st, STATS_ORDER_TOTAL, top, top_cb, &a);
	}
	for (size_t i = 0; i < a.n; i++) {
		const char *kv[] = TOP_KV(&a.v[i]);

		a.v[i].l = lset(o, kv);
	}
	fam(o, "sluice_statement_duration_seconds", "summary",
	    "Run time of one normalized statement (the top metrics_top_statements by total "
	    "time; SHOW QUERIES has the text by fingerprint)");
	for (size_t i = 0; i < a.n; i++) {
		const struct top_row *t = &a.v[i];
		const double q[] = {t->p50_s, t->p95_s, t->p99_s};

		for (size_t j = 0; j < 3; j++) {
			sample_head(o, "sluice_statement_duration_seconds", t->l, qs[j],
			            strlen(qs[j]));
			put_d(o, q[j]);
			put(o, "\n", 1);
		}
		sample_ld(o, "sluice_statement_duration_seconds_sum", t->l, t->total_s);
		sample_lu(o, "sluice_statement_duration_seconds_count", t->l, t->calls);
	}
	fam(o, "sluice_statement_errors_total", "counter",
	    "Executions of one normalized statement that ended in an error (top statements)");
	for (size_t i = 0; i < a.n; i++)
		sample_lu(o, "sluice_statement_errors_total", a.v[i].l, a.v[i].errors);
	fam(o, "sluice_statement_rows_total", "counter",
	    "Rows one normalized statement returned or changed (top statements)");
	for (size_t i = 0; i < a.n; i++)
		sample_lu(o, "sluice_statement_rows_total", a.v[i].l, a.v[i].rows);
	fam(o, "sluice_statement_wait_seconds_total", "counter",
	    "Seconds clients waited for a server before running one normalized statement (top "
	    "statements)");
	for (size_t i = 0; i < a.n; i++)
		sample_ld(o, "sluice_statement_wait_seconds_total", a.v[i].l, a.v[i].wait_s);
	free(a.v);
	o->lb.len = mark;
}

/* ---- health and cache ---- */

static void render_health(struct out *o, const struct stats_metrics_input *in)
{
	if (!in->health)
		return;
	fam(o, "sluice_health_status", "gauge",
	    "Status of each health check: 0 ok, 1 warn, 2 critical (SHOW HEALTH)");
	for (size_t i = 0; i < STATS_HEALTH_NCHECKS; i++) {
		const char *kv[] = {"check", stats_health_check_name(in->health[i].id), NULL};

		sample_u(o, "sluice_health_status", kv, (uint64_t)in->health[i].status);
	}
	gauge1(o, "sluice_health_overall_status",
	       "The worst health check: 0 ok, 1 warn, 2 critical (GET /health is 503 at 2)",
	       (double)stats_health_overall(in->health, STATS_HEALTH_NCHECKS));
}

static void render_cache(struct out *o, const struct stats_metrics_cache *c)
{
	static const char reason_help[] =
	        "Marked statements not served from the cache, by reason (SHOW CACHE uncacheable)";

	gauge1(o, "sluice_cache_enabled", "1 when the result cache is on ([cache] enabled)",
	       c->enabled ? 1 : 0);
	if (!c->enabled)
		return;
	counter1(o, "sluice_cache_hits_total",
	         "Statements answered from the cache (L1 or Redis) without PostgreSQL", c->hits);
	counter1(o, "sluice_cache_misses_total",
	         "Cacheable statements not found in the cache, run at PostgreSQL to be stored",
	         c->misses);
	counter1(o, "sluice_cache_stores_total", "Results stored in the cache", c->stores);
	counter1(o, "sluice_cache_evictions_total",
	         "Entries the in-process L1 dropped to stay within its size", c->evictions);
	counter1(o, "sluice_cache_invalidations_total",
	         "Generation bumps sent and received (writes, CACHE INVALIDATE, CACHE CLEAR)",
	         c->invalidations);
	counter1(o, "sluice_cache_redis_errors_total",
	         "Redis replies that were errors or not of the expected form", c->redis_errors);
	fam(o, "sluice_cache_uncacheable_total", "counter", reason_help);
	for (size_t i = 0; i < c->nreasons; i++) {
		const char *kv[] = {"reason", c->reason_names[i], NULL};

		if (c->reason_names[i])
			sample_u(o, "sluice_cache_uncacheable_total", kv, c->uncacheable[i]);
	}
	gauge1(o, "sluice_cache_l1_bytes", "Bytes the in-process L1 holds now",
	       (double)c->l1_bytes);
	gauge1(o, "sluice_cache_redis_up", "1 while Redis is connected and subscribed, else 0",
	       c->redis_up ? 1 : 0);
	fam(o, "sluice_cache_redis_seconds_total", "counter",
	    "Seconds spent waiting for Redis round trips (divide by "
	    "sluice_cache_redis_requests_total for the mean)");
	sample_d(o, "sluice_cache_redis_seconds_total", NULL, c->redis_seconds);
	counter1(o, "sluice_cache_redis_requests_total", "Redis round trips timed",
	         c->redis_requests);
	if (!c->notify_listeners)
		return;
	gauge1(o, "sluice_cache_notify_listeners",
	       "LISTEN connections configured (invalidation = notify, one per notify.<database>)",
	       (double)c->notify_listeners);
	gauge1(o, "sluice_cache_notify_listeners_up",
	       "LISTEN connections listening now; below sluice_cache_notify_listeners, writes "
	       "made outside sluice are seen only when entries expire",
	       (double)c->notify_up);
	counter1(o, "sluice_cache_notify_received_total",
	         "Notifications from sql/sluice_notify.sql's triggers acted on",
	         c->notify_received);
	counter1(o, "sluice_cache_notify_failures_total",
	         "LISTEN connection attempts that failed and connections lost", c->notify_failures);
}

/* ---- pgbouncer_exporter's names ---- */

static void pgb_pool_gauge(struct out *o, const struct stats_metrics_input *in, const char *name,
                           const char *help, size_t off)
{
	pool_gauge(o, in, name, help, off);
}

/* A SHOW STATS figure summed per database, as PgBouncer shows it. */
static void pgb_stat(struct out *o, const struct stats_metrics_input *in, const char *name,
                     const char *help, size_t off, double scale)
{
	fam(o, name, "counter", help);
	for (size_t i = 0; i < in->npools; i++) {
		const char *db = in->pools[i].db;
		uint64_t sum = 0;
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(in->pools[j].db, db) == 0;
		if (seen)
			continue;
		for (size_t j = i; j < in->npools; j++)
			if (strcmp(in->pools[j].db, db) == 0)
				sum += *(const uint64_t *)((const char *)&in->pools[j] + off);
		{
			const char *kv[] = {"database", db, NULL};

			if (scale == 1)
				sample_u(o, name, kv, sum);
			else
				sample_d(o, name, kv, (double)sum * scale);
		}
	}
}

static void render_pgbouncer(struct out *o, const struct stats_metrics_input *in)
{
	const char *kv[] = {"version", in->version, NULL};

	gauge1(o, "pgbouncer_up", "1 when the pooler answers", 1);
	fam(o, "pgbouncer_version_info", "gauge", "The pooler's version");
	sample_u(o, "pgbouncer_version_info", kv, 1);
	gauge1(o, "pgbouncer_config_max_client_connections", "max_client_conn",
	       in->max_client_conn);
	pgb_pool_gauge(o, in, "pgbouncer_pools_client_active_connections",
	               "Clients linked to a server", PO(cl_active));
	pgb_pool_gauge(o, in, "pgbouncer_pools_client_waiting_connections",
	               "Clients waiting for a server", PO(cl_waiting));
	pgb_pool_gauge(o, in, "pgbouncer_pools_server_active_connections",
	               "Servers linked to a client", PO(sv_active));
	pgb_pool_gauge(o, in, "pgbouncer_pools_server_idle_connections",
	               "Servers idle and ready for a client", PO(sv_idle));
	pgb_pool_gauge(o, in, "pgbouncer_pools_server_used_connections",
	               "Servers released and not checked yet", PO(sv_used));
	pgb_pool_gauge(o, in, "pgbouncer_pools_server_testing_connections",
	               "Servers running the reset or check query", PO(sv_tested));
	pgb_pool_gauge(o, in, "pgbouncer_pools_server_login_connections", "Servers logging in",
	               PO(sv_login));
	fam(o, "pgbouncer_pools_client_maxwait_seconds", "gauge",
	    "Age of the oldest unserved client");
	for (size_t i = 0; i < in->npools; i++) {
		sample_ld(o, "pgbouncer_pools_client_maxwait_seconds", o->pool_lbl[i],
		          in->pools[i].maxwait_s);
	}
	pgb_stat(o, in, "pgbouncer_stats_queries_pooled_total", "SQL queries pooled",
	         PO(query_count), 1);
	pgb_stat(o, in, "pgbouncer_stats_queries_duration_seconds_total",
	         "Seconds spent running queries", PO(query_time_us), 1e-6);
	pgb_stat(o, in, "pgbouncer_stats_received_bytes_total", "Bytes received from clients",
	         PO(bytes_recv), 1);
	pgb_stat(o, in, "pgbouncer_stats_sent_bytes_total", "Bytes sent to clients", PO(bytes_sent),
	         1);
	pgb_stat(o, in, "pgbouncer_stats_sql_transactions_pooled_total", "SQL transactions pooled",
	         PO(xact_count), 1);
	pgb_stat(o, in, "pgbouncer_stats_server_in_transaction_seconds_total",
	         "Seconds servers spent in transactions", PO(xact_time_us), 1e-6);
	pgb_stat(o, in, "pgbouncer_stats_client_wait_seconds_total",
	         "Seconds clients waited for a server", PO(wait_time_us), 1e-6);
}

int stats_metrics_render(struct stats *st, const struct stats_metrics_input *in,
                         struct proto_buf *b)
{
	struct out o = {.b = b, .rc = 0};
	struct lref *pl = calloc(in->npools ? in->npools : 1, sizeof(*pl));

	proto_buf_init(&o.lb);
	if (!pl)
		return -1;
	for (size_t i = 0; i < in->npools; i++) {
		const char *kv[] = POOL_KV(&in->pools[i]);

		pl[i] = lset(&o, kv);
	}
	o.pool_lbl = pl;
	/* about what a scrape of this size writes: one allocation, not a dozen */
	if (proto_buf_reserve(b, 8192 + in->npools * 6144 + (size_t)in->top_statements * 1536) < 0)
		o.rc = -1;
	render_process(&o, in);
	render_pools(&o, in);
	if (st) {
		render_scopes(&o, st);
		render_classes(&o, st);
		render_top(&o, st, in->top_statements);
	}
	render_health(&o, in);
	render_cache(&o, &in->cache);
	if (in->pgbouncer_names)
		render_pgbouncer(&o, in);
	free(pl);
	proto_buf_free(&o.lb);
	return o.rc;
}
