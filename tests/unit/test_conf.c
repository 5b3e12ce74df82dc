/* Configuration parsing: defaults, PgBouncer compatibility, every error
 * reported with file and line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "protocol/proto.h"

#define DATA "tests/data/conf/"

Test(conf, valid_pgbouncer_style_file)
{
	struct conf c;
	char err[512] = "";

	cr_assert_eq(conf_load(DATA "valid.ini", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.listen_addr, "*");
	cr_assert_eq(c.nlisten_addrs, 2, "* is every IPv4 and every IPv6 address");
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
	cr_assert(!c.cache.enabled);
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

/* Write <body> to a fresh file and load it; the caller frees <c> on success. */
static int load_text(const char *body, struct conf *c, char *err, size_t errlen, char *path,
                     size_t pathlen)
{
	snprintf(path, pathlen, "/tmp/sluice-test-conf-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	FILE *f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(body, f);
	fclose(f);
	int rc = conf_load(path, c, err, errlen);
	unlink(path);
	return rc;
}

#define HEAD "[databases]\napp = host=127.0.0.1\n[sluice]\nauth_type = trust\n"

/* <settings> after HEAD (so their first line is line 5) must load. */
static void expect_ok(const char *settings, struct conf *c)
{
	char body[2048], err[1024] = "", path[64];

	snprintf(body, sizeof(body), "%s%s", HEAD, settings);
	cr_assert_eq(load_text(body, c, err, sizeof(err), path, sizeof(path)), 0,
	             "\"%s\" should load: %s", settings, err);
}

/* <body> must fail with "<file>:<line>: <what>..." */
static void expect_text_error(const char *body, int line, const char *what)
{
	struct conf c;
	char err[1024] = "", path[64], where[96];

	cr_assert_eq(load_text(body, &c, err, sizeof(err), path, sizeof(path)), -1,
	             "should fail with \"%s\":\n%s", what, body);
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", path, line);
	else
		snprintf(where, sizeof(where), "%s: ", path);
	cr_assert(strncmp(err, where, strlen(where)) == 0, "\"%s\" does not start with \"%s\"", err,
	          where);
	cr_assert(strstr(err, what) != NULL, "\"%s\" lacks \"%s\"", err, what);
}

/* One [sluice] line after HEAD, refused on line 5. */
static void expect_refused(const char *key, const char *value)
{
	char body[2048], what[512];

	snprintf(body, sizeof(body), "%s%s = %s\n", HEAD, key, value);
	snprintf(what, sizeof(what), "%s = %s is not supported by sluice (", key, value);
	expect_text_error(body, 5, what);
}

Test(conf_unsupported, pgbouncer_keys_at_sluice_behaviour_load)
{
	struct conf c;
	char err[1024] = "";

	cr_assert_eq(conf_load(DATA "pgbouncer_accepted.ini", &c, err, sizeof(err)), 0, "%s", err);
	conf_free(&c);
}

Test(conf_unsupported, keys_sluice_does_not_honour_stop_startup)
{
	static const char *const cases[][2] = {
	        {"unix_socket_group", "postgres"},
	        {"user", "postgres"},
	        {"syslog", "1"},
	        {"log_connections", "1"},
	        {"log_disconnections", "1"},
	        {"log_pooler_errors", "0"},
	        {"log_stats", "1"},
	        {"dns_zone_check_period", "60"},
	        {"resolv_conf", "/etc/pgbouncer/resolv.conf"},
	        {"listen_backlog", "128"},
	        {"so_reuseport", "1"},
	        {"tcp_defer_accept", "1"},
	        {"tcp_socket_buffer", "65536"},
	        {"tcp_keepalive", "1"},
	        {"tcp_keepcnt", "9"},
	        {"tcp_keepidle", "7200"},
	        {"tcp_keepintvl", "75"},
	        {"tcp_user_timeout", "1000"},
	        {"disable_pqexec", "1"},
	        {"application_name_add_host", "1"},
	        {"conffile", "/etc/pgbouncer/other.ini"},
	        {"auth_hba_file", "/etc/pgbouncer/hba.conf"},
	        {"auth_query", "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"},
	        {"auth_user", "pgbouncer"},
	        {"auth_dbname", "postgres"},
	        {"reserve_pool_size", "5"},
	        {"max_packet_size", "1048576"},
	        {"max_packet_size", "1073741823"},
	        {"max_packet_size", "big"},
	        {"server_round_robin", "1"},
	        {"server_fast_close", "1"},
	        {"client_tls_protocols", "all"},
	        {"client_tls_protocols", "tlsv1.3"},
	        {"client_tls_protocols", "legacy"},
	        {"client_tls_protocols", "tlsv1.1,tlsv1.2,tlsv1.3"},
	        {"client_tls_protocols", "secure,bogus"},
	        {"client_tls_ciphers", "fast"},
	        {"client_tls_ciphers", "default"},
	        {"client_tls_ciphers", "HIGH:!aNULL"},
	        {"client_tls_ecdhcurve", "secp384r1"},
	        {"client_tls_ecdhcurve", "none"},
	        {"client_tls_dheparams", "auto"},
	        {"client_tls_dheparams", "legacy"},
	        {"server_tls_protocols", "tlsv1.0"},
	        {"server_tls_ciphers", "secure"},
	        {"peer_id", "1"},
	        {"server_check_delay_jitter", "5"},
	        {"server_check_query", "select 1"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i][0], cases[i][1]);
}

/* The proxy serves from the cache now: enabled = 1 loads; the trigger
 * helper needs its LISTEN connection strings. */
Test(conf_unsupported, cache_enabled_loads_notify_needs_conninfo)
{
	char body[2048], err[1024] = "", path[64];
	struct conf c;

	snprintf(body, sizeof(body), "%s[cache]\nenabled = 1\n", HEAD);
	cr_assert_eq(load_text(body, &c, err, sizeof(err), path, sizeof(path)), 0, "%s", err);
	cr_assert(c.cache.enabled);
	conf_free(&c);
	snprintf(body, sizeof(body), "%s[cache]\ninvalidation = notify\n", HEAD);
	expect_text_error(body, 6, "invalidation = notify needs a notify.<database> = <libpq");
}

Test(conf_unsupported, inert_keys_still_validated)
{
	expect_text_error(HEAD "stats_period = often\n", 5, "stats_period must be a duration");
	expect_text_error(HEAD "dns_max_ttl = -1\n", 5, "dns_max_ttl must be a duration");
	expect_text_error(HEAD "suspend_timeout = x\n", 5, "suspend_timeout must be a duration");
	expect_text_error(HEAD "reserve_pool_timeout = x\n", 5,
	                  "reserve_pool_timeout must be a duration");
	expect_text_error(HEAD "sbuf_loopcnt = -1\n", 5, "sbuf_loopcnt must be a whole number");
}

Test(conf_unsupported, long_values_are_cut_in_the_message)
{
	char body[2048], v[151];

	/* inih's lines are at most 199 characters */
	memset(v, 'x', 150);
	v[150] = 0;
	snprintf(body, sizeof(body), "%sauth_query = %s\n", HEAD, v);
	expect_text_error(body, 5, "auth_query = xxxxxxxx");
	expect_text_error(body, 5,
	                  "... is not supported by sluice (sluice looks users up in "
	                  "auth_file only");
}

Test(conf_unsupported, conffile_naming_this_file_loads)
{
	struct conf c;
	char body[2048], err[1024] = "", path[64];

	snprintf(path, sizeof(path), "/tmp/sluice-test-conf-XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	snprintf(body, sizeof(body), "%sconffile = %s\n", HEAD, path);
	cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);
	int rc = conf_load(path, &c, err, sizeof(err));
	unlink(path);
	cr_assert_eq(rc, 0, "%s", err);
	conf_free(&c);
}

Test(conf_unsupported, packet_size_limit_is_sluices_own)
{
	struct conf c;
	char line[128];

	/* The accepted floor is the protocol layer's real limit. */
	snprintf(line, sizeof(line), "max_packet_size = %u\n", (unsigned)PROTO_MAX_MSG_LEN);
	expect_ok(line, &c);
	conf_free(&c);
	snprintf(line, sizeof(line), "%u", (unsigned)PROTO_MAX_MSG_LEN - 1);
	expect_refused("max_packet_size", line);
}

Test(conf_unsupported, files_name_file_and_line)
{
	expect_error(DATA "refused_auth_hba.ini", "refused_auth_hba.ini:6:",
	             "auth_hba_file = /etc/pgbouncer/hba.conf is not supported by sluice (");
	expect_error(DATA "refused_peers.ini", "refused_peers.ini:6:",
	             "[peers] 1 = host=10.0.0.2 is not supported by sluice");
	expect_error(DATA "refused_db_key.ini", "refused_db_key.ini:3:",
	             "database \"legacy\": client_encoding = LATIN1 is not supported by sluice");
}

Test(conf_unsupported, database_entry_keys)
{
	expect_text_error("[databases]\napp = host=h datestyle=ISO\n", 2,
	                  "database \"app\": datestyle = ISO is not supported by sluice");
	expect_text_error("[databases]\napp = host=h timezone=UTC\n", 2,
	                  "database \"app\": timezone = UTC is not supported by sluice");
	expect_text_error("[databases]\napp = host=h auth_user=pgb\n", 2,
	                  "database \"app\": auth_user = pgb is not supported by sluice");
	expect_text_error("[databases]\napp = host=h auth_dbname=postgres\n", 2,
	                  "database \"app\": auth_dbname = postgres is not supported by sluice");
	expect_text_error("[databases]\napp = host=h reserve_pool=3\n", 2,
	                  "database \"app\": reserve_pool = 3 is not supported by sluice");
	expect_text_error("[databases]\napp = host=a,b\n", 2, "host lists are not supported");
	expect_text_error("[databases]\napp = host=@pg\n", 2, "abstract-namespace");
	expect_text_error("[databases]\napp = host=''\n", 2, "database \"app\": host is empty");
}

Test(conf_listen, star_means_every_ipv4_and_ipv6_address)
{
	struct conf c;

	expect_ok("listen_addr = *\n", &c);
	cr_assert_str_eq(c.listen_addr, "*");
	cr_assert_eq(c.nlisten_addrs, 2);
	cr_assert_str_eq(c.listen_addrs[0], "0.0.0.0");
	cr_assert_str_eq(c.listen_addrs[1], "::");
	conf_free(&c);
}

Test(conf_listen, default_and_lists)
{
	struct conf c;

	expect_ok("", &c);
	cr_assert_eq(c.nlisten_addrs, 1);
	cr_assert_str_eq(c.listen_addrs[0], "127.0.0.1");
	conf_free(&c);

	expect_ok("listen_addr = 127.0.0.1, ::1 ,[fe80::1%eth0],db-proxy.example\n", &c);
	cr_assert_str_eq(c.listen_addr, "127.0.0.1, ::1 ,[fe80::1%eth0],db-proxy.example");
	cr_assert_eq(c.nlisten_addrs, 4);
	cr_assert_str_eq(c.listen_addrs[0], "127.0.0.1");
	cr_assert_str_eq(c.listen_addrs[1], "::1");
	cr_assert_str_eq(c.listen_addrs[2], "fe80::1%eth0");
	cr_assert_str_eq(c.listen_addrs[3], "db-proxy.example");
	conf_free(&c);

	/* a later line replaces the list, as any key */
	expect_ok("listen_addr = 10.0.0.1,10.0.0.2\nlisten_addr = ::1\n", &c);
	cr_assert_eq(c.nlisten_addrs, 1);
	cr_assert_str_eq(c.listen_addrs[0], "::1");
	conf_free(&c);
}

Test(conf_listen, bad_lists)
{
	expect_text_error(HEAD "listen_addr =\n", 5, "listen_addr is empty");
	expect_text_error(HEAD "listen_addr = 127.0.0.1,,::1\n", 5, "empty item");
	expect_text_error(HEAD "listen_addr = 127.0.0.1,\n", 5, "empty item");
	expect_text_error(HEAD "listen_addr = ::1, ::1\n", 5, "names ::1 twice");
	expect_text_error(HEAD "listen_addr = *, 127.0.0.1\n", 5, "* already means every");
	expect_text_error(HEAD "listen_addr = *,*\n", 5, "twice");
	expect_text_error(HEAD "listen_addr = 0.0.0.0, *\n", 5, "* already means every");
	expect_text_error(HEAD "listen_addr = *, ::\n", 5, "* already means every");
	expect_text_error(HEAD "listen_addr = 127.0.0.1 10.0.0.1\n", 5,
	                  "\"127.0.0.1 10.0.0.1\" is not an address or host name");
	expect_text_error(HEAD "listen_addr = host/name\n", 5, "not an address");
}

Test(conf_limits, max_login_clients_follows_max_client_conn)
{
	struct conf c;

	expect_ok("", &c);
	cr_assert_eq(c.max_client_conn, 1000);
	cr_assert_eq(c.max_login_clients, 500, "half the default max_client_conn");
	conf_free(&c);
	/* given after max_client_conn or before it: the default follows it */
	expect_ok("max_client_conn = 50000\n", &c);
	cr_assert_eq(c.max_login_clients, 25000);
	conf_free(&c);
	expect_ok("max_client_conn = 150\n", &c);
	cr_assert_eq(c.max_login_clients, 100, "at least 100");
	conf_free(&c);
	expect_ok("max_client_conn = 9\n", &c);
	cr_assert_eq(c.max_login_clients, 9, "at most max_client_conn");
	conf_free(&c);
	expect_ok("max_login_clients = 7\nmax_client_conn = 20\n", &c);
	cr_assert_eq(c.max_login_clients, 7);
	conf_free(&c);
	expect_ok("max_client_conn = 20\nmax_login_clients = 20\n", &c);
	cr_assert_eq(c.max_login_clients, 20);
	conf_free(&c);
}

Test(conf_limits, max_login_clients_errors)
{
	expect_error(DATA "bad_login_clients.ini", "bad_login_clients.ini",
	             "max_login_clients (60) cannot exceed max_client_conn (50)");
	expect_text_error(HEAD "max_login_clients = 0\n", 5,
	                  "max_login_clients must be a whole number from 1 to 1000000, got \"0\"");
	expect_text_error(HEAD "max_login_clients = many\n", 5, "max_login_clients must be");
}

Test(conf_limits, autodb_idle_timeout)
{
	struct conf c;

	expect_ok("", &c);
	cr_assert_float_eq(c.autodb_idle_timeout, 3600, 1e-9);
	conf_free(&c);
	expect_ok("autodb_idle_timeout = 10min\n", &c);
	cr_assert_float_eq(c.autodb_idle_timeout, 600, 1e-9);
	conf_free(&c);
	expect_ok("autodb_idle_timeout = 0\n", &c);
	cr_assert_float_eq(c.autodb_idle_timeout, 0, 1e-9);
	conf_free(&c);
	expect_text_error(HEAD "autodb_idle_timeout = -5\n", 5,
	                  "autodb_idle_timeout must be a duration in seconds");
	expect_text_error(HEAD "autodb_idle_timeout = later\n", 5,
	                  "autodb_idle_timeout must be a duration in seconds");
}

Test(conf_limits, connection_limits_and_connect_query)
{
	struct conf c;

	expect_ok("max_db_connections = 40\nmax_user_connections = 30\n", &c);
	cr_assert_eq(c.max_db_connections, 40);
	cr_assert_eq(c.max_user_connections, 30);
	cr_assert_eq(conf_find_db(&c, "app")->max_db_connections, 0, "0: use the global one");
	conf_free(&c);

	char err[1024] = "", path[64];
	cr_assert_eq(load_text("[databases]\n"
	                       "app = host=h max_db_connections=8 connect_query='set x = 1'\n"
	                       "other = host=h connect_query=''\n"
	                       "[users]\n"
	                       "u = max_user_connections=3\n"
	                       "[sluice]\nauth_type = trust\n",
	                       &c, err, sizeof(err), path, sizeof(path)),
	             0, "%s", err);
	cr_assert_eq(conf_find_db(&c, "app")->max_db_connections, 8);
	cr_assert_str_eq(conf_find_db(&c, "app")->connect_query, "set x = 1");
	cr_assert_null(conf_find_db(&c, "other")->connect_query, "empty means none");
	cr_assert_eq(conf_find_user(&c, "u")->max_user_connections, 3);
	conf_free(&c);

	expect_text_error(HEAD "max_db_connections = -1\n", 5,
	                  "max_db_connections must be a whole number from 0 to 100000");
	expect_text_error(HEAD "max_user_connections = 100001\n", 5,
	                  "max_user_connections must be a whole number from 0 to 100000");
	expect_text_error("[databases]\napp = host=h max_db_connections=x\n", 2,
	                  "database \"app\": max_db_connections must be a number 0..100000");
	expect_text_error("[databases]\napp = host=h\n[users]\nu = max_user_connections=-2\n", 4,
	                  "user \"u\": max_user_connections must be a number 0..100000");
}

static void load_two(const char *dbline, struct conf *c)
{
	char body[1024], err[1024] = "", path[64];

	snprintf(body, sizeof(body),
	         "[databases]\nold = host=db1 port=5433 dbname=app user=u password=pw "
	         "application_name=a connect_query='select 1' pool_size=5\nnew = %s\n"
	         "[sluice]\nauth_type = trust\n",
	         dbline);
	cr_assert_eq(load_text(body, c, err, sizeof(err), path, sizeof(path)), 0, "%s", err);
}

/* Does "new = <dbline>" give the same server as the fixed "old" entry? */
static bool same_as_old(const char *dbline)
{
	struct conf c;

	load_two(dbline, &c);
	bool same = conf_db_same_target(conf_find_db(&c, "old"), conf_find_db(&c, "new"));
	cr_assert_eq(same, conf_db_same_target(conf_find_db(&c, "new"), conf_find_db(&c, "old")),
	             "symmetric");
	conf_free(&c);
	return same;
}

#define OLD_REST "application_name=a connect_query='select 1'"

Test(conf_reload, same_target)
{
	cr_assert(same_as_old("host=db1 port=5433 dbname=app user=u password=pw " OLD_REST));
	/* sizes and modes do not change which server you get */
	cr_assert(same_as_old("host=db1 port=5433 dbname=app user=u password=pw " OLD_REST
	                      " pool_size=50 min_pool_size=1 max_db_connections=3 "
	                      "pool_mode=transaction"));
	cr_assert_not(same_as_old("host=db2 port=5433 dbname=app user=u password=pw " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5432 dbname=app user=u password=pw " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app2 user=u password=pw " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=v password=pw " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u password=pX " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u password=p " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u " OLD_REST));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u password=pw "
	                          "application_name=b connect_query='select 1'"));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u password=pw "
	                          "application_name=a connect_query='select 2'"));
	cr_assert_not(same_as_old("host=db1 port=5433 dbname=app user=u password=pw "
	                          "application_name=a"));
	/* "new" with no dbname= means the database "new" */
	cr_assert_not(same_as_old("host=db1 port=5433 user=u password=pw " OLD_REST));
}

