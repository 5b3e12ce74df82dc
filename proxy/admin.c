/*
 * Admin console: the pseudo-database (admin_db, default "sluice") that
 * answers SHOW commands with PgBouncer-compatible column layouts, and runs
 * RELOAD and SHUTDOWN for admin users. Only the simple query protocol is
 * spoken here, as in PgBouncer's console.
 */
#include "proxy/proxy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats/stats.h"

#define ADMIN_VERSION "sluice 0.1.0"

struct result {
	struct proto_buf b;
	size_t ncols;
	size_t nrows;
	int rc;
};

static void res_begin(struct result *r, const char *const *cols, size_t n)
{
	proto_buf_init(&r->b);
	r->ncols = n;
	r->nrows = 0;
	r->rc = proto_put_row_desc(&r->b, cols, n);
}

static void res_row(struct result *r, const char *const *vals)
{
	if (r->rc == 0)
		r->rc = proto_put_data_row(&r->b, vals, r->ncols);
	r->nrows++;
}

static void res_end(struct proxy_client *c, struct result *r, const char *tag)
{
	char t[64];

	snprintf(t, sizeof(t), "%s", tag);
	if (r->rc == 0)
		r->rc = proto_put_command_complete(&r->b, t);
	if (r->rc == 0)
		r->rc = proto_put_rfq(&r->b, 'I');
	if (r->rc < 0 ||
	    proxy_io_send(c->ctx, &c->io, proto_buf_head(&r->b), proto_buf_avail(&r->b)) < 0) {
		proto_buf_free(&r->b);
		proxy_client_close(c);
		return;
	}
	proto_buf_free(&r->b);
}

static void send_tag(struct proxy_client *c, const char *tag)
{
	struct result r = {0};

	proto_buf_init(&r.b);
	res_end(c, &r, tag);
}

void proxy_admin_welcome(struct proxy_client *c)
{
	static const char *const params[][2] = {
	        {"server_version", "15.0 (sluice 0.1.0)"},
	        {"server_encoding", "UTF8"},
	        {"client_encoding", "UTF8"},
	        {"DateStyle", "ISO, MDY"},
	        {"TimeZone", "UTC"},
	        {"integer_datetimes", "on"},
	        {"standard_conforming_strings", "on"},
	        {"is_superuser", "off"},
	};
	struct proto_buf b;
	int rc = 0;

	proto_buf_init(&b);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]) && rc == 0; i++)
		rc = proto_put_param_status(&b, params[i][0], params[i][1]);
	if (rc == 0)
		rc = proto_put_backend_key(&b, 0, 0);
	if (rc == 0)
		rc = proto_put_rfq(&b, 'I');
	if (proxy_client_send(c, &b, rc) < 0)
		return;
	if (log_current_level >= LOG_LVL_INFO) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_info("%s: admin console login", who);
	}
	proxy_client_set_state(c, PROXY_CL_ADMIN);
}

static const char *cl_state_name(const struct proxy_client *c)
{
	switch (c->state) {
	case PROXY_CL_ACTIVE:
	case PROXY_CL_IDLE:
	case PROXY_CL_ADMIN:
		return "active";
	case PROXY_CL_WAIT:
	case PROXY_CL_LOGIN:
		return "waiting";
	default:
		return "login";
	}
}

static const char *sv_state_name(const struct proxy_server *s)
{
	switch (s->state) {
	case PROXY_SV_ACTIVE:
		return "active";
	case PROXY_SV_IDLE:
		return "idle";
	case PROXY_SV_RESET:
		return "used";
	default:
		return "login";
	}
}

