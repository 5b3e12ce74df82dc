/*
 * The [cache] section of the ini file: where Redis is (redis_url, or the
 * older redis_host / redis_port), how long entries live, how big a reply
 * and the in-process L1 may be, and the rules that mark statements
 * cacheable without a comment hint ("table.<schema.table> = <ttl>",
 * "query.<fingerprint> = <ttl>"), and with invalidation = notify the
 * connection strings of the LISTEN connections ("notify.<db> =
 * <conninfo>", checked with libpq's own parser and never echoed, as they
 * may hold a password). Every value is checked here; cache/ only reads
 * the result. Pure code: errors go through conf_fail.
 */
#include "conf/conf.h"
#include "conf/conf_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#define TTL_MAX_S    (30u * 24 * 3600) /* a month: beyond, set no rule */
#define TABLE_MAX    127               /* "schema.table", 63 bytes each */
#define URL_PART_MAX 255
#define DBNAME_MAX   63 /* PostgreSQL's NAMEDATALEN - 1 */

static char *dup_or_die(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (!d) {
		fputs("sluice: out of memory\n", stderr);
		abort();
	}
	return d;
}

static void replace(char **dst, char *v)
{
	free(*dst);
	*dst = v;
}

void conf_cache_defaults(struct conf_cache *cc)
{
	cc->redis_url = dup_or_die("redis://127.0.0.1:6379", 22);
	cc->redis_host = dup_or_die("127.0.0.1", 9);
	cc->redis_port = 6379;
	cc->default_ttl = 60;
	cc->max_result_bytes = 1024 * 1024;
	cc->l1_bytes = 16 * 1024 * 1024;
	cc->redis_timeout_ms = 100;
}

void conf_cache_free(struct conf_cache *cc)
{
	free(cc->redis_url);
	free(cc->redis_host);
	free(cc->redis_unix);
	free(cc->redis_user);
	free(cc->redis_password);
	for (size_t i = 0; i < cc->nrules; i++)
		free(cc->rules[i].table);
	free(cc->rules);
	for (size_t i = 0; i < cc->nnotify; i++) {
		free(cc->notify[i].db);
		/* it may hold a password: do not leave it in freed memory */
		if (cc->notify[i].conninfo)
			explicit_bzero(cc->notify[i].conninfo, strlen(cc->notify[i].conninfo));
		free(cc->notify[i].conninfo);
	}
	free(cc->notify);
	memset(cc, 0, sizeof(*cc));
}

/* A byte count with an optional PostgreSQL-style unit: 512kB, 16MB, 1GB. */
static bool parse_bytes(const char *v, size_t lo, size_t hi, size_t *out)
{
	char *end;
	unsigned long long n, mul = 1;

	errno = 0;
	if (!isdigit((unsigned char)v[0]))
		return false;
	n = strtoull(v, &end, 10);
	if (end == v || errno)
		return false;
	while (*end == ' ')
		end++;
	if (*end == 0 || strcasecmp(end, "B") == 0)
		mul = 1;
	else if (strcasecmp(end, "kB") == 0 || strcasecmp(end, "k") == 0)
		mul = 1024;
	else if (strcasecmp(end, "MB") == 0 || strcasecmp(end, "M") == 0)
		mul = 1024 * 1024;
	else if (strcasecmp(end, "GB") == 0 || strcasecmp(end, "G") == 0)
		mul = 1024ull * 1024 * 1024;
	else
		return false;
	if (n > (unsigned long long)hi / mul || n * mul < lo)
		return false;
	*out = (size_t)(n * mul);
	return true;
}

/* A TTL: a duration (60, 30s, 5min, 1h) of at least one second, kept in
 * whole seconds (Redis' EX takes whole seconds). */
static bool parse_ttl(const char *v, uint32_t *out)
{
	double d;

	if (!conf_parse_duration(v, &d) || d < 1 || d > TTL_MAX_S)
		return false;
	*out = (uint32_t)d;
	return true;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Copy [s, s+n) undoing %XX escapes (a password may hold '@' or ':'). */
static char *url_unescape(const char *s, size_t n)
{
	char *d = dup_or_die(s, n), *w = d;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*w++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			*w++ = s[i];
		}
	}
	*w = 0;
	return d;
}

