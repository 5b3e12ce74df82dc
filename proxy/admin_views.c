/*
 * The admin console's PgBouncer-compatible views: SHOW HELP, VERSION,
 * CONFIG, DATABASES, POOLS, STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS,
 * LISTS, USERS, MEM, FDS, DNS_HOSTS, DNS_ZONES and STATE (CLIENTS,
 * SERVERS, SOCKETS and ACTIVE_SOCKETS are in admin_conns.c), with PgBouncer 1.24's column names,
 * order and type OIDs, so that pgbouncer_exporter, dashboards and scripts
 * written for PgBouncer's console read sluice unchanged. Where sluice has
 * the concept the figure is real; where it has none the column carries a
 * neutral value of the right type (0, empty, NULL as PgBouncer would).
 *
 * Also the result-set builder the console shares (admin_int.h) and the
 * stats_period averages, computed as PgBouncer does: per-second rates for
 * counts and bytes, mean microseconds per transaction, query and wait.
 */
#include "proxy/admin_int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "stats/stats.h"

#define ADMIN_VERSION "sluice 0.1.0"

#define I4       PROTO_OID_INT4
#define I8       PROTO_OID_INT8
#define TX       PROTO_OID_TEXT
#define NU       PROTO_OID_NUMERIC
#define BY       PROTO_OID_BYTEA
#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- result-set builder ---- */

void admin_tbl_begin(struct admin_table *t, const struct admin_col *cols, size_t n)
{
	const char *names[ADMIN_MAX_COLS];
	uint32_t oids[ADMIN_MAX_COLS];

	proto_buf_init(&t->b);
	t->ncols = n;
	t->nrows = 0;
	t->n = 0;
	for (size_t i = 0; i < n && i < ADMIN_MAX_COLS; i++) {
		names[i] = cols[i].name;
		oids[i] = cols[i].oid;
	}
	t->rc = n > ADMIN_MAX_COLS ? -1 : proto_put_row_desc_typed(&t->b, names, oids, n);
}

void admin_put_text(struct admin_table *t, const char *v)
{
	if (t->n < ADMIN_MAX_COLS)
		t->vals[t->n++] = v;
}

void admin_put_int(struct admin_table *t, long long v)
{
	if (t->n >= ADMIN_MAX_COLS)
		return;
	snprintf(t->cells[t->n], sizeof(t->cells[0]), "%lld", v);
	admin_put_text(t, t->cells[t->n]);
}

void admin_put_u64(struct admin_table *t, uint64_t v)
{
	if (t->n >= ADMIN_MAX_COLS)
		return;
	snprintf(t->cells[t->n], sizeof(t->cells[0]), "%" PRIu64, v);
	admin_put_text(t, t->cells[t->n]);
}

void admin_put_time(struct admin_table *t, double at)
{
	time_t tt = (time_t)at;
	struct tm tm;

	if (t->n >= ADMIN_MAX_COLS)
		return;
	if (at <= 0) {
		admin_put_text(t, NULL);
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(t->cells[t->n], sizeof(t->cells[0]), "%Y-%m-%d %H:%M:%S UTC", &tm);
	admin_put_text(t, t->cells[t->n]);
}

void admin_tbl_row(struct admin_table *t)
{
	while (t->n < t->ncols)
		admin_put_text(t, NULL); /* a view that forgot a column still frames */
	if (t->rc == 0)
		t->rc = proto_put_data_row(&t->b, t->vals, t->ncols);
	t->nrows++;
	t->n = 0;
}

void admin_tbl_end(struct proxy_client *c, struct admin_table *t, const char *tag)
{
	if (t->rc == 0)
		t->rc = proto_put_command_complete(&t->b, tag);
	if (t->rc == 0)
		t->rc = proto_put_rfq(&t->b, 'I');
	(void)proxy_client_send(c, &t->b, t->rc);
}

/* ---- the stats period ---- */

static uint64_t rate(uint64_t now, uint64_t before, double seconds)
{
	return now > before ? (uint64_t)((double)(now - before) / seconds) : 0;
}

static uint64_t mean(uint64_t t_now, uint64_t t_before, uint64_t n_now, uint64_t n_before)
{
	return n_now > n_before && t_now > t_before ? (t_now - t_before) / (n_now - n_before) : 0;
}

void proxy_admin_stats_period(struct proxy_ctx *ctx, double seconds)
{
	struct pool *p, *tmp;

	if (seconds <= 0)
		return;
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		const struct pool_stats *c = &p->st, *o = &p->prev;
		struct pool_stats *a = &p->avg;

		a->xact_count = rate(c->xact_count, o->xact_count, seconds);
		a->query_count = rate(c->query_count, o->query_count, seconds);
		a->bytes_recv = rate(c->bytes_recv, o->bytes_recv, seconds);
		a->bytes_sent = rate(c->bytes_sent, o->bytes_sent, seconds);
		a->server_assignments = rate(c->server_assignments, o->server_assignments, seconds);
		a->client_parses = rate(c->client_parses, o->client_parses, seconds);
		a->server_parses = rate(c->server_parses, o->server_parses, seconds);
		a->client_binds = rate(c->client_binds, o->client_binds, seconds);
		a->server_binds = rate(c->server_binds, o->server_binds, seconds);
		a->xact_time = mean(c->xact_time, o->xact_time, c->xact_count, o->xact_count);
		a->query_time = mean(c->query_time, o->query_time, c->query_count, o->query_count);
		a->wait_time = mean(c->wait_time, o->wait_time, c->server_assignments,
		                    o->server_assignments);
		p->prev = p->st;
	}
}

