/*
 * The ini file: read with inih, keys named as PgBouncer names them, every
 * value checked. The first problem is reported as "file:line: message".
 */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void conf_fail(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->err_line = p->line;
}

/* Long values (a query) are cut in messages so the explanation fits. */
void conf_refuse(struct parse *p, const char *what, const char *name, const char *v,
                 const char *instead)
{
	int n = (int)strlen(v);

	if (n > 60)
		conf_fail(p, "%s%s = %.57s... is not supported by sluice (%s)", what, name, v,
		          instead);
	else
		conf_fail(p, "%s%s = %s is not supported by sluice (%s)", what, name, v, instead);
}

/* fgets that counts lines and notices lines too long for inih. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	char *r = fgets(str, num, p->f);

	if (!r)
		return NULL;
	p->line++;
	size_t n = strlen(r);
	if (n > 0 && r[n - 1] != '\n' && !feof(p->f)) {
		conf_fail(p, "line longer than %d characters", num - 1);
		/* Skip the rest of it so inih sees one (truncated) line. */
		int ch;
		while ((ch = fgetc(p->f)) != EOF && ch != '\n')
			;
	}
	return r;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		fputs("sluice: out of memory\n", stderr);
		abort();
	}
	return d;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

/* Optional strings: an empty value means "not set". */
static void set_opt_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v[0] ? xstrdup(v) : NULL;
}

bool conf_parse_int(const char *v, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || *end || errno || n < lo || n > hi)
		return false;
	*out = (int)n;
	return true;
}

bool conf_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"1", "yes", "true", "on"};
	static const char *const no[] = {"0", "no", "false", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Seconds, optionally with a unit: 500ms, 10s, 5min, 1h. */
bool conf_parse_duration(const char *v, double *out)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (end == v || errno || !isfinite(d) || d < 0)
		return false;
	while (*end == ' ')
		end++;
	if (*end == 0 || strcmp(end, "s") == 0)
		*out = d;
	else if (strcmp(end, "ms") == 0)
		*out = d / 1000.0;
	else if (strcmp(end, "min") == 0)
		*out = d * 60.0;
	else if (strcmp(end, "h") == 0)
		*out = d * 3600.0;
	else
		return false;
	return true;
}

static bool parse_pool_mode(const char *v, enum conf_pool_mode *out)
{
	if (strcasecmp(v, "session") == 0)
		*out = CONF_POOL_SESSION;
	else if (strcasecmp(v, "transaction") == 0)
		*out = CONF_POOL_TRANSACTION;
	else if (strcasecmp(v, "statement") == 0)
		*out = CONF_POOL_STATEMENT;
	else
		return false;
	return true;
}

static bool parse_sslmode(const char *v, enum conf_sslmode *out)
{
	static const char *const names[] = {"disable", "allow",     "prefer",
	                                    "require", "verify-ca", "verify-full"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(v, names[i]) == 0) {
			*out = (enum conf_sslmode)i;
			return true;
		}
	}
	return false;
}

const char *conf_pool_mode_name(enum conf_pool_mode m)
{
	switch (m) {
	case CONF_POOL_SESSION:
		return "session";
	case CONF_POOL_TRANSACTION:
		return "transaction";
	case CONF_POOL_STATEMENT:
		return "statement";
	default:
		return "inherit";
	}
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Comma-separated names, blanks trimmed, empty items dropped. */
static void set_list(char ***dst, size_t *n, const char *v)
{
	free_list(*dst, *n);
	*dst = NULL;
	*n = 0;
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *s = p;
		while (*p && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			continue;
		char **nv = realloc(*dst, (*n + 1) * sizeof(char *));
		if (!nv)
			abort();
		*dst = nv;
		(*dst)[(*n)++] = strndup(s, (size_t)(e - s));
	}
}

/*
 * libpq-style "key=value key='quoted value'" list. Calls <fn> per pair;
 * returns false (after conf_fail()) on a syntax error or when <fn> does.
 */
typedef bool (*kv_fn)(struct parse *p, void *target, const char *key, const char *val);

static bool parse_kv(struct parse *p, const char *s, void *target, kv_fn fn)
{
	char key[64], val[1024];

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return true;
		size_t k = 0;
		while (*s && *s != '=' && *s != ' ' && *s != '\t') {
			if (k + 1 >= sizeof(key)) {
				conf_fail(p, "key too long");
				return false;
			}
			key[k++] = *s++;
		}
		key[k] = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '=' || k == 0) {
			conf_fail(p, "expected key=value, got \"%s\"", key);
			return false;
		}
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t n = 0;
		if (*s == '\'') {
			s++;
			for (;;) {
				if (!*s) {
					conf_fail(p, "unterminated quoted value for %s", key);
					return false;
				}
				if (*s == '\\' && s[1]) {
					s++;
				} else if (*s == '\'') {
					s++;
					break;
				}
				if (n + 1 >= sizeof(val)) {
					conf_fail(p, "value of %s too long", key);
					return false;
				}
				val[n++] = *s++;
			}
		} else {
			while (*s && *s != ' ' && *s != '\t') {
				if (n + 1 >= sizeof(val)) {
					conf_fail(p, "value of %s too long", key);
					return false;
				}
				val[n++] = *s++;
			}
		}
		val[n] = 0;
		if (!fn(p, target, key, val))
			return false;
	}
}