/* Host characters: a name or a numeric address (no blanks, no '/'). */
static bool host_ok(const char *s, size_t n)
{
	if (n == 0 || n > URL_PART_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(".-_:", s[i]))
			return false;
	return true;
}

/*
 * "redis://[[user]:password@]host[:port][/db]" or "/path/to/redis.sock".
 * On success the parsed parts replace those in <cc>; the password is never
 * echoed in a message.
 */
static void set_redis_url(struct parse *p, const char *v)
{
	struct conf_cache *cc = &p->c->cache;
	const char *s, *at, *hs, *he, *rest, *slash;
	char *user = NULL, *pass = NULL, *host = NULL, *shown;
	int port = 6379, db = 0;
	size_t n;

	if (v[0] == '/') {
		if (strlen(v) > 107) { /* sun_path holds 108 bytes with the NUL */
			conf_fail(p, "redis_url: unix socket path longer than 107 bytes");
			return;
		}
		replace(&cc->redis_unix, dup_or_die(v, strlen(v)));
		replace(&cc->redis_host, NULL);
		replace(&cc->redis_user, NULL);
		replace(&cc->redis_password, NULL);
		replace(&cc->redis_url, dup_or_die(v, strlen(v)));
		cc->redis_port = 0;
		cc->redis_db = 0;
		p->cache_url_line = p->line;
		return;
	}
	if (strncasecmp(v, "rediss://", 9) == 0) {
		conf_refuse(p, "[cache] ", "redis_url", "rediss://...",
		            "no TLS to Redis yet; use redis:// on a trusted network or a unix "
		            "socket path");
		return;
	}
	if (strncasecmp(v, "redis://", 8) != 0) {
		conf_fail(p,
		          "redis_url must be redis://[[user]:password@]host[:port][/db] or an "
		          "absolute unix socket path, got a value starting \"%.12s\"",
		          v);
		return;
	}
	s = v + 8;
	/* the last '@' ends the credentials: a password may hold '@' only
	 * escaped, but a stray one must not make the password a host name */
	at = strrchr(s, '@');
	if (at) {
		const char *colon = memchr(s, ':', (size_t)(at - s));

		if (!colon) {
			conf_fail(p, "redis_url: credentials must be [user]:password@ (the "
			             "password after a colon)");
			return;
		}
		if (colon > s)
			user = url_unescape(s, (size_t)(colon - s));
		pass = url_unescape(colon + 1, (size_t)(at - colon - 1));
		s = at + 1;
	}
	if (*s == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (!he) {
			conf_fail(p, "redis_url: unterminated [ in the host");
			goto fail;
		}
		rest = he + 1;
	} else {
		hs = s;
		he = hs + strcspn(hs, ":/");
		rest = he;
	}
	if (!host_ok(hs, (size_t)(he - hs))) {
		conf_fail(p, "redis_url: expected a host name or address after redis://");
		goto fail;
	}
	host = dup_or_die(hs, (size_t)(he - hs));
	if (*rest == ':') {
		char num[8];

		n = strcspn(rest + 1, "/");
		if (n == 0 || n >= sizeof(num)) {
			conf_fail(p, "redis_url: the port must be 1..65535");
			goto fail;
		}
		memcpy(num, rest + 1, n);
		num[n] = 0;
		if (!conf_parse_int(num, 1, 65535, &port)) {
			conf_fail(p, "redis_url: the port must be 1..65535, got \"%s\"", num);
			goto fail;
		}
		rest += 1 + n;
	}
	slash = rest;
	if (*slash == '/' && slash[1]) {
		if (!conf_parse_int(slash + 1, 0, 1000000, &db)) {
			conf_fail(p, "redis_url: the database after / must be a number 0..1000000");
			goto fail;
		}
	} else if (*slash && strcmp(slash, "/") != 0) {
		conf_fail(p, "redis_url: unexpected text after the host");
		goto fail;
	}
	/* what SHOW CONFIG and log lines may show */
	{
		char buf[600];

		snprintf(buf, sizeof(buf), "redis://%s%s%s%s%s:%d/%d", user ? user : "",
		         pass ? ":***@" : "", *s == '[' ? "[" : "", host, *s == '[' ? "]" : "",
		         port, db);
		shown = dup_or_die(buf, strlen(buf));
	}
	replace(&cc->redis_url, shown);
	replace(&cc->redis_host, host);
	replace(&cc->redis_unix, NULL);
	replace(&cc->redis_user, user);
	replace(&cc->redis_password, pass);
	cc->redis_port = port;
	cc->redis_db = db;
	p->cache_url_line = p->line;
	return;
fail:
	free(user);
	free(pass);
	free(host);
}