/* ---- helpers ---- */

/* Pools sorted by database name (then user), so views group and list in a
 * stable order. Caller frees; NULL with *n 0 when there are none or memory
 * is short (the view is then empty). */
static int cmp_pool(const void *a, const void *b)
{
	const struct pool *x = *(struct pool *const *)a, *y = *(struct pool *const *)b;
	int d = strcmp(x->db_name, y->db_name);

	return d ? d : strcmp(x->user, y->user);
}

static struct pool **sorted_pools(struct proxy_ctx *ctx, size_t *n)
{
	struct pool *p, *tmp, **v;
	size_t i = 0, count = HASH_COUNT(ctx->pools.by_key);

	*n = 0;
	if (count == 0 || !(v = malloc(count * sizeof(*v)))) // NOLINT(bugprone-sizeof-expression)
		return NULL;
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	v[i++] = p;
	qsort(v, count, sizeof(*v), cmp_pool); // NOLINT(bugprone-sizeof-expression)
	*n = count;
	return v;
}

/* "host:port" of a socket address into <addr> and <port>. */
void admin_sock_name(const struct sockaddr_storage *ss, char *addr, size_t len, int *port)
{
	*port = 0;
	addr[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	} else if (ss->ss_family == AF_UNIX) {
		snprintf(addr, len, "unix");
	}
}

/* ---- SHOW HELP / VERSION / STATE ---- */

static void show_help(struct proxy_client *c)
{
	static const char text[] =
	        "Console usage\n"
	        "\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
	        "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|LISTS|MEM|STATE\n"
	        "\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|DNS_HOSTS|DNS_ZONES\n"
	        "\tSHOW QUERIES [ORDER BY col] [LIMIT n]|SLOW|CLASSES|NPLUSONE\n"
	        "\tSHOW PINS\n"
	        "\tSET key = arg\n"
	        "\tRELOAD\n"
	        "\tPAUSE [<db>]\n"
	        "\tRESUME [<db>]\n"
	        "\tSUSPEND\n"
	        "\tDISABLE <db>\n"
	        "\tENABLE <db>\n"
	        "\tRECONNECT [<db>]\n"
	        "\tKILL [<db>]\n"
	        "\tKILL_CLIENT <id>\n"
	        "\tSHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]\n"
	        "\tWAIT_CLOSE [<db>]\n"
	        "\tRESET STATS";
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_notice(&b, "NOTICE", "00000", text, NULL, NULL);
	if (rc == 0)
		rc = proto_put_command_complete(&b, "SHOW");
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	(void)proxy_client_send(c, &b, rc);
}

static void show_version(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"version", TX}};
	struct admin_table t;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	admin_put_text(&t, ADMIN_VERSION);
	admin_tbl_row(&t);
	admin_tbl_end(c, &t, "SHOW");
}

static void show_state(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"key", TX}, {"value", TX}};
	struct proxy_admin *a = admin_state(c->ctx);
	bool paused = a && a->all_paused;
	struct admin_table t;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	admin_put_text(&t, "active");
	admin_put_text(&t, paused || c->ctx->suspended ? "no" : "yes");
	admin_tbl_row(&t);
	admin_put_text(&t, "paused");
	admin_put_text(&t, paused ? "yes" : "no");
	admin_tbl_row(&t);
	admin_put_text(&t, "suspended");
	admin_put_text(&t, c->ctx->suspended ? "yes" : "no");
	admin_tbl_row(&t);
	admin_tbl_end(c, &t, "SHOW");
}

/* ---- SHOW CONFIG ---- */

enum ckind { C_STR, C_INT, C_BOOL, C_DUR, C_SIZE, C_LIST, C_MODE, C_AUTH };

struct config_key {
	const char *name;
	enum ckind kind;
	size_t off;
	size_t off_n; /* C_LIST: the count */
};

#define CK(n, k, f)                                                                                \
	{                                                                                          \
		n, k, offsetof(struct conf, f), 0                                                  \
	}
#define CKL(n, f, c)                                                                               \
	{                                                                                          \
		n, C_LIST, offsetof(struct conf, f), offsetof(struct conf, c)                      \
	}
