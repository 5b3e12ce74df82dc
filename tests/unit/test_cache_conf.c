/* The [cache] section: defaults, redis_url forms, sizes, rules and the
 * values refused until they are implemented, each error with its line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

#define HEAD "[databases]\napp = host=127.0.0.1\n[sluice]\nauth_type = trust\n[cache]\n"

static int load(const char *settings, struct conf *c, char *err, size_t errlen)
{
	char path[64], body[4096];
	int fd, rc;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/sluice-test-cache-conf-XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	snprintf(body, sizeof(body), "%s%s", HEAD, settings);
	fputs(body, f);
	fclose(f);
	rc = conf_load(path, c, err, errlen);
	unlink(path);
	return rc;
}

static void ok(const char *settings, struct conf *c)
{
	char err[1024] = "";

	cr_assert_eq(load(settings, c, err, sizeof(err)), 0, "%s: %s", settings, err);
}

/* <settings> fail on <line> (HEAD's [cache] is line 5, so the first
 * setting is line 6) with a message holding <what>; returns the message. */
static void fails(const char *settings, int line, const char *what, char *err, size_t errlen)
{
	struct conf c;
	char where[32];

	err[0] = 0;
	cr_assert_eq(load(settings, &c, err, errlen), -1, "%s should fail", settings);
	snprintf(where, sizeof(where), ":%d: ", line);
	cr_assert(strstr(err, where) != NULL, "\"%s\" lacks line %d", err, line);
	cr_assert(strstr(err, what) != NULL, "\"%s\" lacks \"%s\"", err, what);
}

static void fails1(const char *settings, int line, const char *what)
{
	char err[1024];

	fails(settings, line, what, err, sizeof(err));
}

Test(cache_conf, defaults)
{
	struct conf c;

	ok("", &c);
	cr_assert_not(c.cache.enabled);
	cr_assert_str_eq(c.cache.redis_url, "redis://127.0.0.1:6379");
	cr_assert_str_eq(c.cache.redis_host, "127.0.0.1");
	cr_assert_eq(c.cache.redis_port, 6379);
	cr_assert_null(c.cache.redis_unix);
	cr_assert_null(c.cache.redis_password);
	cr_assert_eq(c.cache.redis_db, 0);
	cr_assert_eq(c.cache.default_ttl, 60);
	cr_assert_eq(c.cache.max_result_bytes, 1024 * 1024);
	cr_assert_eq(c.cache.l1_bytes, 16 * 1024 * 1024);
	cr_assert_eq(c.cache.redis_timeout_ms, 100);
	cr_assert_not(c.cache.strict);
	cr_assert_eq(c.cache.invalidation, CONF_CACHE_INVAL_NONE);
	cr_assert_eq(c.cache.nrules, 0);
	conf_free(&c);

	conf_init_defaults(&c);
	cr_assert_eq(c.cache.max_result_bytes, 1024 * 1024, "SHOW CONFIG's defaults too");
	conf_free(&c);
}

Test(cache_conf, redis_url_forms)
{
	struct conf c;

	ok("redis_url = redis://cache.internal:6380/3\n", &c);
	cr_assert_str_eq(c.cache.redis_host, "cache.internal");
	cr_assert_eq(c.cache.redis_port, 6380);
	cr_assert_eq(c.cache.redis_db, 3);
	cr_assert_null(c.cache.redis_password);
	conf_free(&c);

	ok("redis_url = redis://10.0.0.5\n", &c);
	cr_assert_str_eq(c.cache.redis_host, "10.0.0.5");
	cr_assert_eq(c.cache.redis_port, 6379, "the port defaults to 6379");
	cr_assert_eq(c.cache.redis_db, 0);
	conf_free(&c);

	ok("redis_url = redis://:s%40cret:x@[::1]:7000/\n", &c);
	cr_assert_str_eq(c.cache.redis_host, "::1");
	cr_assert_eq(c.cache.redis_port, 7000);
	cr_assert_null(c.cache.redis_user);
	cr_assert_str_eq(c.cache.redis_password, "s@cret:x", "%%40 is '@'; a ':' stays");
	cr_assert(strstr(c.cache.redis_url, "cret") == NULL, "shown url %s has the password",
	          c.cache.redis_url);
	cr_assert(strstr(c.cache.redis_url, "***") != NULL);
	conf_free(&c);

	ok("redis_url = redis://sluice:pw@localhost:6379/1\n", &c);
	cr_assert_str_eq(c.cache.redis_user, "sluice");
	cr_assert_str_eq(c.cache.redis_password, "pw");
	cr_assert_eq(c.cache.redis_db, 1);
	conf_free(&c);

	ok("redis_url = /run/redis/redis.sock\n", &c);
	cr_assert_str_eq(c.cache.redis_unix, "/run/redis/redis.sock");
	cr_assert_null(c.cache.redis_host);
	cr_assert_str_eq(c.cache.redis_url, "/run/redis/redis.sock");
	conf_free(&c);

	/* the older keys still work and make the same url */
	ok("redis_host = 127.0.0.2\nredis_port = 6390\n", &c);
	cr_assert_str_eq(c.cache.redis_host, "127.0.0.2");
	cr_assert_eq(c.cache.redis_port, 6390);
	cr_assert_str_eq(c.cache.redis_url, "redis://127.0.0.2:6390/0");
	conf_free(&c);
}