/* "public.users" or "users": one or two non-empty parts, no blanks. */
static bool table_name_ok(const char *t)
{
	size_t n = strlen(t), dots = 0;

	if (n == 0 || n > TABLE_MAX || t[0] == '.' || t[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '.') {
			if (++dots > 1 || t[i + 1] == '.')
				return false;
		} else if (isspace((unsigned char)t[i]) || iscntrl((unsigned char)t[i])) {
			return false;
		}
	}
	return true;
}

static bool parse_fp(const char *v, uint64_t *out)
{
	uint64_t fp = 0;
	size_t n = strlen(v);

	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		int h = hexval((unsigned char)v[i]);

		if (h < 0)
			return false;
		fp = fp << 4 | (uint64_t)h;
	}
	*out = fp;
	return fp != 0;
}

static void add_rule(struct parse *p, const char *name, const char *v)
{
	struct conf_cache *cc = &p->c->cache;
	struct conf_cache_rule r = {.line = p->line};
	struct conf_cache_rule *nv;

	if (strncmp(name, "table.", 6) == 0) {
		r.is_table = true;
		if (!table_name_ok(name + 6)) {
			conf_fail(
			        p,
			        "[cache] %s: a table rule names one table, table.<schema>.<table> "
			        "or table.<table>",
			        name);
			return;
		}
	} else if (!parse_fp(name + 6, &r.fp)) {
		conf_fail(p,
		          "[cache] %s: a query rule names a statement fingerprint in hex, as "
		          "SHOW QUERIES prints it (query.<fingerprint>)",
		          name);
		return;
	}
	if (!parse_ttl(v, &r.ttl_s)) {
		conf_fail(p, "[cache] %s: the TTL must be a duration of 1s to 30 days, got \"%s\"",
		          name, v);
		return;
	}
	for (size_t i = 0; i < cc->nrules; i++) {
		const struct conf_cache_rule *o = &cc->rules[i];

		if (o->is_table == r.is_table &&
		    (r.is_table ? strcmp(o->table, name + 6) == 0 : o->fp == r.fp)) {
			conf_fail(p, "[cache] %s is given twice (first on line %d); keep one", name,
			          o->line);
			return;
		}
	}
	nv = realloc(cc->rules, (cc->nrules + 1) * sizeof(*nv));
	if (!nv) {
		fputs("sluice: out of memory\n", stderr);
		abort();
	}
	cc->rules = nv;
	if (r.is_table)
		r.table = dup_or_die(name + 6, strlen(name + 6));
	cc->rules[cc->nrules++] = r;
}

/*
 * "notify.<db> = <conninfo>". <db> is a database name as clients give it;
 * <conninfo> is parsed by libpq (key=value pairs or a postgresql:// URI)
 * so a typo is caught at load, not at the first reconnect. libpq's own
 * message is not passed on: it quotes the text it choked on, which may be
 * a piece of the password.
 */