static const struct config_key config_keys[] = {
        CKL("admin_users", admin_users, nadmin_users),
        CK("admin_db", C_STR, admin_db),
        CK("auth_file", C_STR, auth_file),
        CK("auth_type", C_AUTH, auth_type),
        CK("autodb_idle_timeout", C_DUR, autodb_idle_timeout),
        CK("client_idle_timeout", C_DUR, client_idle_timeout),
        CK("client_login_timeout", C_DUR, client_login_timeout),
        CK("client_tls_ca_file", C_STR, client_tls_ca_file),
        CK("client_tls_cert_file", C_STR, client_tls_cert_file),
        CK("client_tls_key_file", C_STR, client_tls_key_file),
        CK("client_tls_sslmode", C_STR, client_tls_sslmode_str),
        CK("conffile", C_STR, path),
        CK("default_pool_size", C_INT, default_pool_size),
        CK("dns_max_ttl", C_DUR, dns_max_ttl),
        CK("dns_nxdomain_ttl", C_DUR, dns_nxdomain_ttl),
        CK("idle_transaction_timeout", C_DUR, idle_transaction_timeout),
        CK("ignore_startup_parameters", C_STR, ignore_startup_parameters),
        CK("listen_addr", C_STR, listen_addr),
        CK("listen_port", C_INT, listen_port),
        CK("logfile", C_STR, logfile),
        CK("max_client_conn", C_INT, max_client_conn),
        CK("max_db_connections", C_INT, max_db_connections),
        CK("max_login_clients", C_INT, max_login_clients),
        CK("max_prepared_statements", C_INT, max_prepared_statements),
        CK("max_tracked_statements", C_INT, max_tracked_statements),
        CK("max_user_connections", C_INT, max_user_connections),
        CK("min_pool_size", C_INT, min_pool_size),
        CK("nplusone_threshold", C_INT, nplusone_threshold),
        CK("nplusone_window_ms", C_INT, nplusone_window_ms),
        CK("pidfile", C_STR, pidfile),
        CK("pkt_buf", C_SIZE, pkt_buf),
        CK("pool_mode", C_MODE, pool_mode),
        CK("query_timeout", C_DUR, query_timeout),
        CK("query_wait_timeout", C_DUR, query_wait_timeout),
        CK("server_check_delay", C_DUR, server_check_delay),
        CK("server_check_query", C_STR, server_check_query),
        CK("server_connect_timeout", C_DUR, server_connect_timeout),
        CK("server_idle_timeout", C_DUR, server_idle_timeout),
        CK("server_lifetime", C_DUR, server_lifetime),
        CK("server_login_retry", C_DUR, server_login_retry),
        CK("server_reset_query", C_STR, server_reset_query),
        CK("server_reset_query_always", C_BOOL, server_reset_query_always),
        CK("server_tls_ca_file", C_STR, server_tls_ca_file),
        CK("server_tls_cert_file", C_STR, server_tls_cert_file),
        CK("server_tls_key_file", C_STR, server_tls_key_file),
        CK("slow_query_log_size", C_INT, slow_query_log_size),
        CK("slow_query_ms", C_INT, slow_query_ms),
        CK("stats_listen", C_STR, stats_listen),
        CK("stats_period", C_DUR, stats_period),
        CKL("stats_users", stats_users, nstats_users),
        CK("track_extra_parameters", C_STR, track_extra_parameters),
        CK("track_literals", C_BOOL, track_literals),
        CK("track_statements", C_BOOL, track_statements),
        CK("pin_session_state", C_BOOL, pin_session_state),
        CK("verbose", C_INT, verbose),
};
#undef CK
#undef CKL

/* The value of <k> in <cf> as PgBouncer prints it: numbers plain, booleans
 * 0/1, durations in seconds, lists comma-separated; NULL for an unset
 * path, as PgBouncer shows it. */
static const char *config_value(const struct conf *cf, const struct config_key *k, char *buf,
                                size_t len)
{
	const char *base = (const char *)cf + k->off;

	switch (k->kind) {
	case C_STR:
		return *(char *const *)base ? *(char *const *)base : "";
	case C_INT:
		snprintf(buf, len, "%d", *(const int *)base);
		return buf;
	case C_BOOL:
		return *(const bool *)base ? "1" : "0";
	case C_DUR:
		snprintf(buf, len, "%g", *(const double *)base);
		return buf;
	case C_SIZE:
		snprintf(buf, len, "%zu", *(const size_t *)base);
		return buf;
	case C_MODE:
		return conf_pool_mode_name(*(const enum conf_pool_mode *)base);
	case C_AUTH:
		switch (*(const enum conf_auth_type *)base) {
		case CONF_AUTH_TRUST:
			return "trust";
		case CONF_AUTH_SCRAM:
			return "scram-sha-256";
		case CONF_AUTH_PLAIN:
			return "plain";
		default:
			return "md5";
		}
	case C_LIST: {
		char *const *v = *(char *const *const *)base;
		size_t n = *(const size_t *)((const char *)cf + k->off_n), o = 0;

		buf[0] = '\0';
		for (size_t i = 0; i < n && o + 1 < len; i++)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "", v[i]);
		return buf;
	}
	}
	return "";
}