/* "database \"<name>\": " into <buf>, to prefix a refusal. */
static const char *db_what(const struct conf_db *db, char *buf, size_t len)
{
	snprintf(buf, len, "database \"%.64s\": ", db->name);
	return buf;
}

static bool db_key(struct parse *p, void *target, const char *key, const char *val)
{
	struct conf_db *db = target;
	char what[96];

	if (strcmp(key, "host") == 0) {
		set_str(&db->host, val);
	} else if (strcmp(key, "port") == 0) {
		if (!conf_parse_int(val, 1, 65535, &db->port)) {
			conf_fail(p, "database \"%s\": port must be 1..65535, got \"%s\"", db->name,
			          val);
			return false;
		}
	} else if (strcmp(key, "dbname") == 0) {
		set_str(&db->dbname, val);
	} else if (strcmp(key, "user") == 0) {
		set_str(&db->user, val);
	} else if (strcmp(key, "password") == 0) {
		set_str(&db->password, val);
	} else if (strcmp(key, "pool_size") == 0 || strcmp(key, "min_pool_size") == 0 ||
	           strcmp(key, "max_db_connections") == 0) {
		int *dst = key[0] == 'p'   ? &db->pool_size
		           : key[1] == 'i' ? &db->min_pool_size
		                           : &db->max_db_connections;
		if (!conf_parse_int(val, 0, 100000, dst)) {
			conf_fail(p, "database \"%s\": %s must be a number 0..100000, got \"%s\"",
			          db->name, key, val);
			return false;
		}
	} else if (strcmp(key, "pool_mode") == 0) {
		if (!parse_pool_mode(val, &db->pool_mode)) {
			conf_fail(p,
			          "database \"%s\": pool_mode must be session, transaction or "
			          "statement, got \"%s\"",
			          db->name, val);
			return false;
		}
	} else if (strcmp(key, "connect_query") == 0) {
		set_opt_str(&db->connect_query, val);
	} else if (strcmp(key, "application_name") == 0) {
		set_opt_str(&db->application_name, val);
	} else if (strcmp(key, "client_encoding") == 0 || strcmp(key, "datestyle") == 0 ||
	           strcmp(key, "timezone") == 0) {
		/* PgBouncer sets these on the server connection; sluice does not. */
		if (val[0]) {
			conf_refuse(
			        p, db_what(db, what, sizeof(what)), key, val,
			        "sluice does not set it on server connections; set it with ALTER "
			        "DATABASE ... SET, or from the client, and remove the key");
			return false;
		}
	} else if (strcmp(key, "auth_user") == 0 || strcmp(key, "auth_dbname") == 0) {
		/* security: authentication sluice does not do */
		if (val[0]) {
			conf_refuse(
			        p, db_what(db, what, sizeof(what)), key, val,
			        "sluice looks users up in auth_file only; remove the key and list "
			        "the users in auth_file");
			return false;
		}
	} else if (strcmp(key, "reserve_pool") == 0 || strcmp(key, "reserve_pool_size") == 0) {
		int n;
		if (val[0] && !conf_parse_int(val, 0, 0, &n)) {
			conf_refuse(p, db_what(db, what, sizeof(what)), key, val,
			            "sluice has no reserve pool; set it to 0 and size pool_size "
			            "for the "
			            "peak");
			return false;
		}
	} else {
		conf_fail(p, "database \"%s\": unknown key \"%s\"", db->name, key);
		return false;
	}
	return true;
}

static bool user_key(struct parse *p, void *target, const char *key, const char *val)
{
	struct conf_user *u = target;

	if (strcmp(key, "pool_mode") == 0) {
		if (!parse_pool_mode(val, &u->pool_mode)) {
			conf_fail(
			        p,
			        "user \"%s\": pool_mode must be session, transaction or statement, "
			        "got \"%s\"",
			        u->name, val);
			return false;
		}
	} else if (strcmp(key, "max_user_connections") == 0) {
		if (!conf_parse_int(val, 0, 100000, &u->max_user_connections)) {
			conf_fail(
			        p,
			        "user \"%s\": max_user_connections must be a number 0..100000, got "
			        "\"%s\"",
			        u->name, val);
			return false;
		}
	} else {
		conf_fail(p, "user \"%s\": unknown key \"%s\"", u->name, key);
		return false;
	}
	return true;
}

