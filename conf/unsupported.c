/*
 * PgBouncer settings sluice does not implement: each is accepted only at
 * a value that describes what sluice does anyway, and refused otherwise
 * with what to do instead, so that no setting is silently ignored.
 */
#include "conf/conf_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	return conf_parse_bool(v, &b) && !b;
}

static bool is_on(const struct parse *p, const char *v)
{
	bool b;
	(void)p;
	return conf_parse_bool(v, &b) && b;
}

/* Empty (PgBouncer's "not set") or the number 0. */
static bool is_zero(const struct parse *p, const char *v)
{
	int n;
	return is_empty(p, v) || (conf_parse_int(v, 0, 0, &n));
}

static bool is_zero_duration(const struct parse *p, const char *v)
{
	double d;
	(void)p;
	return conf_parse_duration(v, &d) && d == 0;
}

static bool is_duration(const struct parse *p, const char *v)
{
	double d;
	(void)p;
	return conf_parse_duration(v, &d);
}

static bool is_count(const struct parse *p, const char *v)
{
	int n;
	(void)p;
	return conf_parse_int(v, 0, 1000000000, &n);
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
	return conf_parse_int(v, 1024, 1024, &n);
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
        /* the unix socket keeps the group of the process that makes it */
        {"unix_socket_group", is_empty,
         "sluice does not change the group of its unix socket; start sluice with the group "
         "it should have (e.g. systemd Group=), or set unix_socket_mode, and remove the key"},
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
        {"server_check_delay_jitter", is_zero_duration,
         "sluice adds no jitter to server checks; set server_check_delay_jitter = 0"},
};

/* True when <name> is one of unsupported_keys (after conf_fail() if refused). */
bool conf_unsupported_key(struct parse *p, const char *name, const char *v)
{
	for (size_t i = 0; i < sizeof(unsupported_keys) / sizeof(unsupported_keys[0]); i++) {
		const struct unsupported *u = &unsupported_keys[i];
		if (strcmp(u->name, name) != 0)
			continue;
		if (u->ok(p, v))
			return true;
		if (u->ok == is_duration || u->ok == is_count)
			conf_fail(p, "%s, got \"%s\"", u->instead, v);
		else
			conf_refuse(p, "", name, v, u->instead);
		return true;
	}
	return false;
}