static void show_config(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"key", TX}, {"value", TX}, {"default", TX}, {"changeable", TX}};
	struct conf def;
	struct admin_table t;

	conf_init_defaults(&def);
	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		char v[512], d[512];

		admin_put_text(&t, k->name);
		admin_put_text(&t, config_value(c->ctx->conf, k, v, sizeof(v)));
		admin_put_text(&t, config_value(&def, k, d, sizeof(d)));
		admin_put_text(&t, conf_changeable(k->name) ? "yes" : "no");
		admin_tbl_row(&t);
	}
	conf_free(&def);
	admin_tbl_end(c, &t, "SHOW");
}

/* ---- SHOW DATABASES / POOLS / USERS ---- */

static void show_databases(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"name", TX},
	        {"host", TX},
	        {"port", I4},
	        {"database", TX},
	        {"force_user", TX},
	        {"pool_size", I4},
	        {"min_pool_size", I4},
	        {"reserve_pool_size", I4},
	        {"server_lifetime", I4},
	        {"pool_mode", TX},
	        {"load_balance_hosts", TX},
	        {"max_connections", I4},
	        {"current_connections", I4},
	        {"max_client_connections", I4},
	        {"current_client_connections", I4},
	        {"paused", I4},
	        {"disabled", I4},
	};
	const struct conf *cf = c->ctx->conf;
	struct admin_table t;
	size_t admin_clients = 0;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < cf->ndbs; i++) {
		const struct conf_db *db = &cf->dbs[i];
		size_t servers = 0, clients = 0;
		struct pool *p, *tmp;

		HASH_ITER(hh, c->ctx->pools.by_key, p, tmp)
		{
			if (p->db == db) {
				servers += pool_server_count(p);
				clients += p->n_clients;
			}
		}
		admin_put_text(&t, db->name);
		admin_put_text(&t, db->host);
		admin_put_int(&t, db->port);
		admin_put_text(&t, db->dbname ? db->dbname : db->name);
		admin_put_text(&t, db->user);
		admin_put_int(&t, db->pool_size >= 0 ? db->pool_size : cf->default_pool_size);
		admin_put_int(&t, db->min_pool_size >= 0 ? db->min_pool_size : cf->min_pool_size);
		admin_put_int(&t, 0); /* no reserve pool */
		admin_put_int(&t, (long long)cf->server_lifetime);
		admin_put_text(&t, db->pool_mode == CONF_POOL_UNSET
		                           ? NULL
		                           : conf_pool_mode_name(db->pool_mode));
		admin_put_text(&t, NULL); /* one host per entry */
		admin_put_int(&t, db->max_db_connections ? db->max_db_connections
		                                         : cf->max_db_connections);
		admin_put_u64(&t, servers);
		admin_put_int(&t, 0); /* no per-database client limit */
		admin_put_u64(&t, clients);
		admin_put_int(&t, proxy_admin_paused(c->ctx, db->name));
		admin_put_int(&t, proxy_admin_disabled(c->ctx, db->name));
		admin_tbl_row(&t);
	}
	/* the console itself, as PgBouncer lists its "pgbouncer" database */
	for (struct pool_node *n = c->ctx->clients.head.next; n != &c->ctx->clients.head;
	     n = n->next)
		admin_clients += ((struct proxy_client *)n->owner)->state == PROXY_CL_ADMIN;
	admin_put_text(&t, cf->admin_db);
	admin_put_text(&t, NULL);
	admin_put_int(&t, cf->listen_port);
	admin_put_text(&t, cf->admin_db);
	admin_put_text(&t, "pgbouncer");
	admin_put_int(&t, 2);
	admin_put_int(&t, 0);
	admin_put_int(&t, 0);
	admin_put_int(&t, 0);
	admin_put_text(&t, "statement");
	admin_put_text(&t, NULL);
	admin_put_int(&t, 0);
	admin_put_int(&t, 0);
	admin_put_int(&t, 0);
	admin_put_u64(&t, admin_clients);
	admin_put_int(&t, 0);
	admin_put_int(&t, 0);
	admin_tbl_row(&t);
	admin_tbl_end(c, &t, "SHOW");
}