static void add_db(struct parse *p, const char *name, const char *value)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->ndbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0) {
			conf_fail(p, "database \"%s\" is defined twice (first on line %d)", name,
			          c->dbs[i].line);
			return;
		}
	}
	struct conf_db *v = realloc(c->dbs, (c->ndbs + 1) * sizeof(*v));
	if (!v)
		abort();
	c->dbs = v;
	struct conf_db *db = &c->dbs[c->ndbs++];
	memset(db, 0, sizeof(*db));
	db->name = xstrdup(name);
	db->host = xstrdup("127.0.0.1");
	db->port = 5432;
	db->pool_size = -1;
	db->min_pool_size = -1;
	db->pool_mode = CONF_POOL_UNSET;
	db->line = p->line;
	if (!parse_kv(p, value, db, db_key))
		return;
	if (!db->dbname && strcmp(name, "*") != 0)
		db->dbname = xstrdup(name);
	if (db->password && !db->user)
		conf_fail(p, "database \"%s\": password given without user", name);
	/* PgBouncer's host lists and abstract-namespace sockets would reach
	 * getaddrinfo as one odd name: refuse them here, with the reason. */
	if (!db->host[0])
		conf_fail(p,
		          "database \"%s\": host is empty (give a host name, an address or a "
		          "unix socket directory)",
		          name);
	else if (strchr(db->host, ','))
		conf_fail(p,
		          "database \"%s\": host = %s: host lists are not supported by sluice "
		          "(give one host per entry)",
		          name, db->host);
	else if (db->host[0] == '@')
		conf_fail(p,
		          "database \"%s\": host = %s: abstract-namespace unix sockets are not "
		          "supported by sluice (give a socket directory starting with /)",
		          name, db->host);
}

static void add_user(struct parse *p, const char *name, const char *value)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->nusers; i++) {
		if (strcmp(c->users[i].name, name) == 0) {
			conf_fail(p, "user \"%s\" is defined twice (first on line %d)", name,
			          c->users[i].line);
			return;
		}
	}
	struct conf_user *v = realloc(c->users, (c->nusers + 1) * sizeof(*v));
	if (!v)
		abort();
	c->users = v;
	struct conf_user *u = &c->users[c->nusers++];
	memset(u, 0, sizeof(*u));
	u->name = xstrdup(name);
	u->pool_mode = CONF_POOL_UNSET;
	u->line = p->line;
	parse_kv(p, value, u, user_key);
}

/* Characters of a host name or a numeric address (with an IPv6 scope). */
static bool addr_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == ':' || ch == '-' ||
		      ch == '_' || ch == '%'))
			return false;
	}
	return true;
}

static void add_listen(struct parse *p, const char *s, size_t n)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->nlisten_addrs; i++) {
		if (strlen(c->listen_addrs[i]) == n && strncmp(c->listen_addrs[i], s, n) == 0) {
			conf_fail(p, "listen_addr names %.*s twice", (int)n, s);
			return;
		}
	}
	char **v = realloc(c->listen_addrs, (c->nlisten_addrs + 1) * sizeof(*v));
	if (!v)
		abort();
	c->listen_addrs = v;
	v[c->nlisten_addrs] = strndup(s, n);
	if (!v[c->nlisten_addrs])
		abort();
	c->nlisten_addrs++;
}

/*
 * listen_addr: "*" or a comma-separated list of addresses and host names,
 * as PgBouncer takes it. "*" means every IPv4 and IPv6 address and cannot
 * be combined (the specific addresses would collide with it on bind).
 * Empty is refused: PgBouncer then listens on its unix socket only, which
 * sluice does not have.
 */
static void set_listen_addr(struct parse *p, const char *v)
{
	struct conf *c = p->c;
	bool star = false;
	const char *s = v;

	set_str(&c->listen_addr, v);
	free_list(c->listen_addrs, c->nlisten_addrs);
	c->listen_addrs = NULL;
	c->nlisten_addrs = 0;
	while (*s == ' ' || *s == '\t')
		s++;
	while (*s && !p->err[0]) {
		while (*s == ' ' || *s == '\t')
			s++;
		const char *b = s, *e;
		while (*s && *s != ',')
			s++;
		e = s;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		/* a comma always starts another item, even at the end */
		if (e == b || (*s == ',' && !s[1])) {
			conf_fail(p, "listen_addr has an empty item in \"%s\"", v);
			break;
		}
		if (*s == ',')
			s++;
		if ((e - b == 1 && *b == '*') != star && c->nlisten_addrs > 0) {
			conf_fail(p, "listen_addr: * already means every address; list either * or "
			             "specific addresses");
			break;
		}
		if (e - b == 1 && *b == '*') {
			star = true;
			add_listen(p, "0.0.0.0", 7);
			add_listen(p, "::", 2);
			continue;
		}
		if (*b == '[' && e[-1] == ']' && e - b > 2) {
			b++;
			e--;
		}
		if (!addr_chars_ok(b, (size_t)(e - b))) {
			conf_fail(p, "listen_addr: \"%.*s\" is not an address or host name",
			          (int)(e - b), b);
			break;
		}
		add_listen(p, b, (size_t)(e - b));
	}
	if (p->err[0])
		return;
	if (c->nlisten_addrs == 0)
		conf_fail(p, "listen_addr is empty: sluice listens on TCP only; give addresses, or "
		             "* for all IPv4 and IPv6 addresses");
}

