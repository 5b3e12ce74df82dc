/* Configuration parsing: defaults, PgBouncer compatibility, every error
 * reported with file and line. */
#include <criterion/criterion.h>
#include <string.h>

#include "conf/conf.h"

#define DATA "tests/data/conf/"

Test(conf, valid_pgbouncer_style_file)
{
	struct conf c;
	char err[512] = "";

	cr_assert_eq(conf_load(DATA "valid.ini", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.listen_addr, "*");
	cr_assert_eq(c.listen_port, 7432);
	cr_assert_eq(c.auth_type, CONF_AUTH_SCRAM);
	cr_assert_eq(c.pool_mode, CONF_POOL_TRANSACTION);
	cr_assert_eq(c.default_pool_size, 30);
	cr_assert_eq(c.min_pool_size, 5, "default min_pool_size");
	cr_assert_float_eq(c.query_wait_timeout, 0.5, 1e-9);
	cr_assert_float_eq(c.server_lifetime, 120, 1e-9);
	cr_assert_null(c.logfile, "empty logfile means stderr");
	cr_assert_str_eq(c.server_reset_query, "DISCARD ALL");
	cr_assert_eq(c.nadmin_users, 2);
	cr_assert(conf_is_admin(&c, "root"));
	cr_assert(conf_is_stats_user(&c, "watcher"));
	cr_assert_not(conf_is_admin(&c, "watcher"));
	cr_assert(c.cache.enabled);
	cr_assert_eq(c.cache.redis_port, 6380);

	const struct conf_db *app = conf_find_db(&c, "app");
	cr_assert_not_null(app);
	cr_assert_eq(app->port, 5433);
	cr_assert_str_eq(app->dbname, "appdb");
	cr_assert_eq(app->pool_size, 20);
	cr_assert_eq(app->min_pool_size, 2);
	cr_assert_eq(app->pool_mode, CONF_POOL_UNSET);
	cr_assert_eq(app->line, 3);

	const struct conf_db *fixed = conf_find_db(&c, "fixed");
	cr_assert_str_eq(fixed->user, "report");
	cr_assert_str_eq(fixed->password, "s p'ace");
	cr_assert_eq(fixed->pool_mode, CONF_POOL_SESSION);
	cr_assert_eq(fixed->port, 5432);

	const struct conf_db *other = conf_find_db(&c, "anything");
	cr_assert_not_null(other);
	cr_assert_str_eq(other->name, "*");
	cr_assert_null(other->dbname, "the fallback uses the client's database name");

	const struct conf_user *u = conf_find_user(&c, "batch");
	cr_assert_not_null(u);
	cr_assert_eq(u->pool_mode, CONF_POOL_SESSION);
	cr_assert_eq(u->max_user_connections, 4);
	conf_free(&c);
}

static void expect_error(const char *file, const char *where, const char *what)
{
	struct conf c;
	char err[512] = "";

	cr_assert_eq(conf_load(file, &c, err, sizeof(err)), -1, "%s should fail", file);
	cr_assert(strstr(err, where) != NULL, "\"%s\" lacks \"%s\"", err, where);
	cr_assert(strstr(err, what) != NULL, "\"%s\" lacks \"%s\"", err, what);
}

Test(conf, errors_name_file_and_line)
{
	expect_error(DATA "unknown_key.ini", "unknown_key.ini:5:", "no_such_key");
	expect_error(DATA "bad_port.ini", "bad_port.ini:2:", "port");
	expect_error(DATA "bad_mode.ini", "bad_mode.ini:4:", "sometimes");
	expect_error(DATA "bad_duration.ini", "bad_duration.ini:4:", "query_wait_timeout");
	expect_error(DATA "syntax.ini", "syntax.ini:4:", "syntax");
	expect_error(DATA "bad_db_key.ini", "bad_db_key.ini:2:", "bogus");
	expect_error(DATA "no_databases.ini", "no_databases.ini", "[databases]");
	expect_error(DATA "does_not_exist.ini", "does_not_exist.ini", "cannot open");
}

Test(conf, pool_mode_names)
{
	cr_assert_str_eq(conf_pool_mode_name(CONF_POOL_SESSION), "session");
	cr_assert_str_eq(conf_pool_mode_name(CONF_POOL_TRANSACTION), "transaction");
	cr_assert_str_eq(conf_pool_mode_name(CONF_POOL_STATEMENT), "statement");
}

Test(authfile, quoted_entries)
{
	struct conf_authlist a;
	char err[256] = "";

	cr_assert_eq(conf_load_auth_file(DATA "userlist.txt", &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(a.n, 2);
	cr_assert_str_eq(conf_auth_lookup(&a, "alice"), "pa\"ss");
	cr_assert_str_eq(conf_auth_lookup(&a, "bob"), "md5e10adc3949ba59abbe56e057f20f883e");
	cr_assert_null(conf_auth_lookup(&a, "carol"));
	conf_free_auth(&a);
}

Test(authfile, malformed_line_reported_without_secret)
{
	struct conf_authlist a;
	char err[256] = "";

	cr_assert_eq(conf_load_auth_file(DATA "userlist_bad.txt", &a, err, sizeof(err)), -1);
	cr_assert(strstr(err, "userlist_bad.txt:1:") != NULL, "%s", err);
	cr_assert(strstr(err, "unterminated") == NULL, "the secret must not be echoed: %s", err);
}