static void show_pools(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"database", TX},
	        {"user", TX},
	        {"cl_active", I4},
	        {"cl_waiting", I4},
	        {"cl_active_cancel_req", I4},
	        {"cl_waiting_cancel_req", I4},
	        {"sv_active", I4},
	        {"sv_active_cancel", I4},
	        {"sv_being_canceled", I4},
	        {"sv_idle", I4},
	        {"sv_used", I4},
	        {"sv_tested", I4},
	        {"sv_login", I4},
	        {"maxwait", I4},
	        {"maxwait_us", I4},
	        {"pool_mode", TX},
	        {"load_balance_hosts", TX},
	};
	struct proxy_ctx *ctx = c->ctx;
	struct admin_table t;
	size_t np;
	struct pool **v = sorted_pools(ctx, &np);
	double now = proxy_now(ctx);

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < np; i++) {
		struct pool *p = v[i];
		size_t sv_active = 0, active_cancel = 0, being_canceled = 0, tested = 0, used = 0;
		double maxwait = 0;
		struct pool_node *n = pool_list_first(&p->waiting);

		if (n)
			maxwait = now - ((struct proxy_client *)n->owner)->wait_since;
		for (n = p->used.head.next; n != &p->used.head; n = n->next) {
			const struct proxy_server *sv = n->owner;

			if (proxy_server_held(sv))
				being_canceled++;
			else if (sv->state == PROXY_SV_ACTIVE && sv->cancels.n > 0)
				active_cancel++;
			else if (sv->state == PROXY_SV_ACTIVE)
				sv_active++;
			else if (sv->state == PROXY_SV_RESET)
				tested++;
			else
				used++;
		}
		if (maxwait < 0)
			maxwait = 0;
		admin_put_text(&t, p->db_name);
		admin_put_text(&t, p->user);
		admin_put_u64(&t, p->cl_active.n + p->cl_idle.n);
		admin_put_u64(&t, p->waiting.n + p->logins.n);
		admin_put_int(&t, 0);
		admin_put_int(&t, 0);
		admin_put_u64(&t, sv_active);
		admin_put_u64(&t, active_cancel);
		admin_put_u64(&t, being_canceled);
		admin_put_u64(&t, p->idle.n);
		admin_put_u64(&t, used);
		admin_put_u64(&t, tested);
		admin_put_u64(&t, p->connecting.n);
		admin_put_int(&t, (long long)maxwait);
		admin_put_int(&t, (long long)((maxwait - (double)(long long)maxwait) * 1e6));
		admin_put_text(&t, conf_pool_mode_name(p->mode));
		admin_put_text(&t, NULL);
		admin_tbl_row(&t);
	}
	free(v);
	admin_tbl_end(c, &t, "SHOW");
}

static void show_users(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"name", TX},
	        {"pool_size", I4},
	        {"reserve_pool_size", I4},
	        {"pool_mode", TX},
	        {"max_user_connections", I4},
	        {"current_connections", I4},
	        {"max_user_client_connections", I4},
	        {"current_client_connections", I4},
	};
	struct proxy_ctx *ctx = c->ctx;
	const struct conf *cf = ctx->conf;
	struct admin_table t;
	size_t total = ctx->auth.n + cf->nusers;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < total; i++) {
		const char *name =
		        i < ctx->auth.n ? ctx->auth.v[i].user : cf->users[i - ctx->auth.n].name;
		const struct conf_user *u = conf_find_user(cf, name);
		size_t servers = 0, clients = 0;
		struct pool *p, *tmp;

		if (i >= ctx->auth.n && conf_auth_lookup(&ctx->auth, name))
			continue; /* listed already from the auth file */
		HASH_ITER(hh, ctx->pools.by_key, p, tmp)
		{
			if (strcmp(p->server_user, name) == 0)
				servers += pool_server_count(p);
			if (strcmp(p->user, name) == 0)
				clients += p->n_clients;
		}
		admin_put_text(&t, name);
		admin_put_text(&t, NULL);
		admin_put_text(&t, NULL);
		admin_put_text(&t, u && u->pool_mode != CONF_POOL_UNSET
		                           ? conf_pool_mode_name(u->pool_mode)
		                           : NULL);
		admin_put_int(&t, u && u->max_user_connections ? u->max_user_connections
		                                               : cf->max_user_connections);
		admin_put_u64(&t, servers);
		admin_put_int(&t, 0);
		admin_put_u64(&t, clients);
		admin_tbl_row(&t);
	}
	admin_tbl_end(c, &t, "SHOW");
}

/* ---- SHOW STATS / STATS_TOTALS / STATS_AVERAGES / TOTALS ---- */

/* The figures of one database: its pools summed. Averages of times are
 * weighted by the counts they are means of. */
struct db_figures {
	struct pool_stats st, avg;
};

static void add_figures(struct db_figures *f, const struct pool *p)
{
	const struct pool_stats *s = &p->st, *a = &p->avg;

	f->st.xact_count += s->xact_count;
	f->st.query_count += s->query_count;
	f->st.bytes_recv += s->bytes_recv;
	f->st.bytes_sent += s->bytes_sent;
	f->st.xact_time += s->xact_time;
	f->st.query_time += s->query_time;
	f->st.wait_time += s->wait_time;
	f->st.server_assignments += s->server_assignments;
	f->st.client_parses += s->client_parses;
	f->st.server_parses += s->server_parses;
	f->st.client_binds += s->client_binds;
	f->st.server_binds += s->server_binds;
	/* time sums weighted by rate here; divided in finish_figures */
	f->avg.xact_time += a->xact_time * a->xact_count;
	f->avg.query_time += a->query_time * a->query_count;
	f->avg.wait_time += a->wait_time * a->server_assignments;
	f->avg.xact_count += a->xact_count;
	f->avg.query_count += a->query_count;
	f->avg.bytes_recv += a->bytes_recv;
	f->avg.bytes_sent += a->bytes_sent;
	f->avg.server_assignments += a->server_assignments;
	f->avg.client_parses += a->client_parses;
	f->avg.server_parses += a->server_parses;
	f->avg.client_binds += a->client_binds;
	f->avg.server_binds += a->server_binds;
}