enum kind { K_STR, K_OPT_STR, K_INT, K_BOOL, K_DUR, K_SIZE };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	long lo, hi;
};

#define OFF(f) offsetof(struct conf, f)
static const struct key main_keys[] = {
        {"listen_port", K_INT, OFF(listen_port), 1, 65535},
        {"auth_file", K_OPT_STR, OFF(auth_file), 0, 0},
        {"admin_db", K_STR, OFF(admin_db), 0, 0},
        {"min_pool_size", K_INT, OFF(min_pool_size), 0, 100000},
        {"default_pool_size", K_INT, OFF(default_pool_size), 1, 100000},
        {"max_client_conn", K_INT, OFF(max_client_conn), 1, 1000000},
        /* 0 is the "not given" mark, resolved in validate() */
        {"max_login_clients", K_INT, OFF(max_login_clients), 1, 1000000},
        {"max_db_connections", K_INT, OFF(max_db_connections), 0, 100000},
        {"max_user_connections", K_INT, OFF(max_user_connections), 0, 100000},
        {"server_connect_timeout", K_DUR, OFF(server_connect_timeout), 0, 0},
        {"server_login_retry", K_DUR, OFF(server_login_retry), 0, 0},
        {"query_wait_timeout", K_DUR, OFF(query_wait_timeout), 0, 0},
        {"server_idle_timeout", K_DUR, OFF(server_idle_timeout), 0, 0},
        {"server_lifetime", K_DUR, OFF(server_lifetime), 0, 0},
        {"client_login_timeout", K_DUR, OFF(client_login_timeout), 0, 0},
        {"client_idle_timeout", K_DUR, OFF(client_idle_timeout), 0, 0},
        {"idle_transaction_timeout", K_DUR, OFF(idle_transaction_timeout), 0, 0},
        {"query_timeout", K_DUR, OFF(query_timeout), 0, 0},
        {"dns_max_ttl", K_DUR, OFF(dns_max_ttl), 0, 0},
        {"dns_nxdomain_ttl", K_DUR, OFF(dns_nxdomain_ttl), 0, 0},
        {"autodb_idle_timeout", K_DUR, OFF(autodb_idle_timeout), 0, 0},
        {"server_reset_query", K_STR, OFF(server_reset_query), 0, 0},
        {"server_reset_query_always", K_BOOL, OFF(server_reset_query_always), 0, 0},
        {"max_prepared_statements", K_INT, OFF(max_prepared_statements), 0, 100000},
        {"unix_socket_dir", K_STR, OFF(unix_socket_dir), 0, 0},
        {"stats_period", K_DUR, OFF(stats_period), 0, 0},
        {"track_statements", K_BOOL, OFF(track_statements), 0, 0},
        {"pin_session_state", K_BOOL, OFF(pin_session_state), 0, 0},
        {"track_literals", K_BOOL, OFF(track_literals), 0, 0},
        {"max_tracked_statements", K_INT, OFF(max_tracked_statements), 10, 1000000},
        {"slow_query_ms", K_INT, OFF(slow_query_ms), 0, 86400000},
        {"slow_query_log_size", K_INT, OFF(slow_query_log_size), 0, 1000000},
        {"nplusone_threshold", K_INT, OFF(nplusone_threshold), 2, 1000000},
        {"nplusone_window_ms", K_INT, OFF(nplusone_window_ms), 1, 3600000},
        {"stats_listen", K_STR, OFF(stats_listen), 0, 0},
        {"metrics_top_statements", K_INT, OFF(metrics_top_statements), 0, 10000},
        {"metrics_pgbouncer_names", K_BOOL, OFF(metrics_pgbouncer_names), 0, 0},
        {"health_p95_warn_ms", K_INT, OFF(health_p95_warn_ms), 0, 86400000},
        {"health_p95_critical_ms", K_INT, OFF(health_p95_critical_ms), 0, 86400000},
        {"health_pool_warn_pct", K_INT, OFF(health_pool_warn_pct), 0, 100},
        {"health_error_rate_critical_pct", K_INT, OFF(health_error_rate_critical_pct), 0, 100},
        {"health_slow_rate_warn_pct", K_INT, OFF(health_slow_rate_warn_pct), 0, 100},
        {"health_cache_hit_warn_pct", K_INT, OFF(health_cache_hit_warn_pct), 0, 100},
        {"track_extra_parameters", K_OPT_STR, OFF(track_extra_parameters), 0, 0},
        {"ignore_startup_parameters", K_OPT_STR, OFF(ignore_startup_parameters), 0, 0},
        {"logfile", K_OPT_STR, OFF(logfile), 0, 0},
        {"pidfile", K_OPT_STR, OFF(pidfile), 0, 0},
        {"verbose", K_INT, OFF(verbose), 0, 2},
        {"pkt_buf", K_SIZE, OFF(pkt_buf), 512, 1 << 24},
        {"client_tls_cert_file", K_OPT_STR, OFF(client_tls_cert_file), 0, 0},
        {"client_tls_key_file", K_OPT_STR, OFF(client_tls_key_file), 0, 0},
        {"client_tls_ca_file", K_OPT_STR, OFF(client_tls_ca_file), 0, 0},
        {"server_tls_cert_file", K_OPT_STR, OFF(server_tls_cert_file), 0, 0},
        {"server_tls_key_file", K_OPT_STR, OFF(server_tls_key_file), 0, 0},
        {"server_tls_ca_file", K_OPT_STR, OFF(server_tls_ca_file), 0, 0},
};

