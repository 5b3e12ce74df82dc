/*
 * The errors sluice raises itself, in one table: each case's SQLSTATE,
 * whether it ends the connection (FATAL, then close) or only the current
 * request (ERROR, then ReadyForQuery), and the hint that tells the user
 * what to do. Call sites name the case and give the message text, which
 * names the object involved; they never choose a SQLSTATE or severity.
 */
#include "proxy/proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"

const struct proxy_err_info proxy_errors[PROXY_ERR_COUNT] = {
        [PROXY_ERR_PROTOCOL] = {"08P01", true, NULL},
        [PROXY_ERR_TOO_BIG] = {"54000", true, NULL},
        [PROXY_ERR_PROTOCOL_VERSION] = {"0A000", true, NULL},
        [PROXY_ERR_STARTUP_PARAM] = {"08P01", true,
                                     "list it in track_extra_parameters or "
                                     "ignore_startup_parameters, or set it with SET after "
                                     "connecting"},
        [PROXY_ERR_TLS_REQUIRED] = {"28000", true, "connect with sslmode=require (or stricter)"},
        [PROXY_ERR_NO_USER] = {"28000", true, NULL},
        [PROXY_ERR_AUTH_FAILED] = {"28P01", true, NULL},
        [PROXY_ERR_NOT_ALLOWED] = {"28000", true, NULL},
        [PROXY_ERR_NO_DATABASE] = {"3D000", true, "add it to [databases] in the configuration"},
        [PROXY_ERR_TOO_MANY_CLIENTS] = {"53300", true,
                                        "raise max_client_conn in the configuration or use "
                                        "fewer client connections"},
        [PROXY_ERR_TOO_MANY_LOGINS] = {"53300", true,
                                       "raise max_login_clients, or look for what opens "
                                       "connections that do not log in (see "
                                       "client_login_timeout)"},
        [PROXY_ERR_POOL_FULL] = {"53300", true, NULL},
        [PROXY_ERR_OOM] = {"53200", true, NULL},
        [PROXY_ERR_INTERNAL] = {"58000", true, NULL},
        [PROXY_ERR_SERVER_UNREACHABLE] = {"08006", true, NULL},
        [PROXY_ERR_SERVER_LOST] = {"08006", true,
                                   "PostgreSQL may have restarted or dropped the connection; "
                                   "reconnect"},
        [PROXY_ERR_FEATURE] = {"0A000", true, NULL},
        [PROXY_ERR_LOGIN_TIMEOUT] = {"57014", true, NULL},
        [PROXY_ERR_WAIT_TIMEOUT] = {"57014", true,
                                    "raise default_pool_size or query_wait_timeout, or see what "
                                    "holds the connections with SHOW SERVERS on the admin "
                                    "console"},
        [PROXY_ERR_QUERY_TIMEOUT] = {"57014", true,
                                     "raise query_timeout, or make the query faster"},
        [PROXY_ERR_IDLE_TX_TIMEOUT] = {"25P03", true,
                                       "end transactions promptly, or raise "
                                       "idle_transaction_timeout"},
        [PROXY_ERR_IDLE_TIMEOUT] = {"57P05", true, NULL},
        [PROXY_ERR_SHUTDOWN] = {"57P01", true, NULL},
        [PROXY_ERR_ADMIN_DENIED] = {"42501", false, NULL},
        [PROXY_ERR_ADMIN_SYNTAX] = {"42601", false,
                                    "try SHOW POOLS, SHOW DATABASES, SHOW CLIENTS, SHOW SERVERS, "
                                    "SHOW VERSION, SHOW MEM, SHOW QUERIES, SHOW SLOW, "
                                    "SHOW CLASSES, SHOW NPLUSONE, RESET STATS, RELOAD or "
                                    "SHUTDOWN"},
        [PROXY_ERR_ADMIN_PROTOCOL] = {"0A000", true,
                                      "use psql or another client of the simple query protocol"},
        [PROXY_ERR_TX_IN_STATEMENT_MODE] = {"0A000", false,
                                            "use pool_mode = transaction (or session) for this "
                                            "database or user"},
        [PROXY_ERR_LISTEN_IN_TX_MODE] = {"0A000", false,
                                         "connect through a database or user with pool_mode = "
                                         "session"},
        [PROXY_ERR_SERVER_NO_DATABASE] = {"3D000", true,
                                          "create the database in PostgreSQL, or fix dbname= "
                                          "of this entry in [databases]"},
        [PROXY_ERR_CANCELED] = {"57014", false, NULL},
        [PROXY_ERR_PARAM_REFUSED] = {"22023", true,
                                     "check the value of that parameter, then reconnect"},
        [PROXY_ERR_ADMIN_RELOAD] = {"F0000", false,
                                    "fix the file and RELOAD again; the running configuration "
                                    "is kept"},
        [PROXY_ERR_ADMIN_EXTENDED] = {"0A000", false,
                                      "use the simple query protocol (psql, or the driver's "
                                      "simple or unprepared mode)"},
        [PROXY_ERR_ADMIN_SETTING] = {"22023", false,
                                     "SHOW CONFIG lists the settings; those with changeable = "
                                     "yes may be SET"},
        [PROXY_ERR_ADMIN_UNSUPPORTED] = {"0A000", false, NULL},
};

int proxy_put_err(struct proto_buf *b, enum proxy_err e, const char *msg, const char *detail)
{
	const struct proxy_err_info *i = &proxy_errors[e];

	return proto_put_error(b, i->fatal ? "FATAL" : "ERROR", i->sqlstate, msg, detail, i->hint);
}

/* Discard whatever the client already sent, so that closing the socket does
 * not turn into a reset that destroys our ErrorResponse in flight. */
static void drain_input(int fd)
{
	char junk[4096];

	for (int i = 0; i < 16; i++)
		if (read(fd, junk, sizeof(junk)) <= 0)
			break;
}

static void fail(struct proxy_client *c, enum proxy_err e, const char *hint, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));

static void fail(struct proxy_client *c, enum proxy_err e, const char *hint, const char *fmt,
                 va_list ap)
{
	const struct proxy_err_info *i = &proxy_errors[e];
	char msg[512];
	struct proto_buf b;

	if (c->state == PROXY_CL_CLOSING)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!hint)
		hint = i->hint;
	/* every error sluice raises is logged (log_pooler_errors = 1) */
	if (log_current_level >= LOG_LVL_INFO) {
		char who[256], esc[600];

		/* the message names what the client sent: escaped like names */
		proxy_client_describe(c, who, sizeof(who));
		log_info("%s: %s: %s (%s)", who, i->fatal ? "closing" : "error",
		         log_escape(esc, sizeof(esc), msg), i->sqlstate);
	}
	if (!i->fatal) {
		int rc;

		proto_buf_init(&b);
		rc = proto_put_error(&b, "ERROR", i->sqlstate, msg, NULL, hint);
		if (rc == 0)
			rc = proto_put_rfq(&b, 'I');
		(void)proxy_client_send(c, &b, rc);
		return;
	}
	if (c->io.fd >= 0) {
		drain_input(c->io.fd);
		if (proto_put_error(&c->io.out, "FATAL", i->sqlstate, msg, NULL, hint) < 0)
			proto_buf_reset(&c->io.out);
	}
	proxy_client_close(c);
}

void proxy_client_fail(struct proxy_client *c, enum proxy_err e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail(c, e, NULL, fmt, ap);
	va_end(ap);
}

void proxy_client_fail_hint(struct proxy_client *c, enum proxy_err e, const char *hint,
                            const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail(c, e, hint, fmt, ap);
	va_end(ap);
}