Test(conf_reload, server_tls_same)
{
	struct conf a, b;

	expect_ok("server_tls_sslmode = require\nserver_tls_ca_file = /ca.pem\n", &a);
	expect_ok("server_tls_sslmode = require\nserver_tls_ca_file = /ca.pem\n", &b);
	cr_assert(conf_server_tls_same(&a, &b));
	conf_free(&b);
	expect_ok("server_tls_sslmode = verify-full\nserver_tls_ca_file = /ca.pem\n", &b);
	cr_assert_not(conf_server_tls_same(&a, &b));
	conf_free(&b);
	expect_ok("server_tls_sslmode = require\nserver_tls_ca_file = /other.pem\n", &b);
	cr_assert_not(conf_server_tls_same(&a, &b));
	conf_free(&b);
	expect_ok("server_tls_sslmode = require\nserver_tls_ca_file = /ca.pem\n"
	          "server_tls_cert_file = /c.pem\n",
	          &b);
	cr_assert_not(conf_server_tls_same(&a, &b));
	conf_free(&b);
	conf_free(&a);
}

Test(conf, unix_socket_keys)
{
	struct conf c;

	expect_ok("unix_socket_dir = /run/sluice\nunix_socket_mode = 0770\n", &c);
	cr_assert_str_eq(c.unix_socket_dir, "/run/sluice");
	cr_assert_eq(c.unix_socket_mode, 0770);
	conf_free(&c);
	expect_ok("unix_socket_dir =\nunix_socket_mode =\n", &c);
	cr_assert_str_eq(c.unix_socket_dir, "");
	cr_assert_eq(c.unix_socket_mode, 0777);
	conf_free(&c);
	expect_text_error(HEAD "unix_socket_mode = 0999\n", 5,
	                  "unix_socket_mode must be an octal mode");
	expect_text_error(HEAD "unix_socket_mode = rw\n", 5,
	                  "unix_socket_mode must be an octal mode");
}