static void main_key(struct parse *p, const char *name, const char *v)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < sizeof(main_keys) / sizeof(main_keys[0]); i++) {
		const struct key *k = &main_keys[i];
		if (strcmp(k->name, name) != 0)
			continue;
		void *dst = (char *)c + k->off;
		switch (k->kind) {
		case K_STR:
			set_str(dst, v);
			break;
		case K_OPT_STR:
			set_opt_str(dst, v);
			break;
		case K_INT:
			if (!conf_parse_int(v, k->lo, k->hi, dst))
				conf_fail(p,
				          "%s must be a whole number from %ld to %ld, got \"%s\"",
				          name, k->lo, k->hi, v);
			break;
		case K_SIZE: {
			int n;
			if (!conf_parse_int(v, k->lo, k->hi, &n))
				conf_fail(p,
				          "%s must be a whole number from %ld to %ld, got \"%s\"",
				          name, k->lo, k->hi, v);
			else
				*(size_t *)dst = (size_t)n;
			break;
		}
		case K_BOOL:
			if (!conf_parse_bool(v, dst))
				conf_fail(p, "%s must be 0 or 1 (or yes/no, on/off), got \"%s\"",
				          name, v);
			break;
		case K_DUR:
			if (!conf_parse_duration(v, dst))
				conf_fail(p,
				          "%s must be a duration in seconds (like 30, 1.5, 500ms), "
				          "got \"%s\"",
				          name, v);
			break;
		}
		return;
	}
	if (strcmp(name, "listen_addr") == 0) {
		set_listen_addr(p, v);
	} else if (strcmp(name, "auth_type") == 0) {
		if (strcmp(v, "trust") == 0)
			c->auth_type = CONF_AUTH_TRUST;
		else if (strcmp(v, "md5") == 0)
			c->auth_type = CONF_AUTH_MD5;
		else if (strcmp(v, "scram-sha-256") == 0)
			c->auth_type = CONF_AUTH_SCRAM;
		else if (strcmp(v, "plain") == 0)
			c->auth_type = CONF_AUTH_PLAIN;
		else
			conf_fail(
			        p,
			        "auth_type must be trust, plain, md5 or scram-sha-256, got \"%s\"",
			        v);
	} else if (strcmp(name, "pool_mode") == 0) {
		if (!parse_pool_mode(v, &c->pool_mode))
			conf_fail(p,
			          "pool_mode must be session, transaction or statement, got \"%s\"",
			          v);
	} else if (strcmp(name, "unix_socket_mode") == 0) {
		char *end;
		long mode = *v ? strtol(v, &end, 8) : 0777; /* empty: the default */

		if (*v && (*end || mode < 0 || mode > 0777))
			conf_fail(p,
			          "unix_socket_mode must be an octal mode such as 0777 or 0770, "
			          "got \"%s\"",
			          v);
		else
			c->unix_socket_mode = (int)mode;
	} else if (strcmp(name, "admin_users") == 0) {
		set_list(&c->admin_users, &c->nadmin_users, v);
	} else if (strcmp(name, "stats_users") == 0) {
		set_list(&c->stats_users, &c->nstats_users, v);
	} else if (strcmp(name, "client_tls_sslmode") == 0) {
		if (!parse_sslmode(v, &c->client_tls_sslmode))
			conf_fail(p,
			          "client_tls_sslmode must be disable, allow, prefer, require, "
			          "verify-ca or verify-full, got \"%s\"",
			          v);
		else
			set_str(&c->client_tls_sslmode_str, v);
	} else if (strcmp(name, "server_tls_sslmode") == 0) {
		if (!parse_sslmode(v, &c->server_tls_sslmode))
			conf_fail(p,
			          "server_tls_sslmode must be disable, allow, prefer, require, "
			          "verify-ca or verify-full, got \"%s\"",
			          v);
	} else if (!conf_unsupported_key(p, name, v)) {
		conf_fail(p, "unknown key \"%s\" in [sluice]", name);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;

	if (p->err[0])
		return 1;
	if (strcmp(section, "sluice") == 0 || strcmp(section, "pgbouncer") == 0)
		main_key(p, name, value);
	else if (strcmp(section, "databases") == 0)
		add_db(p, name, value);
	else if (strcmp(section, "users") == 0)
		add_user(p, name, value);
	else if (strcmp(section, "cache") == 0)
		conf_cache_key(p, name, value);
	else if (strcmp(section, "peers") == 0)
		/* An empty [peers] section loads; an entry would expect cancel
		 * requests to be forwarded between processes. */
		conf_fail(p,
		          "[peers] %s = %s is not supported by sluice (no peering: each sluice "
		          "handles the cancel requests of its own clients; remove the entry)",
		          name, value);
	else if (section[0] == 0)
		conf_fail(p, "key \"%s\" outside any section (expected [sluice] first)", name);
	else
		conf_fail(p, "unknown section [%s]", section);
	return 1;
}