static void fmt_time(double t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void show_pools(struct proxy_client *c)
{
	static const char *const cols[] = {
	        "database",
	        "user",
	        "cl_active",
	        "cl_waiting",
	        "cl_active_cancel_req",
	        "cl_waiting_cancel_req",
	        "sv_active",
	        "sv_active_cancel",
	        "sv_being_canceled",
	        "sv_idle",
	        "sv_used",
	        "sv_tested",
	        "sv_login",
	        "maxwait",
	        "maxwait_us",
	        "pool_mode",
	};
	struct proxy_ctx *ctx = c->ctx;
	struct result r;
	struct pool *p, *tmp;
	double now = proxy_now(ctx);

	res_begin(&r, cols, 16);
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		size_t active = 0, waiting = p->waiting.n + p->logins.n, sv_active = 0, sv_used = 0;
		size_t being_canceled = 0, active_cancel = 0;
		double maxwait = 0;
		struct pool_node *n;
		char v[16][32];
		const char *vals[16];

		for (n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
			struct proxy_client *cl = n->owner;

			if (cl->pool == p &&
			    (cl->state == PROXY_CL_ACTIVE || cl->state == PROXY_CL_IDLE))
				active++;
		}
		for (n = p->waiting.head.next; n != &p->waiting.head; n = n->next) {
			struct proxy_client *cl = n->owner;

			if (now - cl->wait_since > maxwait)
				maxwait = now - cl->wait_since;
		}
		for (n = p->used.head.next; n != &p->used.head; n = n->next) {
			const struct proxy_server *sv = n->owner;

			if (proxy_server_held(sv))
				being_canceled++;
			else if (sv->state == PROXY_SV_ACTIVE)
				sv_active++;
			else
				sv_used++;
			if (sv->state == PROXY_SV_ACTIVE && sv->cancels.n > 0)
				active_cancel++;
		}
		snprintf(v[2], 32, "%zu", active);
		snprintf(v[3], 32, "%zu", waiting);
		snprintf(v[6], 32, "%zu", sv_active);
		snprintf(v[9], 32, "%zu", p->idle.n);
		snprintf(v[10], 32, "%zu", sv_used);
		snprintf(v[12], 32, "%zu", p->connecting.n);
		snprintf(v[13], 32, "%d", (int)maxwait);
		snprintf(v[14], 32, "%d", (int)((maxwait - (int)maxwait) * 1e6));
		for (int i = 0; i < 16; i++)
			vals[i] = v[i];
		vals[0] = p->db_name;
		vals[1] = p->user;
		snprintf(v[7], 32, "%zu", active_cancel);
		snprintf(v[8], 32, "%zu", being_canceled);
		vals[4] = vals[5] = vals[11] = "0";
		vals[15] = conf_pool_mode_name(p->mode);
		res_row(&r, vals);
	}
	res_end(c, &r, "SHOW");
}

static void show_databases(struct proxy_client *c)
{
	static const char *const cols[] = {
	        "name",
	        "host",
	        "port",
	        "database",
	        "force_user",
	        "pool_size",
	        "min_pool_size",
	        "reserve_pool",
	        "pool_mode",
	        "max_connections",
	        "current_connections",
	        "paused",
	        "disabled",
	};
	const struct conf *cf = c->ctx->conf;
	struct result r;

	res_begin(&r, cols, 13);
	for (size_t i = 0; i < cf->ndbs; i++) {
		const struct conf_db *db = &cf->dbs[i];
		char port[16], ps[16], mps[16], maxc[16], cur[16];
		size_t current = 0;
		struct pool *p, *tmp;
		const char *vals[13];

		HASH_ITER(hh, c->ctx->pools.by_key, p, tmp)
		{
			if (p->db == db)
				current += pool_server_count(p);
		}
		snprintf(port, sizeof(port), "%d", db->port);
		snprintf(ps, sizeof(ps), "%d",
		         db->pool_size >= 0 ? db->pool_size : cf->default_pool_size);
		snprintf(mps, sizeof(mps), "%d",
		         db->min_pool_size >= 0 ? db->min_pool_size : cf->min_pool_size);
		snprintf(maxc, sizeof(maxc), "%d", db->max_db_connections);
		snprintf(cur, sizeof(cur), "%zu", current);
		vals[0] = db->name;
		vals[1] = db->host;
		vals[2] = port;
		vals[3] = db->dbname ? db->dbname : db->name;
		vals[4] = db->user;
		vals[5] = ps;
		vals[6] = mps;
		vals[7] = "0";
		vals[8] = db->pool_mode == CONF_POOL_UNSET ? NULL
		                                           : conf_pool_mode_name(db->pool_mode);
		vals[9] = maxc;
		vals[10] = cur;
		vals[11] = "0";
		vals[12] = "0";
		res_row(&r, vals);
	}
	res_end(c, &r, "SHOW");
}