static void add_notify(struct parse *p, const char *name, const char *v)
{
	struct conf_cache *cc = &p->c->cache;
	const char *db = name + 7;
	size_t n = strlen(db);
	struct conf_cache_notify *nv;
	PQconninfoOption *opts;
	char *perr = NULL;
	bool has_db = false;

	if (n == 0 || n > DBNAME_MAX) {
		conf_fail(p, "[cache] %s: name one database, notify.<database> (1 to %d bytes)",
		          name, DBNAME_MAX);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (isspace((unsigned char)db[i]) || iscntrl((unsigned char)db[i])) {
			conf_fail(p,
			          "[cache] %s: a database name has no blanks or control characters",
			          name);
			return;
		}
	}
	if (strcmp(db, "*") == 0) {
		conf_fail(p, "[cache] notify.*: name each database, notify.<database> = <libpq "
		             "connection string>");
		return;
	}
	for (size_t i = 0; i < cc->nnotify; i++) {
		if (strcmp(cc->notify[i].db, db) == 0) {
			conf_fail(p, "[cache] %s is given twice (first on line %d); keep one", name,
			          cc->notify[i].line);
			return;
		}
	}
	opts = PQconninfoParse(v, &perr);
	if (!opts) {
		PQfreemem(perr);
		conf_fail(p,
		          "[cache] %s: not a libpq connection string; write key=value pairs "
		          "(host=... port=... dbname=... user=... password=..., a value with "
		          "blanks in single quotes) or a postgresql:// URI",
		          name);
		return;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "dbname") == 0 && o->val && o->val[0])
			has_db = true;
		if (strcmp(o->keyword, "replication") == 0 && o->val && o->val[0]) {
			PQconninfoFree(opts);
			conf_fail(p,
			          "[cache] %s: a LISTEN connection cannot be a replication "
			          "connection; drop replication=",
			          name);
			return;
		}
	}
	PQconninfoFree(opts);
	if (!has_db) {
		/* libpq would pick the user's name: rarely the database meant */
		conf_fail(p,
		          "[cache] %s: the connection string names no database; add "
		          "dbname=<the PostgreSQL database of %s>",
		          name, db);
		return;
	}
	nv = realloc(cc->notify, (cc->nnotify + 1) * sizeof(*nv));
	if (!nv) {
		fputs("sluice: out of memory\n", stderr);
		abort();
	}
	cc->notify = nv;
	cc->notify[cc->nnotify].db = dup_or_die(db, n);
	cc->notify[cc->nnotify].conninfo = dup_or_die(v, strlen(v));
	cc->notify[cc->nnotify].line = p->line;
	cc->nnotify++;
}

void conf_cache_key(struct parse *p, const char *name, const char *v)
{
	struct conf_cache *cc = &p->c->cache;

	if (strcmp(name, "enabled") == 0) {
		if (!conf_parse_bool(v, &cc->enabled))
			conf_fail(p, "enabled must be 0 or 1, got \"%s\"", v);
	} else if (strcmp(name, "redis_url") == 0) {
		set_redis_url(p, v);
	} else if (strcmp(name, "redis_host") == 0) {
		if (!host_ok(v, strlen(v))) {
			conf_fail(p, "redis_host must be a host name or address, got \"%s\"", v);
			return;
		}
		replace(&cc->redis_host, dup_or_die(v, strlen(v)));
		replace(&cc->redis_unix, NULL);
		p->cache_hostport_line = p->line;
	} else if (strcmp(name, "redis_port") == 0) {
		if (!conf_parse_int(v, 1, 65535, &cc->redis_port))
			conf_fail(p, "redis_port must be 1..65535, got \"%s\"", v);
		p->cache_hostport_line = p->line;
	} else if (strcmp(name, "default_ttl") == 0) {
		if (!parse_ttl(v, &cc->default_ttl))
			conf_fail(p, "default_ttl must be a duration of 1s to 30 days, got \"%s\"",
			          v);
	} else if (strcmp(name, "max_result_bytes") == 0) {
		/* Redis holds strings of up to 512 MB */
		if (!parse_bytes(v, 1024, 512u * 1024 * 1024, &cc->max_result_bytes))
			conf_fail(p,
			          "max_result_bytes must be 1kB..512MB (like 1048576 or 1MB), got "
			          "\"%s\"",
			          v);
	} else if (strcmp(name, "l1_bytes") == 0) {
		if (!parse_bytes(v, 0, (size_t)64 * 1024 * 1024 * 1024, &cc->l1_bytes))
			conf_fail(p,
			          "l1_bytes must be 0 (no L1) up to 64GB (like 16MB), got \"%s\"",
			          v);
	} else if (strcmp(name, "redis_timeout_ms") == 0) {
		if (!conf_parse_int(v, 1, 60000, &cc->redis_timeout_ms))
			conf_fail(p, "redis_timeout_ms must be 1..60000, got \"%s\"", v);
	} else if (strcmp(name, "cache_strict") == 0) {
		if (!conf_parse_bool(v, &cc->strict))
			conf_fail(p, "cache_strict must be on or off, got \"%s\"", v);
	} else if (strcmp(name, "invalidation") == 0) {
		p->cache_inval_line = p->line;
		if (strcasecmp(v, "none") == 0)
			cc->invalidation = CONF_CACHE_INVAL_NONE;
		else if (strcasecmp(v, "notify") == 0)
			cc->invalidation = CONF_CACHE_INVAL_NOTIFY;
		else
			conf_fail(p, "invalidation must be none or notify, got \"%s\"", v);
	} else if (strncmp(name, "notify.", 7) == 0) {
		add_notify(p, name, v);
	} else if (strncmp(name, "table.", 6) == 0 || strncmp(name, "query.", 6) == 0) {
		add_rule(p, name, v);
	} else if (strcmp(name, "l1_entries") == 0) {
		/* the L1 is bounded by bytes now; a count alone says nothing
		 * about the memory it takes */
		conf_fail(p, "l1_entries is replaced by l1_bytes (the L1 is bounded by the "
		             "bytes it holds, default 16MB)");
	} else {
		conf_fail(p, "unknown key \"%s\" in [cache]", name);
	}
}

