/*
 * The ini file: read with inih, keys named as PgBouncer names them, every
 * value checked. The first problem is reported as "file:line: message".
 */
#include "conf/conf.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parsing state shared by the inih callbacks. */
struct parse {
	struct conf *c;
	FILE *f;
	int line;       /* line the reader handed out last */
	bool long_line; /* a line did not fit inih's buffer */
	char err[512];  /* first error, without the file name */
	int err_line;
};

static void fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct parse *p, const char *fmt, ...)
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
static void refuse(struct parse *p, const char *what, const char *name, const char *v,
                   const char *instead)
{
	int n = (int)strlen(v);

	if (n > 60)
		fail(p, "%s%s = %.57s... is not supported by sluice (%s)", what, name, v, instead);
	else
		fail(p, "%s%s = %s is not supported by sluice (%s)", what, name, v, instead);
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
		fail(p, "line longer than %d characters", num - 1);
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

static bool parse_int(const char *v, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || *end || errno || n < lo || n > hi)
		return false;
	*out = (int)n;
	return true;
}

static bool parse_bool(const char *v, bool *out)
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
static bool parse_duration(const char *v, double *out)
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
 * returns false (after fail()) on a syntax error or when <fn> does.
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
				fail(p, "key too long");
				return false;
			}
			key[k++] = *s++;
		}
		key[k] = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '=' || k == 0) {
			fail(p, "expected key=value, got \"%s\"", key);
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
					fail(p, "unterminated quoted value for %s", key);
					return false;
				}
				if (*s == '\\' && s[1]) {
					s++;
				} else if (*s == '\'') {
					s++;
					break;
				}
				if (n + 1 >= sizeof(val)) {
					fail(p, "value of %s too long", key);
					return false;
				}
				val[n++] = *s++;
			}
		} else {
			while (*s && *s != ' ' && *s != '\t') {
				if (n + 1 >= sizeof(val)) {
					fail(p, "value of %s too long", key);
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
		if (!parse_int(val, 1, 65535, &db->port)) {
			fail(p, "database \"%s\": port must be 1..65535, got \"%s\"", db->name,
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
		if (!parse_int(val, 0, 100000, dst)) {
			fail(p, "database \"%s\": %s must be a number 0..100000, got \"%s\"",
			     db->name, key, val);
			return false;
		}
	} else if (strcmp(key, "pool_mode") == 0) {
		if (!parse_pool_mode(val, &db->pool_mode)) {
			fail(p,
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
			refuse(p, db_what(db, what, sizeof(what)), key, val,
			       "sluice does not set it on server connections; set it with ALTER "
			       "DATABASE ... SET, or from the client, and remove the key");
			return false;
		}
	} else if (strcmp(key, "auth_user") == 0 || strcmp(key, "auth_dbname") == 0) {
		/* security: authentication sluice does not do */
		if (val[0]) {
			refuse(p, db_what(db, what, sizeof(what)), key, val,
			       "sluice looks users up in auth_file only; remove the key and list "
			       "the users in auth_file");
			return false;
		}
	} else if (strcmp(key, "reserve_pool") == 0 || strcmp(key, "reserve_pool_size") == 0) {
		int n;
		if (val[0] && !parse_int(val, 0, 0, &n)) {
			refuse(p, db_what(db, what, sizeof(what)), key, val,
			       "sluice has no reserve pool; set it to 0 and size pool_size for the "
			       "peak");
			return false;
		}
	} else {
		fail(p, "database \"%s\": unknown key \"%s\"", db->name, key);
		return false;
	}
	return true;
}

static bool user_key(struct parse *p, void *target, const char *key, const char *val)
{
	struct conf_user *u = target;

	if (strcmp(key, "pool_mode") == 0) {
		if (!parse_pool_mode(val, &u->pool_mode)) {
			fail(p,
			     "user \"%s\": pool_mode must be session, transaction or statement, "
			     "got \"%s\"",
			     u->name, val);
			return false;
		}
	} else if (strcmp(key, "max_user_connections") == 0) {
		if (!parse_int(val, 0, 100000, &u->max_user_connections)) {
			fail(p,
			     "user \"%s\": max_user_connections must be a number 0..100000, got "
			     "\"%s\"",
			     u->name, val);
			return false;
		}
	} else {
		fail(p, "user \"%s\": unknown key \"%s\"", u->name, key);
		return false;
	}
	return true;
}

static void add_db(struct parse *p, const char *name, const char *value)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->ndbs; i++) {
		if (strcmp(c->dbs[i].name, name) == 0) {
			fail(p, "database \"%s\" is defined twice (first on line %d)", name,
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
		fail(p, "database \"%s\": password given without user", name);
	/* PgBouncer's host lists and abstract-namespace sockets would reach
	 * getaddrinfo as one odd name: refuse them here, with the reason. */
	if (!db->host[0])
		fail(p,
		     "database \"%s\": host is empty (give a host name, an address or a "
		     "unix socket directory)",
		     name);
	else if (strchr(db->host, ','))
		fail(p,
		     "database \"%s\": host = %s: host lists are not supported by sluice "
		     "(give one host per entry)",
		     name, db->host);
	else if (db->host[0] == '@')
		fail(p,
		     "database \"%s\": host = %s: abstract-namespace unix sockets are not "
		     "supported by sluice (give a socket directory starting with /)",
		     name, db->host);
}

static void add_user(struct parse *p, const char *name, const char *value)
{
	struct conf *c = p->c;

	for (size_t i = 0; i < c->nusers; i++) {
		if (strcmp(c->users[i].name, name) == 0) {
			fail(p, "user \"%s\" is defined twice (first on line %d)", name,
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

/*
 * PgBouncer keys sluice does not implement. An existing pgbouncer.ini must
 * still load when what it says is what sluice does anyway, but a setting
 * sluice would not honour stops startup (never silently ignored): each key
 * has a test of the values it accepts, and the text that says what sluice
 * does instead. Values are accepted when
 *   - they mean "not used" (empty, 0, off) and sluice does not do it either;
 *   - they describe what sluice does (e.g. TLS 1.2 and 1.3 only);
 *   - the key bounds something sluice does less of, so any bound is met
 *     (no DNS cache: every dns_*_ttl holds);
 *   - the key only tunes a feature whose switch is refused unless off
 *     (syslog_ident with syslog = 0), which is inert in PgBouncer too.
 * Security-relevant keys (authentication, TLS, packet size, socket
 * permissions, privilege drop, the simple-query switch) accept only the
 * values that mean "not used" or exactly sluice's behaviour.
 */
typedef bool (*accept_fn)(const struct parse *p, const char *v);

struct unsupported {
	const char *name;
	accept_fn ok;
	const char *instead; /* what sluice does instead, what to do */
};

static bool is_empty(const struct parse *p, const char *v)
{
	(void)p;
	return v[0] == 0;
}

static bool is_off(const struct parse *p, const char *v)
{
	bool b;
	(void)p;
	return parse_bool(v, &b) && !b;
}

static bool is_on(const struct parse *p, const char *v)
{
	bool b;
	(void)p;
	return parse_bool(v, &b) && b;
}

/* Empty (PgBouncer's "not set") or the number 0. */
static bool is_zero(const struct parse *p, const char *v)
{
	int n;
	return is_empty(p, v) || (parse_int(v, 0, 0, &n));
}

static bool is_zero_duration(const struct parse *p, const char *v)
{
	double d;
	(void)p;
	return parse_duration(v, &d) && d == 0;
}

static bool is_duration(const struct parse *p, const char *v)
{
	double d;
	(void)p;
	return parse_duration(v, &d);
}

static bool is_count(const struct parse *p, const char *v)
{
	int n;
	(void)p;
	return parse_int(v, 0, 1000000000, &n);
}

static bool is_anything(const struct parse *p, const char *v)
{
	(void)p;
	(void)v;
	return true;
}

/* sluice calls listen() with a backlog of 1024 (the kernel caps it at
 * net.core.somaxconn). */
static bool is_backlog(const struct parse *p, const char *v)
{
	int n;
	(void)p;
	return parse_int(v, 1024, 1024, &n);
}

/* sluice's own limit on one protocol message; it cannot be lowered. Any
 * larger limit holds, and PostgreSQL refuses larger messages anyway. Must
 * stay equal to PROTO_MAX_MSG_LEN (tests/unit/test_conf.c checks). */
#define SLUICE_MAX_MSG_LEN 1073741824L

static bool is_packet_size(const struct parse *p, const char *v)
{
	char *end;
	(void)p;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	return end != v && !*end && !errno && n >= SLUICE_MAX_MSG_LEN && n <= 4294967295LL;
}

/* conffile names the file to read on the next reload: only the file sluice
 * was started with (or empty). */
static bool is_own_path(const struct parse *p, const char *v)
{
	return v[0] == 0 || strcmp(v, p->c->path) == 0;
}

/*
 * A TLS protocol list as PgBouncer writes it (tlsv1.0 .. tlsv1.3, all,
 * secure, legacy; separated by commas, colons or blanks) naming exactly
 * TLS 1.2 and 1.3, the versions sluice enables (minimum 1.2, no maximum).
 */
static bool is_tls12_13(const struct parse *p, const char *v)
{
	static const struct {
		const char *name;
		unsigned bits; /* 1 = 1.0, 2 = 1.1, 4 = 1.2, 8 = 1.3 */
	} names[] = {
	        {"tlsv1.0", 1}, {"tlsv1.1", 2}, {"tlsv1.2", 4}, {"tlsv1.3", 8},
	        {"all", 15},    {"legacy", 15}, {"secure", 12},
	};
	unsigned bits = 0;
	const char *s = v;

	if (is_empty(p, v))
		return true;
	while (*s) {
		size_t n = strcspn(s, ", :\t");
		bool known = n == 0;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !known; i++) {
			if (strlen(names[i].name) == n && strncasecmp(s, names[i].name, n) == 0) {
				bits |= names[i].bits;
				known = true;
			}
		}
		if (!known)
			return false;
		s += n;
		if (*s)
			s++;
	}
	return bits == 12;
}

/* sluice leaves ECDH groups to OpenSSL's defaults, as PgBouncer's "auto". */
static bool is_auto(const struct parse *p, const char *v)
{
	return is_empty(p, v) || strcasecmp(v, "auto") == 0;
}

/* sluice sets no DH parameters, so TLS 1.2 DHE suites are off: "none". */
static bool is_none(const struct parse *p, const char *v)
{
	return is_empty(p, v) || strcasecmp(v, "none") == 0;
}

static const struct unsupported unsupported_keys[] = {
        /* no unix socket listener: client paths and permissions do not exist */
        {"unix_socket_dir", is_empty,
         "sluice listens on TCP only (listen_addr, listen_port); set unix_socket_dir = "
         "(empty) and connect over TCP"},
        {"unix_socket_mode", is_empty,
         "sluice has no unix socket to set a mode on; remove the key and connect over TCP"},
        {"unix_socket_group", is_empty,
         "sluice has no unix socket to give a group; remove the key and connect over TCP"},
        /* security: a privilege drop that would not happen */
        {"user", is_empty,
         "sluice does not change its user after startup; start it as the user it should "
         "run as (e.g. systemd User=) and remove the key"},
        /* logging: only what sluice logs is accepted */
        {"syslog", is_off,
         "sluice logs to logfile or stderr (journald takes stderr); set syslog = 0"},
        {"syslog_ident", is_anything, NULL},    /* inert: syslog must be 0 */
        {"syslog_facility", is_anything, NULL}, /* inert: syslog must be 0 */
        {"log_connections", is_off,
         "sluice logs logins only at verbose = 1; set log_connections = 0 (SHOW CLIENTS "
         "lists who is connected)"},
        {"log_disconnections", is_off,
         "sluice logs only the disconnections it causes, with the error it sent; set "
         "log_disconnections = 0"},
        /* sluice logs every error it sends a client, with its SQLSTATE */
        {"log_pooler_errors", is_on,
         "sluice always logs the errors it closes clients with; set log_pooler_errors = 1"},
        {"log_stats", is_off,
         "sluice writes no periodic statistics lines; set log_stats = 0 and use the admin "
         "console's SHOW commands"},
        /* inert: sluice has neither averaged SHOW STATS nor stats log lines */
        {"stats_period", is_duration, "stats_period must be a duration in seconds"},
        {"dns_zone_check_period", is_zero_duration,
         "sluice does not watch DNS zone serials; set dns_zone_check_period = 0"},
        {"resolv_conf", is_empty,
         "sluice uses the system resolver (/etc/resolv.conf); set resolv_conf = (empty)"},
        {"listen_backlog", is_backlog,
         "sluice's listen backlog is 1024 (capped by net.core.somaxconn); set "
         "listen_backlog = 1024 or remove the key"},
        /* sluice reads at most once per connection per loop pass, within
         * any limit (0 = no limit) */
        {"sbuf_loopcnt", is_count, "sbuf_loopcnt must be a whole number"},
        {"so_reuseport", is_off,
         "sluice does not set SO_REUSEPORT, so instances cannot share a port; set "
         "so_reuseport = 0"},
        /* inert: sluice has no SUSPEND or online restart to time */
        {"suspend_timeout", is_duration, "suspend_timeout must be a duration in seconds"},
        {"tcp_defer_accept", is_off,
         "sluice does not set TCP_DEFER_ACCEPT; set tcp_defer_accept = 0"},
        {"tcp_socket_buffer", is_zero,
         "sluice leaves socket buffer sizes to the kernel; remove tcp_socket_buffer"},
        {"tcp_keepalive", is_off,
         "sluice does not enable TCP keepalive on its sockets; set tcp_keepalive = 0 (and "
         "use client_idle_timeout or the kernel's settings)"},
        {"tcp_keepcnt", is_zero, "sluice does not enable TCP keepalive; remove tcp_keepcnt"},
        {"tcp_keepidle", is_zero, "sluice does not enable TCP keepalive; remove tcp_keepidle"},
        {"tcp_keepintvl", is_zero, "sluice does not enable TCP keepalive; remove tcp_keepintvl"},
        {"tcp_user_timeout", is_zero,
         "sluice does not set TCP_USER_TIMEOUT; set tcp_user_timeout = 0"},
        /* security: clients relying on it would get the simple protocol */
        {"disable_pqexec", is_off,
         "sluice relays the simple query protocol; set disable_pqexec = 0 (refuse "
         "multi-statement queries in PostgreSQL or the application instead)"},
        {"application_name_add_host", is_off,
         "sluice does not add the client's address to application_name; set "
         "application_name_add_host = 0"},
        {"conffile", is_own_path,
         "sluice always reloads the file it was started with; remove conffile"},
        /* Windows service registration only; inert elsewhere, in PgBouncer too */
        {"service_name", is_anything, NULL},
        {"job_name", is_anything, NULL},
        /* security: authentication sluice does not do */
        {"auth_hba_file", is_empty,
         "sluice has no HBA rules: every client authenticates with auth_type against "
         "auth_file; remove auth_hba_file and restrict access with listen_addr or a "
         "firewall"},
        {"auth_query", is_empty,
         "sluice looks users up in auth_file only; remove auth_query and list the users "
         "in auth_file"},
        {"auth_user", is_empty,
         "sluice looks users up in auth_file only; remove auth_user and list the users in "
         "auth_file"},
        {"auth_dbname", is_empty, "sluice looks users up in auth_file only; remove auth_dbname"},
        {"reserve_pool_size", is_zero,
         "sluice has no reserve pool; set reserve_pool_size = 0 and size default_pool_size "
         "for the peak"},
        /* inert: reserve_pool_size must be 0 */
        {"reserve_pool_timeout", is_duration, "reserve_pool_timeout must be a duration in seconds"},
        /* security: a lower limit would not be enforced */
        {"max_packet_size", is_packet_size,
         "sluice's limit on one message is 1073741824 bytes (1 GiB) and cannot be "
         "lowered; remove max_packet_size or set it to 1073741824 or more"},
        /* sluice reuses the most recently used idle server first (LIFO) */
        {"server_round_robin", is_off,
         "sluice reuses the most recently used server first; set server_round_robin = 0"},
        {"server_fast_close", is_off,
         "sluice retires a changed server when its client leaves; set server_fast_close "
         "= 0"},
        /* security: TLS settings must be what sluice really does */
        {"client_tls_protocols", is_tls12_13,
         "sluice accepts TLS 1.2 and 1.3 from clients; set client_tls_protocols = secure "
         "or remove the key"},
        {"client_tls_ciphers", is_empty,
         "sluice uses OpenSSL's default cipher list (the system policy in openssl.cnf), "
         "not PgBouncer's lists; remove client_tls_ciphers"},
        {"client_tls_ecdhcurve", is_auto,
         "sluice uses OpenSSL's default ECDH groups; set client_tls_ecdhcurve = auto or "
         "remove the key"},
        {"client_tls_dheparams", is_none,
         "sluice sets no DH parameters, so DHE key exchange is off; set "
         "client_tls_dheparams = none or remove the key"},
        {"server_tls_protocols", is_tls12_13,
         "sluice offers TLS 1.2 and 1.3 to servers; set server_tls_protocols = secure or "
         "remove the key"},
        {"server_tls_ciphers", is_empty,
         "sluice uses OpenSSL's default cipher list (the system policy in openssl.cnf), "
         "not PgBouncer's lists; remove server_tls_ciphers"},
        /* no peering: [peers] entries are refused too */
        {"peer_id", is_zero, "sluice does not support peering; set peer_id = 0"},
        /* not yet done by sluice: idle servers are not tested before reuse */
        {"server_check_query", is_empty,
         "sluice does not test idle servers before handing them out; a server that "
         "died is noticed when it closes; set server_check_query empty"},
        /* inert: server_check_query must be empty */
        {"server_check_delay", is_duration, "server_check_delay must be a duration in seconds"},
        /* not yet: no HTTP listener for /metrics and /health */
        {"stats_listen", is_empty,
         "sluice has no HTTP listener for metrics yet; remove stats_listen or set it empty "
         "and use the admin console"},
        {"server_check_delay_jitter", is_zero_duration,
         "sluice adds no jitter to server checks; set server_check_delay_jitter = 0"},
};

/* True when <name> is one of unsupported_keys (after fail() if refused). */
static bool unsupported_key(struct parse *p, const char *name, const char *v)
{
	for (size_t i = 0; i < sizeof(unsupported_keys) / sizeof(unsupported_keys[0]); i++) {
		const struct unsupported *u = &unsupported_keys[i];
		if (strcmp(u->name, name) != 0)
			continue;
		if (u->ok(p, v))
			return true;
		if (u->ok == is_duration || u->ok == is_count)
			fail(p, "%s, got \"%s\"", u->instead, v);
		else
			refuse(p, "", name, v, u->instead);
		return true;
	}
	return false;
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
			fail(p, "listen_addr names %.*s twice", (int)n, s);
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
			fail(p, "listen_addr has an empty item in \"%s\"", v);
			break;
		}
		if (*s == ',')
			s++;
		if ((e - b == 1 && *b == '*') != star && c->nlisten_addrs > 0) {
			fail(p, "listen_addr: * already means every address; list either * or "
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
			fail(p, "listen_addr: \"%.*s\" is not an address or host name",
			     (int)(e - b), b);
			break;
		}
		add_listen(p, b, (size_t)(e - b));
	}
	if (p->err[0])
		return;
	if (c->nlisten_addrs == 0)
		fail(p, "listen_addr is empty: sluice listens on TCP only; give addresses, or "
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
			if (!parse_int(v, k->lo, k->hi, dst))
				fail(p, "%s must be a whole number from %ld to %ld, got \"%s\"",
				     name, k->lo, k->hi, v);
			break;
		case K_SIZE: {
			int n;
			if (!parse_int(v, k->lo, k->hi, &n))
				fail(p, "%s must be a whole number from %ld to %ld, got \"%s\"",
				     name, k->lo, k->hi, v);
			else
				*(size_t *)dst = (size_t)n;
			break;
		}
		case K_BOOL:
			if (!parse_bool(v, dst))
				fail(p, "%s must be 0 or 1 (or yes/no, on/off), got \"%s\"", name,
				     v);
			break;
		case K_DUR:
			if (!parse_duration(v, dst))
				fail(p,
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
			fail(p, "auth_type must be trust, plain, md5 or scram-sha-256, got \"%s\"",
			     v);
	} else if (strcmp(name, "pool_mode") == 0) {
		if (!parse_pool_mode(v, &c->pool_mode))
			fail(p, "pool_mode must be session, transaction or statement, got \"%s\"",
			     v);
	} else if (strcmp(name, "admin_users") == 0) {
		set_list(&c->admin_users, &c->nadmin_users, v);
	} else if (strcmp(name, "stats_users") == 0) {
		set_list(&c->stats_users, &c->nstats_users, v);
	} else if (strcmp(name, "client_tls_sslmode") == 0) {
		if (!parse_sslmode(v, &c->client_tls_sslmode))
			fail(p,
			     "client_tls_sslmode must be disable, allow, prefer, require, "
			     "verify-ca or verify-full, got \"%s\"",
			     v);
		else
			set_str(&c->client_tls_sslmode_str, v);
	} else if (strcmp(name, "server_tls_sslmode") == 0) {
		if (!parse_sslmode(v, &c->server_tls_sslmode))
			fail(p,
			     "server_tls_sslmode must be disable, allow, prefer, require, "
			     "verify-ca or verify-full, got \"%s\"",
			     v);
	} else if (!unsupported_key(p, name, v)) {
		fail(p, "unknown key \"%s\" in [sluice]", name);
	}
}

static void cache_key(struct parse *p, const char *name, const char *v)
{
	struct conf_cache *cc = &p->c->cache;
	int n;

	if (strcmp(name, "enabled") == 0) {
		if (!parse_bool(v, &cc->enabled))
			fail(p, "enabled must be 0 or 1, got \"%s\"", v);
		else if (cc->enabled)
			refuse(p, "[cache] ", name, v,
			       "sluice has no read cache yet; set enabled = 0");
	} else if (strcmp(name, "redis_host") == 0) {
		set_str(&cc->redis_host, v);
	} else if (strcmp(name, "redis_port") == 0) {
		if (!parse_int(v, 1, 65535, &cc->redis_port))
			fail(p, "redis_port must be 1..65535, got \"%s\"", v);
	} else if (strcmp(name, "default_ttl") == 0) {
		if (!parse_duration(v, &cc->default_ttl))
			fail(p, "default_ttl must be a duration in seconds, got \"%s\"", v);
	} else if (strcmp(name, "l1_entries") == 0) {
		if (!parse_int(v, 0, 10000000, &n))
			fail(p, "l1_entries must be a whole number, got \"%s\"", v);
		else
			cc->l1_entries = (size_t)n;
	} else {
		fail(p, "unknown key \"%s\" in [cache]", name);
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
		cache_key(p, name, value);
	else if (strcmp(section, "peers") == 0)
		/* An empty [peers] section loads; an entry would expect cancel
		 * requests to be forwarded between processes. */
		fail(p,
		     "[peers] %s = %s is not supported by sluice (no peering: each sluice "
		     "handles the cancel requests of its own clients; remove the entry)",
		     name, value);
	else if (section[0] == 0)
		fail(p, "key \"%s\" outside any section (expected [sluice] first)", name);
	else
		fail(p, "unknown section [%s]", section);
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
	c->stats_listen = xstrdup("");
	c->pkt_buf = 8192;
	c->client_tls_sslmode_str = xstrdup("disable");
	c->cache.redis_host = xstrdup("127.0.0.1");
	c->cache.redis_port = 6379;
	c->cache.default_ttl = 60;
	c->cache.l1_entries = 1024;
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
		fail(p,
		     "max_login_clients (%d) cannot exceed max_client_conn (%d): clients logging "
		     "in count towards max_client_conn",
		     c->max_login_clients, c->max_client_conn);
	}
	if (c->ndbs == 0)
		fail(p, "no [databases] entries: clients would have nothing to connect to");
	if (c->auth_type != CONF_AUTH_TRUST && !c->auth_file)
		fail(p, "auth_type %s needs an auth_file with the users' passwords",
		     c->auth_type == CONF_AUTH_MD5     ? "md5"
		     : c->auth_type == CONF_AUTH_SCRAM ? "scram-sha-256"
		                                       : "plain");
	if (c->client_tls_sslmode != CONF_SSL_DISABLE &&
	    (!c->client_tls_cert_file || !c->client_tls_key_file))
		fail(p, "client_tls_sslmode needs client_tls_cert_file and client_tls_key_file");
	if (c->client_tls_sslmode >= CONF_SSL_VERIFY_CA && !c->client_tls_ca_file)
		fail(p, "client_tls_sslmode verify-ca/verify-full needs client_tls_ca_file");
	if (c->server_tls_sslmode >= CONF_SSL_VERIFY_CA && !c->server_tls_ca_file)
		fail(p, "server_tls_sslmode verify-ca/verify-full needs server_tls_ca_file");
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
		fail(&p, "syntax error: expected [section], key = value or a comment");
	}
	if (ioerr)
		fail(&p, "read error");
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
	free(c->logfile);
	free(c->pidfile);
	free(c->client_tls_sslmode_str);
	free(c->client_tls_cert_file);
	free(c->client_tls_key_file);
	free(c->client_tls_ca_file);
	free(c->server_tls_cert_file);
	free(c->server_tls_key_file);
	free(c->server_tls_ca_file);
	free(c->cache.redis_host);
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
