/*
 * Pins: transaction pooling that never leaks session state.
 *
 * The relay tells this file what each client statement sent to a
 * transaction-mode server does to the session (the classifier's
 * STATS_SS_* bits, memoized per shape, carried on ctx->note: no work of
 * its own per statement beyond a few bit tests), and what the server
 * answered. While the server holds state its client made, the client is
 * pinned: backrelay.c's release after each transaction does not happen,
 * so the client has session semantics, and its server counts against the
 * pool like any linked one. When the client's own statements have ended
 * the state (DISCARD ALL / TEMP, UNLISTEN *, pg_advisory_unlock_all(),
 * RESET ALL, CLOSE, DEALLOCATE, ...), the pin goes and the server is
 * pooled after the transaction as usual; when the client leaves pinned,
 * the server is reset with DISCARD ALL (closed after a LOAD, which nothing
 * undoes) before another client gets it.
 *
 * The decisions are pin.c's (pure, struct proxy_pin); this file holds the
 * hooks the relay calls, the log lines and SHOW PINS.
 */
#include "proxy/pin.h"

#include <stdio.h>
#include <string.h>

#include "proxy/admin_int.h"
#include "proxy/proxy.h"
#include "stats/stats.h"

#define R(x) ((uint16_t)(1u << PROXY_PIN_##x))

/* ---- the hooks ---- */

bool proxy_pin_wanted(const struct proxy_server *s)
{
	return s->mode == CONF_POOL_TRANSACTION && s->ctx->conf->pin_session_state;
}

uint32_t proxy_pin_shape_bits(const struct stats_shape_info *si)
{
	uint32_t ss;

	if (!si)
		return 0;
	ss = si->session;
	/* a SET of a parameter sluice carries to every server the client
	 * lands on is no state of the server's: those PostgreSQL reports
	 * (ParameterStatus); a track_extra_parameters name is carried only as
	 * given at login, so its SET is state like any other */
	if ((ss & STATS_SS_SET) && !(ss & STATS_SS_SET_UNNAMED) && si->set_name) {
		int v = proxy_var_index(si->set_name);

		if (v >= 0 && v < PROXY_NBUILTIN_VARS)
			ss &= ~STATS_SS_SET;
		/* not reported, but an autocommit SET of it is followed too
		 * (proxy_pin_efd_done); the relay decides per statement */
		if (v == PROXY_VAR_EXTRA_FLOAT_DIGITS)
			ss = (ss & ~STATS_SS_SET) | PROXY_SS_EFD;
	}
	if ((ss & STATS_SS_SET_RESET) && !(ss & STATS_SS_SET) && si->set_name &&
	    proxy_var_index(si->set_name) == PROXY_VAR_EXTRA_FLOAT_DIGITS)
		ss |= PROXY_SS_EFD;
	if (ss & (STATS_SS_RESET_ALL | STATS_SS_DISCARD_ALL))
		ss |= PROXY_SS_EFD_ALL;
	return (ss & ~STATS_SS_SET_RESET) | PROXY_SS_KNOWN;
}

/*
 * A SET or RESET of extra_float_digits whose value sluice read from the
 * text (<code>) is going to <s>: follow it, as PostgreSQL does not report
 * this parameter, when it is the only thing in flight and no transaction
 * block is open, so that its ReadyForQuery tells whether it took effect
 * (proxy_pin_efd_done). False when it cannot be followed: the caller pins
 * as for any SET (one inside BEGIN .. ROLLBACK may be undone).
 */
static bool efd_follow(struct proxy_server *s, int16_t code)
{
	if (!code || s->efd_pend || s->status != 'I' || s->outstanding > 0)
		return false;
	s->efd_pend = code;
	s->efd_ccs = 0;
	s->efd_bad = false;
	return true;
}

/* A RESET ALL or DISCARD ALL that cannot be followed went to <s>: what
 * it leaves there is not known, so the next link sets the value afresh
 * whatever it is (an interned value no client has). */
static void efd_unknown(struct proxy_server *s)
{
	const char *u = proxy_str_get(s->ctx, "?");

	if (!u) {
		s->stale_session = true;
		return;
	}
	proxy_str_put(s->ctx, s->vars[PROXY_VAR_EXTRA_FLOAT_DIGITS]);
	s->vars[PROXY_VAR_EXTRA_FLOAT_DIGITS] = u;
}

static void log_pinned(struct proxy_client *c, struct proxy_server *s, uint16_t fresh, bool first);