/* A notify.<db> must name a database sluice serves, and invalidation =
 * notify needs at least one; -1 after conf_fail. */
static int notify_validate(struct parse *p)
{
	const struct conf *c = p->c;
	const struct conf_cache *cc = &c->cache;
	bool star = false;

	if (cc->invalidation != CONF_CACHE_INVAL_NOTIFY) {
		if (cc->nnotify) {
			p->line = cc->notify[0].line;
			conf_fail(p,
			          "[cache] notify.%s is set but invalidation is none; set "
			          "invalidation = notify (or drop the notify.* keys)",
			          cc->notify[0].db);
			p->line = 0;
			return -1;
		}
		return 0;
	}
	if (!cc->nnotify) {
		p->line = p->cache_inval_line;
		conf_fail(p, "invalidation = notify needs a notify.<database> = <libpq connection "
		             "string> for each database whose tables carry the triggers of "
		             "sql/sluice_notify.sql");
		p->line = 0;
		return -1;
	}
	for (size_t i = 0; i < c->ndbs; i++)
		if (strcmp(c->dbs[i].name, "*") == 0)
			star = true;
	for (size_t i = 0; i < cc->nnotify && !star; i++) {
		bool known = false;

		for (size_t j = 0; j < c->ndbs && !known; j++)
			known = strcmp(c->dbs[j].name, cc->notify[i].db) == 0;
		if (!known) {
			p->line = cc->notify[i].line;
			conf_fail(p,
			          "[cache] notify.%s: no database \"%s\" in [databases]; name a "
			          "database clients connect to",
			          cc->notify[i].db, cc->notify[i].db);
			p->line = 0;
			return -1;
		}
	}
	return 0;
}

void conf_cache_validate(struct parse *p)
{
	if (p->cache_url_line && p->cache_hostport_line) {
		p->line = p->cache_url_line > p->cache_hostport_line ? p->cache_url_line
		                                                     : p->cache_hostport_line;
		conf_fail(p, "[cache] has both redis_url and redis_host/redis_port; keep "
		             "redis_url alone");
		p->line = 0;
		return;
	}
	if (notify_validate(p) < 0)
		return;
	if (p->cache_hostport_line) {
		struct conf_cache *cc = &p->c->cache;
		char buf[300];

		snprintf(buf, sizeof(buf), "redis://%s:%d/0", cc->redis_host, cc->redis_port);
		replace(&cc->redis_url, dup_or_die(buf, strlen(buf)));
	}
}