static void show_clients(struct proxy_client *c)
{
	static const char *const cols[] = {
	        "type", "user",         "database",     "state", "addr",
	        "port", "connect_time", "request_time", "wait",  "wait_us",
	        "ptr",  "link",         "remote_pid",   "tls",   "application_name",
	};
	struct proxy_ctx *ctx = c->ctx;
	struct result r;
	struct pool_node *n;
	double now = proxy_now(ctx);

	res_begin(&r, cols, 15);
	for (n = ctx->clients.head.next; n != &ctx->clients.head; n = n->next) {
		struct proxy_client *cl = n->owner;
		char addr[64], *port, ct[40], rt[40], w[16], wu[16], ptr[24], link[24];
		const char *vals[15];
		double wait = cl->state == PROXY_CL_WAIT ? now - cl->wait_since : 0;

		snprintf(addr, sizeof(addr), "%s", cl->addr);
		port = strrchr(addr, ':');
		if (port)
			*port++ = '\0';
		fmt_time(ctx->started_at, ct, sizeof(ct));
		fmt_time(cl->last_active, rt, sizeof(rt));
		snprintf(w, sizeof(w), "%d", (int)wait);
		snprintf(wu, sizeof(wu), "%d", (int)((wait - (int)wait) * 1e6));
		snprintf(ptr, sizeof(ptr), "C-%llu", (unsigned long long)cl->id);
		snprintf(link, sizeof(link), "S-%llu",
		         cl->server ? (unsigned long long)cl->server->id : 0ULL);
		vals[0] = "C";
		vals[1] = cl->user;
		vals[2] = cl->db_name;
		vals[3] = cl_state_name(cl);
		vals[4] = addr;
		vals[5] = port ? port : "0";
		vals[6] = ct;
		vals[7] = rt;
		vals[8] = w;
		vals[9] = wu;
		vals[10] = ptr;
		vals[11] = cl->server ? link : "";
		vals[12] = "0";
		vals[13] = NULL;
		vals[14] = cl->vars[PROXY_VAR_APPLICATION_NAME]
		                   ? cl->vars[PROXY_VAR_APPLICATION_NAME]
		                   : "";
		res_row(&r, vals);
	}
	res_end(c, &r, "SHOW");
}

static void show_servers(struct proxy_client *c)
{
	static const char *const cols[] = {
	        "type", "user",         "database",     "state", "addr",
	        "port", "connect_time", "request_time", "wait",  "wait_us",
	        "ptr",  "link",         "remote_pid",   "tls",   "application_name",
	};
	struct proxy_ctx *ctx = c->ctx;
	struct result r;
	struct pool_node *n;

	res_begin(&r, cols, 15);
	for (n = ctx->servers.head.next; n != &ctx->servers.head; n = n->next) {
		struct proxy_server *s = n->owner;
		const struct conf_db *db = s->pool->db;
		char port[16], ct[40], rt[40], ptr[24], link[24], pid[16];
		const char *vals[15];

		snprintf(port, sizeof(port), "%d", db ? db->port : 0);
		fmt_time(s->created_at, ct, sizeof(ct));
		fmt_time(s->last_used, rt, sizeof(rt));
		snprintf(ptr, sizeof(ptr), "S-%llu", (unsigned long long)s->id);
		snprintf(link, sizeof(link), "C-%llu",
		         s->client ? (unsigned long long)s->client->id : 0ULL);
		snprintf(pid, sizeof(pid), "%u", s->be_pid);
		vals[0] = "S";
		vals[1] = s->pool->server_user;
		vals[2] = s->pool->db_name;
		vals[3] = sv_state_name(s);
		vals[4] = db ? db->host : "";
		vals[5] = port;
		vals[6] = ct;
		vals[7] = rt;
		vals[8] = "0";
		vals[9] = "0";
		vals[10] = ptr;
		vals[11] = s->client ? link : "";
		vals[12] = pid;
		vals[13] = NULL;
		vals[14] = s->vars[PROXY_VAR_APPLICATION_NAME] ? s->vars[PROXY_VAR_APPLICATION_NAME]
		                                               : "";
		res_row(&r, vals);
	}
	res_end(c, &r, "SHOW");
}

static void show_version(struct proxy_client *c)
{
	static const char *const cols[] = {"version"};
	const char *vals[] = {ADMIN_VERSION};
	struct result r;

	res_begin(&r, cols, 1);
	res_row(&r, vals);
	res_end(c, &r, "SHOW");
}