/* Count and log reasons <fresh> newly held on <s> (was: held before). */
static void pinned_now(struct proxy_client *c, struct proxy_server *s, uint16_t fresh, uint16_t was)
{
	for (int r = 0; r < PROXY_PIN_NREASONS; r++)
		if (fresh & (1u << r))
			s->pool->n_pinned[r]++;
	if (!was)
		s->pin.since = proxy_now(s->ctx);
	log_pinned(c, s, fresh, was == 0);
}

void proxy_pin_efd_done(struct proxy_server *s)
{
	struct proxy_client *c = s->client;
	int16_t code = s->efd_pend;
	const char *val = NULL;
	uint16_t was = s->pin.held, fresh;

	s->efd_pend = 0;
	if (s->efd_ccs == 0 && s->status == 'I')
		return; /* it never completed: nothing changed */
	if (s->efd_ccs == 1 && !s->efd_bad && s->status == 'I') {
		/* it alone ran, and committed */
		char num[8];

		if (code != PROXY_EFD_RESET) {
			snprintf(num, sizeof(num), "%d", code - PROXY_EFD_VAL(0));
			val = proxy_str_get(s->ctx, num);
		}
		if (val || code == PROXY_EFD_RESET) {
			int v = PROXY_VAR_EXTRA_FLOAT_DIGITS;

			proxy_str_put(s->ctx, s->vars[v]);
			s->vars[v] = val;
			if (c) {
				proxy_str_put(s->ctx, c->vars[v]);
				c->vars[v] = val ? proxy_str_get(s->ctx, val) : NULL;
			}
			return;
		}
	}
	/* not known to have taken effect alone (or out of memory): the server
	 * may hold it, so it is state like any SET */
	if (!c) {
		s->stale_session = true;
		return;
	}
	fresh = proxy_pin_sent_bits(&s->pin, STATS_SS_SET | PROXY_SS_KNOWN, 0, false);
	if (fresh)
		pinned_now(c, s, fresh, was);
}

static void log_pinned(struct proxy_client *c, struct proxy_server *s, uint16_t fresh, bool first)
{
	char who[256], why[160];

	if (log_current_level < LOG_LVL_INFO)
		return;
	proxy_client_describe(c, who, sizeof(who));
	proxy_pin_describe(fresh, why, sizeof(why));
	if (first)
		log_info("%s: pinned to S-%llu (session state: %s)", who, (unsigned long long)s->id,
		         why);
	else
		log_info("%s: pinned to S-%llu also for %s", who, (unsigned long long)s->id, why);
}

void proxy_pin_sent(struct proxy_client *c, struct proxy_server *s, uint8_t type, int act)
{
	struct proxy_note *nt = &c->ctx->note;
	uint16_t fresh = 0, was = s->pin.held;
	uint32_t mask;

	if (act != PROXY_PS_FORWARD && act != PROXY_PS_REPLACE && act != PROXY_PS_REPLACE_HEAD)
		return; /* answered here, or not sent yet (it comes back) */
	switch (type) {
	case 'Q':
		mask = ~0u;
		break;
	case 'B': /* what the portal will make: held from its Bind on, as it
	             may be run by an Execute whose portal sluice cannot name */
		mask = STATS_SS_CREATES;
		break;
	case 'E': /* what it ends counts only when it runs */
		mask = ~STATS_SS_CREATES;
		break;
	default:
		return;
	}
	if (nt->n == 0 || !proxy_pin_wanted(s))
		return;
	for (uint16_t i = 0; i < nt->n; i++) {
		uint32_t ss = nt->ss[i] & mask & ~PROXY_SS_EFD_ANY;

		/* decided where the value is known: at the Query, or the Bind
		 * of the statement (its Execute runs it) */
		if ((nt->ss[i] & PROXY_SS_EFD_ANY) && type != 'E' &&
		    !(nt->n == 1 && efd_follow(s, nt->efd))) {
			if (nt->ss[i] & PROXY_SS_EFD)
				ss |= STATS_SS_SET;
			else
				efd_unknown(s);
		}
		/* the last of PROTO_SQL_MAX_STMTS may stand for several */
		bool many = type == 'Q' && i + 1 == PROTO_SQL_MAX_STMTS;

		/* names are carried for a Query's statements only: a portal's
		 * cursor or statement counts as unnamed */
		if (ss & ~PROXY_SS_KNOWN)
			fresh |=
			        proxy_pin_sent_bits(&s->pin, ss, type == 'Q' ? nt->nh[i] : 0, many);
	}
	if (fresh)
		pinned_now(c, s, fresh, was);
}