Test(cache_conf, redis_url_errors)
{
	char err[1024];

	fails1("redis_url = http://x\n", 6, "redis_url must be redis://");
	fails1("redis_url = redis://h:0\n", 6, "port must be 1..65535");
	fails1("redis_url = redis://h:70000\n", 6, "port must be 1..65535");
	fails1("redis_url = redis://h:12/x\n", 6, "database after / must be a number");
	fails1("redis_url = redis://\n", 6, "expected a host");
	fails1("redis_url = redis://[::1:6379\n", 6, "unterminated [");
	fails1("redis_url = rediss://h\n", 6, "no TLS to Redis");
	fails1("redis_url = redis://h:6379/0\nredis_port = 1\n", 7,
	       "both redis_url and redis_host");
	fails1("redis_port = 1\nredis_url = redis://h:6379/0\n", 7,
	       "both redis_url and redis_host");
	/* a password must not appear in an error */
	fails("redis_url = redis://u:topsecret@h:99999\n", 6, "port", err, sizeof(err));
	cr_assert(strstr(err, "topsecret") == NULL, "%s", err);
	fails("redis_url = redis://topsecret@h\n", 6, "credentials", err, sizeof(err));
	cr_assert(strstr(err, "topsecret") == NULL, "%s", err);
	fails("redis_url = rediss://u:topsecret@h\n", 6, "TLS", err, sizeof(err));
	cr_assert(strstr(err, "topsecret") == NULL, "%s", err);
}

Test(cache_conf, sizes_and_times)
{
	struct conf c;

	ok("max_result_bytes = 512kB\nl1_bytes = 0\nredis_timeout_ms = 20\n"
	   "default_ttl = 5min\ncache_strict = on\ninvalidation = none\n",
	   &c);
	cr_assert_eq(c.cache.max_result_bytes, 512 * 1024);
	cr_assert_eq(c.cache.l1_bytes, 0, "0 turns the L1 off");
	cr_assert_eq(c.cache.redis_timeout_ms, 20);
	cr_assert_eq(c.cache.default_ttl, 300);
	cr_assert(c.cache.strict);
	conf_free(&c);

	ok("max_result_bytes = 2097152\nl1_bytes = 1GB\n", &c);
	cr_assert_eq(c.cache.max_result_bytes, 2 * 1024 * 1024);
	cr_assert_eq(c.cache.l1_bytes, (size_t)1024 * 1024 * 1024);
	conf_free(&c);

	fails1("max_result_bytes = 100\n", 6, "max_result_bytes must be 1kB..512MB");
	fails1("max_result_bytes = 1TB\n", 6, "max_result_bytes must be");
	fails1("max_result_bytes = -1\n", 6, "max_result_bytes must be");
	fails1("l1_bytes = lots\n", 6, "l1_bytes must be");
	fails1("redis_timeout_ms = 0\n", 6, "redis_timeout_ms must be 1..60000");
	fails1("default_ttl = 0\n", 6, "default_ttl must be a duration of 1s");
	fails1("default_ttl = 500ms\n", 6, "default_ttl must be a duration of 1s");
	fails1("cache_strict = maybe\n", 6, "cache_strict must be on or off");
	fails1("invalidation = triggers\n", 6, "invalidation must be none or notify");
	fails1("l1_entries = 100\n", 6, "replaced by l1_bytes");
}

Test(cache_conf, enabled)
{
	struct conf c;

	ok("enabled = 1\n", &c);
	cr_assert(c.cache.enabled);
	conf_free(&c);
}

Test(cache_conf, refused_values)
{
	fails1("invalidation = sometimes\n", 6, "invalidation must be none or notify");
	fails1("enabled = sometimes\n", 6, "enabled must be 0 or 1");
}