static void finish_figures(struct db_figures *f)
{
	f->avg.xact_time = f->avg.xact_count ? f->avg.xact_time / f->avg.xact_count : 0;
	f->avg.query_time = f->avg.query_count ? f->avg.query_time / f->avg.query_count : 0;
	f->avg.wait_time =
	        f->avg.server_assignments ? f->avg.wait_time / f->avg.server_assignments : 0;
}

/* The eleven figures in PgBouncer's order: assignments, xacts, queries,
 * bytes in, bytes out, xact time, query time, wait time, client parses,
 * server parses, binds. */
static void put_figures(struct admin_table *t, const struct pool_stats *s)
{
	admin_put_u64(t, s->server_assignments);
	admin_put_u64(t, s->xact_count);
	admin_put_u64(t, s->query_count);
	admin_put_u64(t, s->bytes_recv);
	admin_put_u64(t, s->bytes_sent);
	admin_put_u64(t, s->xact_time);
	admin_put_u64(t, s->query_time);
	admin_put_u64(t, s->wait_time);
	admin_put_u64(t, s->client_parses);
	admin_put_u64(t, s->server_parses);
	admin_put_u64(t, s->server_binds);
}

static const char *const figure_names[] = {
        "server_assignment_count",
        "xact_count",
        "query_count",
        "received",
        "sent",
        "xact_time",
        "query_time",
        "wait_time",
        "client_parse_count",
        "server_parse_count",
        "bind_count",
};
/* STATS_TOTALS / STATS_AVERAGES name the byte columns differently */
static const char *const subset_names[] = {
        "server_assignment_count",
        "xact_count",
        "query_count",
        "bytes_received",
        "bytes_sent",
        "xact_time",
        "query_time",
        "wait_time",
        "client_parse_count",
        "server_parse_count",
        "bind_count",
};
#define NFIG 11

/* <which>: 's' STATS, 't' STATS_TOTALS, 'a' STATS_AVERAGES. */
static void show_stats(struct proxy_client *c, char which)
{
	struct admin_col cols[1 + 2 * NFIG];
	char names[2 * NFIG][40];
	size_t ncols = 1, np;
	struct pool **v = sorted_pools(c->ctx, &np);
	struct admin_table t;

	cols[0] = (struct admin_col){"database", TX};
	for (int half = 0; half < 2; half++) {
		if ((which == 't' && half == 1) || (which == 'a' && half == 0))
			continue;
		for (int i = 0; i < NFIG; i++) {
			char *nm = names[half * NFIG + i];

			if (which != 's')
				snprintf(nm, 40, "%s", subset_names[i]);
			else if (half == 1 && i == 3)
				snprintf(nm, 40, "avg_recv");
			else
				snprintf(nm, 40, "%s_%s", half ? "avg" : "total", figure_names[i]);
			cols[ncols++] = (struct admin_col){nm, NU};
		}
	}
	admin_tbl_begin(&t, cols, ncols);
	for (size_t i = 0; i < np;) {
		struct db_figures f;
		size_t j = i;

		memset(&f, 0, sizeof(f));
		while (j < np && strcmp(v[j]->db_name, v[i]->db_name) == 0)
			add_figures(&f, v[j++]);
		finish_figures(&f);
		admin_put_text(&t, v[i]->db_name);
		if (which != 'a')
			put_figures(&t, &f.st);
		if (which != 't')
			put_figures(&t, &f.avg);
		admin_tbl_row(&t);
		i = j;
	}
	free(v);
	admin_tbl_end(c, &t, "SHOW");
}

static void show_totals(struct proxy_client *c)
{
	/* PgBouncer's row names; bytes are "client"/"server" bytes here */
	static const char *const names[NFIG] = {
	        "server_assignment_count",
	        "xact_count",
	        "query_count",
	        "client_bytes",
	        "server_bytes",
	        "xact_time",
	        "query_time",
	        "wait_time",
	        "client_parse_count",
	        "server_parse_count",
	        "bind_count",
	};
	static const struct admin_col cols[] = {{"name", TX}, {"value", NU}};
	struct db_figures f;
	struct pool *p, *tmp;
	struct admin_table t;
	uint64_t vals[2][NFIG];

	memset(&f, 0, sizeof(f));
	HASH_ITER(hh, c->ctx->pools.by_key, p, tmp)
	add_figures(&f, p);
	finish_figures(&f);
	for (int h = 0; h < 2; h++) {
		const struct pool_stats *s = h ? &f.avg : &f.st;
		uint64_t row[NFIG] = {s->server_assignments, s->xact_count,  s->query_count,
		                      s->bytes_recv,         s->bytes_sent,  s->xact_time,
		                      s->query_time,         s->wait_time,   s->client_parses,
		                      s->server_parses,      s->server_binds};

		memcpy(vals[h], row, sizeof(row));
	}
	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (int h = 0; h < 2; h++) {
		for (int i = 0; i < NFIG; i++) {
			char nm[48];

			snprintf(nm, sizeof(nm), "%s_%s", h ? "avg" : "total", names[i]);
			admin_put_text(&t, nm);
			admin_put_u64(&t, vals[h][i]);
			admin_tbl_row(&t);
		}
	}
	admin_tbl_end(c, &t, "SHOW");
}