void proxy_pin_reply(struct proxy_server *s, uint8_t type)
{
	struct proxy_pin *p = &s->pin;
	uint16_t gone;

	if (!p->held)
		return;
	if (type == 'E') {
		proxy_pin_error_seen(p);
		return;
	}
	if (type != 'Z' || s->outstanding > 0 || !s->client)
		return;
	gone = proxy_pin_settle(p, s->status);
	if (gone && log_current_level >= LOG_LVL_INFO) {
		char who[256], why[160];

		proxy_client_describe(s->client, who, sizeof(who));
		proxy_pin_describe(gone, why, sizeof(why));
		if (p->held)
			log_info("%s: %s ended, still pinned to S-%llu", who, why,
			         (unsigned long long)s->id);
		else
			log_info("%s: unpinned from S-%llu after %.1f s (%s ended)", who,
			         (unsigned long long)s->id, proxy_now(s->ctx) - p->since, why);
	}
}

bool proxy_pin_left(struct proxy_server *s)
{
	struct proxy_pin *p = &s->pin;
	char who[256], why[160];
	struct proto_buf b;
	uint16_t held = p->held;
	double since = p->since;

	if (!held)
		return false;
	memset(p, 0, sizeof(*p));
	proxy_server_describe(s, who, sizeof(who));
	proxy_pin_describe(held, why, sizeof(why));
	if (held & R(LOAD)) {
		log_info("%s: its pinned client left after %.1f s; closed, as a library it loaded "
		         "cannot be unloaded (%s)",
		         who, proxy_now(s->ctx) - since, why);
		proxy_server_close(s, "a library loaded by its client cannot be unloaded");
		return true;
	}
	log_info("%s: its pinned client left after %.1f s; resetting it (%s)", who,
	         proxy_now(s->ctx) - since, why);
	proto_buf_init(&b);
	if (proto_put_query(&b, "DISCARD ALL") < 0 || proxy_server_send_buf(s, &b) < 0) {
		proxy_server_close(s, "cannot send DISCARD ALL");
		return true;
	}
	s->internal++;
	/* DISCARD ALL drops the statements sluice prepared there, and sets
	 * back what sluice SET and PostgreSQL does not report */
	proxy_server_stmts_free(s);
	for (int v = PROXY_NBUILTIN_VARS; v < PROXY_NVARS; v++) {
		proxy_str_put(s->ctx, s->vars[v]);
		s->vars[v] = NULL;
	}
	proxy_server_set_state(s, PROXY_SV_RESET);
	proxy_io_start_read(s->ctx, &s->io);
	return true;
}

/* ---- SHOW PINS ---- */

void proxy_pin_show(struct proxy_client *c)
{
	static const struct admin_col cols[] = {
	        {"database", PROTO_OID_TEXT}, {"user", PROTO_OID_TEXT},  {"reason", PROTO_OID_TEXT},
	        {"pinned", PROTO_OID_INT8},   {"total", PROTO_OID_INT8},
	};
	struct proxy_ctx *ctx = c->ctx;
	struct admin_table t;
	struct pool *p, *tmp;

	admin_tbl_begin(&t, cols, sizeof(cols) / sizeof(cols[0]));
	HASH_ITER(hh, ctx->pools.by_key, p, tmp)
	{
		uint64_t now[PROXY_PIN_NREASONS] = {0};
		/* a console command: walking the servers beats keeping counts */
		for (struct pool_node *n = ctx->servers.head.next; n != &ctx->servers.head;
		     n = n->next) {
			struct proxy_server *s = n->owner;

			if (s->pool != p || !s->pin.held)
				continue;
			for (int r = 0; r < PROXY_PIN_NREASONS; r++)
				now[r] += (s->pin.held >> r) & 1u;
		}
		for (int r = 0; r < PROXY_PIN_NREASONS; r++) {
			if (!now[r] && !p->n_pinned[r])
				continue;
			admin_put_text(&t, p->db_name);
			admin_put_text(&t, p->user);
			admin_put_text(&t, proxy_pin_reason_name((enum proxy_pin_reason)r));
			admin_put_u64(&t, now[r]);
			admin_put_u64(&t, p->n_pinned[r]);
			admin_tbl_row(&t);
		}
	}
	admin_tbl_end(c, &t, "SHOW");
}