/* PgBouncer's SHOW MEM layout; one row per kind of object sluice keeps
 * process-wide: the prepared-statement registry (transaction mode) and the
 * statement statistics (all their tables, in one row). */
static void show_mem(struct proxy_client *c)
{
	static const char *const cols[] = {"name", "size", "used", "free", "memtotal"};
	char size[24], used[24], total[24];
	const char *vals[] = {"prepared_statement", size, used, "0", total};
	struct result r;
	size_t n, bytes;

	char sbytes[24];
	const char *svals[] = {"statement_stats", sbytes, "1", "0", sbytes};

	proxy_ps_registry(c->ctx, &n, &bytes);
	snprintf(size, sizeof(size), "%zu", n ? bytes / n : 0);
	snprintf(used, sizeof(used), "%zu", n);
	snprintf(total, sizeof(total), "%zu", bytes);
	snprintf(sbytes, sizeof(sbytes), "%zu", stats_mem(c->ctx->stats));
	res_begin(&r, cols, 5);
	res_row(&r, vals);
	res_row(&r, svals);
	res_end(c, &r, "SHOW");
}

/* Lower-case <in> into <out>, squeeze blanks, drop a trailing ';'. */
static void normalize(const char *in, char *out, size_t len)
{
	size_t o = 0;
	bool blank = false;

	while (*in && isspace((unsigned char)*in))
		in++;
	for (; *in && o + 1 < len; in++) {
		if (isspace((unsigned char)*in)) {
			blank = true;
			continue;
		}
		if (blank && o > 0)
			out[o++] = ' ';
		blank = false;
		if (o + 1 < len)
			out[o++] = (char)tolower((unsigned char)*in);
	}
	while (o > 0 && (out[o - 1] == ';' || out[o - 1] == ' '))
		o--;
	out[o] = '\0';
}

static void run_command(struct proxy_client *c, const char *sql)
{
	char cmd[256];

	normalize(sql, cmd, sizeof(cmd));
	if (cmd[0] == '\0') {
		struct proto_buf b;

		proto_buf_init(&b);
		(void)proxy_client_send(
		        c, &b,
		        proto_put_msg(&b, 'I', NULL, 0) < 0 || proto_put_rfq(&b, 'I') < 0 ? -1 : 0);
		return;
	}
	if (strcmp(cmd, "show pools") == 0)
		show_pools(c);
	else if (strcmp(cmd, "show databases") == 0)
		show_databases(c);
	else if (strcmp(cmd, "show clients") == 0)
		show_clients(c);
	else if (strcmp(cmd, "show servers") == 0)
		show_servers(c);
	else if (strcmp(cmd, "show version") == 0)
		show_version(c);
	else if (strcmp(cmd, "show mem") == 0)
		show_mem(c);
	else if (proxy_admin_stats_command(c, cmd))
		return;
	else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "shutdown") == 0) {
		if (!c->admin) {
			proxy_client_fail(
			        c, PROXY_ERR_ADMIN_DENIED,
			        "permission denied: only admin_users may run this command");
			return;
		}
		if (cmd[0] == 'r') {
			proxy_reload(c->ctx);
			send_tag(c, "RELOAD");
		} else {
			send_tag(c, "SHUTDOWN");
			proxy_shutdown(c->ctx);
		}
	} else {
		char msg[320];

		snprintf(msg, sizeof(msg), "unknown admin command: %s", cmd);
		proxy_client_fail(c, PROXY_ERR_ADMIN_SYNTAX, "%s", msg);
	}
}

void proxy_admin_message(struct proxy_client *c, const struct proto_msg *m)
{
	struct proto_reader r;
	const char *sql;

	switch (m->type) {
	case 'Q':
		proto_reader_init(&r, m->body, m->body_len);
		sql = proto_get_str(&r);
		if (!sql) {
			proxy_client_fail(c, PROXY_ERR_PROTOCOL, "malformed Query message");
			return;
		}
		run_command(c, sql);
		return;
	case 'X':
		proxy_client_close(c);
		return;
	default:
		proxy_client_fail(
		        c, PROXY_ERR_ADMIN_PROTOCOL,
		        "the admin console supports only simple queries (got message '%c')",
		        m->type >= 32 && m->type < 127 ? m->type : '?');
		return;
	}
}