/* ---- SHOW LISTS / MEM / FDS / DNS_HOSTS / DNS_ZONES ---- */

static void show_lists(struct proxy_client *c)
{
	static const struct admin_col cols[] = {{"list", TX}, {"items", I4}};
	struct proxy_ctx *ctx = c->ctx;
	size_t cl_cap = ctx->client_slab.nchunks * ctx->client_slab.per_chunk;
	size_t sv_cap = ctx->server_slab.nchunks * ctx->server_slab.per_chunk;
	size_t dns_inflight = 0, dns_names = proxy_dns_hosts(ctx, NULL, NULL, &dns_inflight);
	const struct {
		const char *name;
		size_t n;
	} rows[] = {
	        {"databases", ctx->conf->ndbs},
	        {"users", ctx->auth.n},
	        {"pools", HASH_COUNT(ctx->pools.by_key)},
	        {"free_clients",
	         cl_cap > ctx->client_slab.nobjs ? cl_cap - ctx->client_slab.nobjs : 0},
	        {"used_clients", ctx->clients.n},
	        {"login_clients", ctx->nlogins},
	        {"free_servers",
	         sv_cap > ctx->server_slab.nobjs ? sv_cap - ctx->server_slab.nobjs : 0},
	        {"used_servers", ctx->servers.n},
	        {"dns_names", dns_names},
	        {"dns_zones", 0},
	        {"dns_queries", dns_inflight}, /* lookups in flight */
	        {"dns_pending", 0},            /* unused in PgBouncer too */
	};
	struct admin_table t;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < NCOLS(rows); i++) {
		admin_put_text(&t, rows[i].name);
		admin_put_u64(&t, rows[i].n);
		admin_tbl_row(&t);
	}
	admin_tbl_end(c, &t, "SHOW");
}

/* One row per kind of object sluice keeps: connection slabs, the
 * prepared-statement registry, the statement statistics. */
static void show_mem(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"name", TX}, {"size", I4}, {"used", I4}, {"free", I4}, {"memtotal", I4}};
	struct proxy_ctx *ctx = c->ctx;
	const struct proxy_slab *slabs[] = {&ctx->client_slab, &ctx->server_slab};
	const char *slab_names[] = {"client_cache", "server_cache"};
	struct admin_table t;
	size_t n, bytes, sbytes = stats_mem(ctx->stats);

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (int i = 0; i < 2; i++) {
		size_t cap = slabs[i]->nchunks * slabs[i]->per_chunk;

		admin_put_text(&t, slab_names[i]);
		admin_put_u64(&t, slabs[i]->size);
		admin_put_u64(&t, slabs[i]->nobjs);
		admin_put_u64(&t, cap > slabs[i]->nobjs ? cap - slabs[i]->nobjs : 0);
		admin_put_u64(&t, cap * slabs[i]->size);
		admin_tbl_row(&t);
	}
	proxy_ps_registry(ctx, &n, &bytes);
	admin_put_text(&t, "prepared_statement");
	admin_put_u64(&t, n ? bytes / n : 0);
	admin_put_u64(&t, n);
	admin_put_int(&t, 0);
	admin_put_u64(&t, bytes);
	admin_tbl_row(&t);
	admin_put_text(&t, "statement_stats");
	admin_put_u64(&t, sbytes);
	admin_put_int(&t, 1);
	admin_put_int(&t, 0);
	admin_put_u64(&t, sbytes);
	admin_tbl_row(&t);
	admin_tbl_end(c, &t, "SHOW");
}

/* Descriptors in use. Secrets are never shown: the password and SCRAM key
 * columns, which PgBouncer fills for its online restart, stay NULL. */