/* stats_listen is the HTTP listener's host:port now, no longer refused. */
Test(conf_stats_listen, defaults_values_and_errors)
{
	static const char *const bad[] = {"9930",      "localhost:", "localhost:0", "::1:9930",
	                                  "[::1]9930", "a b:80",     ":9930",       "[]:9930"};
	struct conf c;

	expect_ok("", &c);
	cr_assert_str_eq(c.stats_listen, "127.0.0.1:9930");
	cr_assert_eq(c.metrics_top_statements, 50);
	cr_assert_not(c.metrics_pgbouncer_names);
	cr_assert_eq(c.health_p95_warn_ms, 100);
	cr_assert_eq(c.health_p95_critical_ms, 500);
	cr_assert_eq(c.health_pool_warn_pct, 90);
	cr_assert_eq(c.health_error_rate_critical_pct, 1);
	cr_assert_eq(c.health_cache_hit_warn_pct, 70);
	conf_free(&c);
	expect_ok("stats_listen =\n", &c);
	cr_assert_str_eq(c.stats_listen, "");
	conf_free(&c);
	expect_ok("stats_listen = [::1]:9931\nmetrics_top_statements = 0\n"
	          "metrics_pgbouncer_names = on\nhealth_p95_warn_ms = 50\n",
	          &c);
	cr_assert_str_eq(c.stats_listen, "[::1]:9931");
	cr_assert_eq(c.metrics_top_statements, 0);
	cr_assert(c.metrics_pgbouncer_names);
	cr_assert_eq(c.health_p95_warn_ms, 50);
	{
		char host[64];
		int port = 0;

		cr_assert(conf_split_hostport(c.stats_listen, host, sizeof(host), &port));
		cr_assert_str_eq(host, "::1");
		cr_assert_eq(port, 9931);
	}
	conf_free(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[256];

		snprintf(body, sizeof(body), "%sstats_listen = %s\n", HEAD, bad[i]);
		expect_text_error(body, 0, "stats_listen must be host:port");
	}
	expect_text_error(HEAD "health_p95_warn_ms = 600\n", 0,
	                  "health_p95_warn_ms (600) cannot exceed health_p95_critical_ms (500)");
	expect_text_error(HEAD "health_pool_warn_pct = 101\n", 5,
	                  "health_pool_warn_pct must be a whole number from 0 to 100");
}