/* invalidation = notify with one LISTEN connection per database. */
Test(cache_conf, notify)
{
	struct conf c;

	ok("invalidation = notify\n"
	   "notify.app = host=127.0.0.1 port=5432 dbname=app user=u password='s e'\n",
	   &c);
	cr_assert_eq(c.cache.invalidation, CONF_CACHE_INVAL_NOTIFY);
	cr_assert_eq(c.cache.nnotify, 1);
	cr_assert_str_eq(c.cache.notify[0].db, "app");
	cr_assert_str_eq(c.cache.notify[0].conninfo,
	                 "host=127.0.0.1 port=5432 dbname=app user=u password='s e'");
	cr_assert_eq(c.cache.notify[0].line, 7);
	conf_free(&c);
	/* a URI, and the keys in either order */
	ok("notify.app = postgresql://u:pw@127.0.0.1:5432/app\ninvalidation = notify\n", &c);
	cr_assert_eq(c.cache.nnotify, 1);
	conf_free(&c);
	ok("invalidation = none\n", &c);
	cr_assert_eq(c.cache.invalidation, CONF_CACHE_INVAL_NONE);
	conf_free(&c);
}

Test(cache_conf, notify_errors)
{
	char err[1024];

	fails1("invalidation = notify\n", 6,
	       "invalidation = notify needs a notify.<database> = <libpq connection string>");
	fails1("notify.app = dbname=app\n", 6,
	       "[cache] notify.app is set but invalidation is none; set invalidation = notify");
	fails1("invalidation = notify\nnotify.other = dbname=other\n", 7,
	       "[cache] notify.other: no database \"other\" in [databases]");
	fails1("invalidation = notify\nnotify.app = host=127.0.0.1\n", 7,
	       "names no database; add dbname=");
	fails1("invalidation = notify\nnotify.app = dbname=app\nnotify.app = dbname=app\n", 8,
	       "[cache] notify.app is given twice (first on line 7)");
	fails1("invalidation = notify\nnotify.* = dbname=app\n", 7, "name each database");
	fails1("invalidation = notify\nnotify.app = dbname=app replication=database\n", 7,
	       "cannot be a replication connection");
	/* libpq cannot read it; the message must not quote the password */
	fails("invalidation = notify\nnotify.app = dbname=app password=my secret\n", 7,
	      "not a libpq connection string", err, sizeof(err));
	cr_assert_null(strstr(err, "secret"), "%s", err);
	fails("invalidation = notify\nnotify.app = postgresql://u:hunter2@[::1/app\n", 7,
	      "not a libpq connection string", err, sizeof(err));
	cr_assert_null(strstr(err, "hunter2"), "%s", err);
}

Test(cache_conf, rules)
{
	struct conf c;

	ok("table.public.users = 30\ntable.orders = 2min\nquery.00AbC123deadbeef = 1h\n"
	   "query.1f = 10s\n",
	   &c);
	cr_assert_eq(c.cache.nrules, 4);
	cr_assert(c.cache.rules[0].is_table);
	cr_assert_str_eq(c.cache.rules[0].table, "public.users");
	cr_assert_eq(c.cache.rules[0].ttl_s, 30);
	cr_assert_eq(c.cache.rules[0].line, 6);
	cr_assert_str_eq(c.cache.rules[1].table, "orders");
	cr_assert_eq(c.cache.rules[1].ttl_s, 120);
	cr_assert_not(c.cache.rules[2].is_table);
	cr_assert_eq(c.cache.rules[2].fp, 0x00abc123deadbeefull);
	cr_assert_eq(c.cache.rules[2].ttl_s, 3600);
	cr_assert_eq(c.cache.rules[3].fp, 0x1f);
	conf_free(&c);

	fails1("table.a.b.c = 10\n", 6, "a table rule names one table");
	fails1("table. = 10\n", 6, "a table rule names one table");
	fails1("table..x = 10\n", 6, "a table rule names one table");
	fails1("query.xyz = 10\n", 6, "fingerprint in hex");
	fails1("query.0 = 10\n", 6, "fingerprint in hex");
	fails1("query.11112222333344445 = 10\n", 6, "fingerprint in hex");
	fails1("table.users = forever\n", 6, "TTL must be a duration");
	fails1("table.users = 0\n", 6, "TTL must be a duration");
	fails1("table.users = 10\ntable.users = 20\n", 7, "given twice (first on line 6)");
	fails1("query.ab = 10\nquery.AB = 20\n", 7, "given twice");
	fails1("tables.users = 10\n", 6, "unknown key \"tables.users\" in [cache]");
}