static void show_fds(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"fd", I4},
	        {"task", TX},
	        {"user", TX},
	        {"database", TX},
	        {"addr", TX},
	        {"port", I4},
	        {"cancel", I8},
	        {"link", I4},
	        {"client_encoding", TX},
	        {"std_strings", TX},
	        {"datestyle", TX},
	        {"timezone", TX},
	        {"password", TX},
	        {"scram_client_key", BY},
	        {"scram_server_key", BY},
	};
	struct proxy_ctx *ctx = c->ctx;
	struct admin_table t;

	admin_tbl_begin(&t, cols, NCOLS(cols));
	for (size_t i = 0; i < ctx->nlisteners; i++) {
		admin_put_int(&t, ctx->listeners[i].io.fd);
		admin_put_text(&t, "pooler");
		admin_tbl_row(&t);
	}
	for (struct pool_node *n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		struct proxy_client *cl = n->owner;
		char addr[64];

		snprintf(addr, sizeof(addr), "%s", cl->addr);
		admin_put_int(&t, cl->io.fd);
		admin_put_text(&t, "client");
		admin_put_text(&t, cl->user);
		admin_put_text(&t, cl->db_name);
		admin_put_text(&t, addr);
		admin_put_int(&t, 0);
		admin_put_u64(&t, ((uint64_t)cl->cancel_pid << 32) | cl->cancel_key);
		if (cl->server)
			admin_put_int(&t, cl->server->io.fd);
		else
			admin_put_text(&t, NULL);
		admin_put_text(&t, cl->vars[PROXY_VAR_CLIENT_ENCODING]);
		admin_put_text(&t, cl->vars[PROXY_VAR_STD_STRINGS]);
		admin_put_text(&t, cl->vars[PROXY_VAR_DATESTYLE]);
		admin_put_text(&t, cl->vars[PROXY_VAR_TIMEZONE]);
		admin_tbl_row(&t);
	}
	for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		struct proxy_server *s = n->owner;
		char addr[64];
		int port;

		admin_sock_name(&s->addr, addr, sizeof(addr), &port);
		admin_put_int(&t, s->io.fd);
		admin_put_text(&t, "server");
		admin_put_text(&t, s->pool->server_user);
		admin_put_text(&t, s->pool->db_name);
		admin_put_text(&t, addr);
		admin_put_int(&t, port);
		admin_put_u64(&t, ((uint64_t)s->be_pid << 32) | s->be_key);
		if (s->client)
			admin_put_int(&t, s->client->io.fd);
		else
			admin_put_text(&t, NULL);
		admin_put_text(&t, s->vars[PROXY_VAR_CLIENT_ENCODING]);
		admin_put_text(&t, s->vars[PROXY_VAR_STD_STRINGS]);
		admin_put_text(&t, s->vars[PROXY_VAR_DATESTYLE]);
		admin_put_text(&t, s->vars[PROXY_VAR_TIMEZONE]);
		admin_tbl_row(&t);
	}
	admin_tbl_end(c, &t, "SHOW");
}

static void dns_host_row(void *arg, const char *host, double ttl_s, const char *addrs)
{
	struct admin_table *t = arg;

	admin_put_text(t, host);
	admin_put_int(t, (long long)ttl_s);
	admin_put_text(t, addrs);
	admin_tbl_row(t);
}

/* DNS_HOSTS: the names dns.c has answers for, with the seconds those still
 * hold. DNS_ZONES: PgBouncer fills it only from its zone-serial checks
 * (dns_zone_check_period), which sluice does not do: its layout, no rows. */
static void show_dns(struct proxy_client *c, bool zones)
{
	static const struct admin_col hosts[] = {{"hostname", TX}, {"ttl", I8}, {"addrs", TX}};
	static const struct admin_col zcols[] = {{"zonename", TX}, {"serial", I8}, {"count", I4}};
	struct admin_table t;

	admin_tbl_begin(&t, zones ? zcols : hosts, 3);
	if (!zones)
		(void)proxy_dns_hosts(c->ctx, dns_host_row, &t, NULL);
	admin_tbl_end(c, &t, "SHOW");
}

bool proxy_admin_view(struct proxy_client *c, const char *what)
{
	if (strcmp(what, "help") == 0)
		show_help(c);
	else if (strcmp(what, "version") == 0)
		show_version(c);
	else if (strcmp(what, "state") == 0)
		show_state(c);
	else if (strcmp(what, "config") == 0)
		show_config(c);
	else if (strcmp(what, "databases") == 0)
		show_databases(c);
	else if (strcmp(what, "pools") == 0)
		show_pools(c);
	else if (strcmp(what, "users") == 0)
		show_users(c);
	else if (strcmp(what, "clients") == 0)
		admin_show_conns(c, 'C');
	else if (strcmp(what, "servers") == 0)
		admin_show_conns(c, 'S');
	else if (strcmp(what, "sockets") == 0)
		admin_show_conns(c, 's');
	else if (strcmp(what, "active_sockets") == 0)
		admin_show_conns(c, 'a');
	else if (strcmp(what, "stats") == 0)
		show_stats(c, 's');
	else if (strcmp(what, "stats_totals") == 0)
		show_stats(c, 't');
	else if (strcmp(what, "stats_averages") == 0)
		show_stats(c, 'a');
	else if (strcmp(what, "totals") == 0)
		show_totals(c);
	else if (strcmp(what, "lists") == 0)
		show_lists(c);
	else if (strcmp(what, "mem") == 0)
		show_mem(c);
	else if (strcmp(what, "fds") == 0)
		show_fds(c);
	else if (strcmp(what, "dns_hosts") == 0)
		show_dns(c, false);
	else if (strcmp(what, "dns_zones") == 0)
		show_dns(c, true);
	else
		return false;
	return true;
}