static void defaults(struct conf *c)
{
	c->listen_addr = xstrdup("127.0.0.1");
	c->listen_addrs = calloc(1, sizeof(char *));
	if (!c->listen_addrs)
		abort();
	c->listen_addrs[0] = xstrdup("127.0.0.1");
	c->nlisten_addrs = 1;
	c->listen_port = 6432;
	c->auth_type = CONF_AUTH_MD5;
	c->admin_db = xstrdup("sluice");
	c->pool_mode = CONF_POOL_SESSION;
	c->min_pool_size = 5;
	c->default_pool_size = 50;
	c->max_client_conn = 1000;
	c->server_connect_timeout = 15;
	c->server_login_retry = 15;
	c->query_wait_timeout = 120;
	c->server_idle_timeout = 600;
	c->server_lifetime = 3600;
	c->server_check_delay = 30;
	c->client_login_timeout = 60;
	c->autodb_idle_timeout = 3600;
	c->dns_max_ttl = 15;
	c->dns_nxdomain_ttl = 15;
	c->server_reset_query = xstrdup("DISCARD ALL");
	c->server_check_query = xstrdup("");
	c->max_prepared_statements = 200;
	c->track_statements = true;
	c->pin_session_state = true;
	c->max_tracked_statements = 5000;
	c->slow_query_ms = 100;
	c->slow_query_log_size = 1000;
	c->nplusone_threshold = 10;
	c->nplusone_window_ms = 1000;
	c->unix_socket_dir = xstrdup("");
	c->unix_socket_mode = 0777;
	c->stats_period = 60;
	/* loopback only, and not 9127 (both PgBouncer exporters' port), so a
	 * PgBouncer exporter can keep running beside sluice during a move */
	c->stats_listen = xstrdup("127.0.0.1:9930");
	c->metrics_top_statements = 50;
	c->health_p95_warn_ms = 100;
	c->health_p95_critical_ms = 500;
	c->health_pool_warn_pct = 90;
	c->health_error_rate_critical_pct = 1;
	c->health_slow_rate_warn_pct = 5;
	c->health_cache_hit_warn_pct = 70;
	c->pkt_buf = 8192;
	c->client_tls_sslmode_str = xstrdup("disable");
	conf_cache_defaults(&c->cache);
}

/* Checks across keys, once the whole file is read. */
static void validate(struct parse *p)
{
	struct conf *c = p->c;

	p->line = 0;
	if (c->max_login_clients == 0) {
		/* half, but never fewer than 100 (or max_client_conn): stalled
		 * logins can take at most half the slots, and an application
		 * that opens its whole pool at once after a restart still fits */
		int floor = c->max_client_conn < 100 ? c->max_client_conn : 100;

		c->max_login_clients = c->max_client_conn / 2;
		if (c->max_login_clients < floor)
			c->max_login_clients = floor;
	} else if (c->max_login_clients > c->max_client_conn) {
		conf_fail(p,
		          "max_login_clients (%d) cannot exceed max_client_conn (%d): clients "
		          "logging "
		          "in count towards max_client_conn",
		          c->max_login_clients, c->max_client_conn);
	}
	if (c->ndbs == 0)
		conf_fail(p, "no [databases] entries: clients would have nothing to connect to");
	if (c->auth_type != CONF_AUTH_TRUST && !c->auth_file)
		conf_fail(p, "auth_type %s needs an auth_file with the users' passwords",
		          c->auth_type == CONF_AUTH_MD5     ? "md5"
		          : c->auth_type == CONF_AUTH_SCRAM ? "scram-sha-256"
		                                            : "plain");
	if (c->client_tls_sslmode != CONF_SSL_DISABLE &&
	    (!c->client_tls_cert_file || !c->client_tls_key_file))
		conf_fail(p,
		          "client_tls_sslmode needs client_tls_cert_file and client_tls_key_file");
	if (c->client_tls_sslmode >= CONF_SSL_VERIFY_CA && !c->client_tls_ca_file)
		conf_fail(p, "client_tls_sslmode verify-ca/verify-full needs client_tls_ca_file");
	if (c->server_tls_sslmode >= CONF_SSL_VERIFY_CA && !c->server_tls_ca_file)
		conf_fail(p, "server_tls_sslmode verify-ca/verify-full needs server_tls_ca_file");
	if (c->stats_listen[0] && !conf_split_hostport(c->stats_listen, NULL, 0, NULL))
		conf_fail(p,
		          "stats_listen must be host:port (like 127.0.0.1:9930 or [::1]:9930), "
		          "or empty for no HTTP listener, got \"%s\"",
		          c->stats_listen);
	if (c->health_p95_warn_ms && c->health_p95_critical_ms &&
	    c->health_p95_warn_ms > c->health_p95_critical_ms)
		conf_fail(p, "health_p95_warn_ms (%d) cannot exceed health_p95_critical_ms (%d)",
		          c->health_p95_warn_ms, c->health_p95_critical_ms);
	conf_cache_validate(p);
}

bool conf_split_hostport(const char *v, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(v, ':'), *h = v, *he;
	int n;

	if (!colon || colon == v)
		return false;
	he = colon;
	if (*v == '[') {
		if (colon[-1] != ']' || colon - v < 3)
			return false;
		h = v + 1;
		he = colon - 1;
	} else if (memchr(v, ':', (size_t)(colon - v))) {
		return false; /* an IPv6 address needs brackets */
	}
	if (!addr_chars_ok(h, (size_t)(he - h)) || !conf_parse_int(colon + 1, 1, 65535, &n))
		return false;
	if (host) {
		if ((size_t)(he - h) >= hostlen)
			return false;
		memcpy(host, h, (size_t)(he - h));
		host[he - h] = '\0';
	}
	if (port)
		*port = n;
	return true;
}

int conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	struct parse p;

	memset(c, 0, sizeof(*c));
	memset(&p, 0, sizeof(p));
	p.c = c;
	p.f = fopen(path, "r");
	if (!p.f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	c->path = xstrdup(path);
	defaults(c);
	int rc = ini_parse_stream(reader, &p, handler, &p);
	bool ioerr = ferror(p.f);
	fclose(p.f);
	if (rc > 0 && !p.err[0]) {
		p.line = rc;
		conf_fail(&p, "syntax error: expected [section], key = value or a comment");
	}
	if (ioerr)
		conf_fail(&p, "read error");
	if (!p.err[0])
		validate(&p);
	if (p.err[0]) {
		if (p.err_line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, p.err_line, p.err);
		else
			snprintf(err, errlen, "%s: %s", path, p.err);
		conf_free(c);
		return -1;
	}
	return 0;
}

void conf_free(struct conf *c)
{
	free(c->path);
	free(c->listen_addr);
	free_list(c->listen_addrs, c->nlisten_addrs);
	free(c->auth_file);
	free_list(c->admin_users, c->nadmin_users);
	free_list(c->stats_users, c->nstats_users);
	free(c->admin_db);
	free(c->server_reset_query);
	free(c->server_check_query);
	free(c->track_extra_parameters);
	free(c->ignore_startup_parameters);
	free(c->stats_listen);
	free(c->unix_socket_dir);
	free(c->logfile);
	free(c->pidfile);
	free(c->client_tls_sslmode_str);
	free(c->client_tls_cert_file);
	free(c->client_tls_key_file);
	free(c->client_tls_ca_file);
	free(c->server_tls_cert_file);
	free(c->server_tls_key_file);
	free(c->server_tls_ca_file);
	conf_cache_free(&c->cache);
	for (size_t i = 0; i < c->ndbs; i++) {
		struct conf_db *db = &c->dbs[i];
		free(db->name);
		free(db->host);
		free(db->dbname);
		free(db->user);
		free(db->password);
		free(db->connect_query);
		free(db->application_name);
	}
	free(c->dbs);
	for (size_t i = 0; i < c->nusers; i++)
		free(c->users[i].name);
	free(c->users);
	memset(c, 0, sizeof(*c));
}

const struct conf_db *conf_find_db(const struct conf *c, const char *name)
{
	const struct conf_db *star = NULL;

	for (size_t i = 0; i < c->ndbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0)
			return &c->dbs[i];
		if (strcmp(c->dbs[i].name, "*") == 0)
			star = &c->dbs[i];
	}
	return star;
}

const struct conf_user *conf_find_user(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nusers; i++)
		if (strcmp(c->users[i].name, name) == 0)
			return &c->users[i];
	return NULL;
}

static bool in_list(char *const *v, size_t n, const char *user)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], user) == 0)
			return true;
	return false;
}

bool conf_is_admin(const struct conf *c, const char *user)
{
	return in_list(c->admin_users, c->nadmin_users, user);
}

bool conf_is_stats_user(const struct conf *c, const char *user)
{
	return in_list(c->stats_users, c->nstats_users, user) || conf_is_admin(c, user);
}

static bool same_str(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Equality of two secrets without an early exit on the first difference. */
static bool same_secret(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool conf_db_same_target(const struct conf_db *a, const struct conf_db *b)
{
	return same_str(a->host, b->host) && a->port == b->port && same_str(a->dbname, b->dbname) &&
	       same_str(a->user, b->user) && same_secret(a->password, b->password) &&
	       same_str(a->application_name, b->application_name) &&
	       same_str(a->connect_query, b->connect_query);
}

bool conf_server_tls_same(const struct conf *a, const struct conf *b)
{
	return a->server_tls_sslmode == b->server_tls_sslmode &&
	       same_str(a->server_tls_cert_file, b->server_tls_cert_file) &&
	       same_str(a->server_tls_key_file, b->server_tls_key_file) &&
	       same_str(a->server_tls_ca_file, b->server_tls_ca_file);
}

void conf_init_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	defaults(c);
}

/* Keys SET may change: each is read where it is used (per connection, per
 * pool after pool_apply_conf, or per janitor tick), so a new value takes
 * effect without a restart. Keys that shape listeners, TLS contexts or
 * files are left to a restart or a RELOAD. */
static const char *const changeable_keys[] = {
        "default_pool_size",
        "min_pool_size",
        "max_client_conn",
        "max_db_connections",
        "max_user_connections",
        "pool_mode",
        "server_connect_timeout",
        "server_login_retry",
        "query_wait_timeout",
        "server_idle_timeout",
        "server_lifetime",
        "client_login_timeout",
        "client_idle_timeout",
        "idle_transaction_timeout",
        "query_timeout",
        "dns_max_ttl",
        "dns_nxdomain_ttl",
        "autodb_idle_timeout",
        "server_reset_query",
        "server_reset_query_always",
        "verbose",
        "stats_period",
        "slow_query_ms",
        "nplusone_threshold",
        "nplusone_window_ms",
        "admin_users",
        "stats_users",
        "track_statements",
        "pin_session_state",
        "auth_type",
        "max_prepared_statements",
};

bool conf_changeable(const char *name)
{
	for (size_t i = 0; i < sizeof(changeable_keys) / sizeof(changeable_keys[0]); i++)
		if (strcmp(changeable_keys[i], name) == 0)
			return true;
	return false;
}

int conf_set(struct conf *c, const char *name, const char *value, char *err, size_t errlen)
{
	struct conf copy;
	struct parse p;
	bool known = false;

	if (!conf_changeable(name)) {
		for (size_t i = 0; i < sizeof(main_keys) / sizeof(main_keys[0]); i++)
			known = known || strcmp(main_keys[i].name, name) == 0;
		if (known || strcmp(name, "listen_addr") == 0)
			snprintf(err, errlen, "%s cannot be changed while sluice runs", name);
		else
			snprintf(err, errlen, "unknown or unchangeable setting \"%s\"", name);
		return -1;
	}
	/* parse into a shallow copy: on an error <c> keeps every old value */
	copy = *c;
	memset(&p, 0, sizeof(p));
	p.c = &copy;
	if (strcmp(name, "admin_users") == 0 || strcmp(name, "stats_users") == 0) {
		/* set_list frees the old list: give it a private one */
		copy.admin_users = NULL, copy.nadmin_users = 0;
		copy.stats_users = NULL, copy.nstats_users = 0;
		main_key(&p, name, value);
		if (name[0] == 'a') {
			free_list(c->admin_users, c->nadmin_users);
			c->admin_users = copy.admin_users;
			c->nadmin_users = copy.nadmin_users;
		} else {
			free_list(c->stats_users, c->nstats_users);
			c->stats_users = copy.stats_users;
			c->nstats_users = copy.nstats_users;
		}
		return 0;
	}
	if (strcmp(name, "server_reset_query") == 0) {
		free(c->server_reset_query);
		c->server_reset_query = xstrdup(value);
		return 0;
	}
	main_key(&p, name, value);
	if (!p.err[0] && copy.auth_type != CONF_AUTH_TRUST && !copy.auth_file)
		conf_fail(&p, "auth_type %s needs an auth_file", value);
	if (p.err[0]) {
		snprintf(err, errlen, "%s", p.err);
		return -1;
	}
	*c = copy;
	return 0;
}
