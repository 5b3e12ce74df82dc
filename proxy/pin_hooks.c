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
	if (ss & (STATS_SS_SET_RESET | STATS_SS_RESET_ALL | STATS_SS_DISCARD_ALL))
		ss |= PROXY_SS_VAR_RESET; /* back to the startup value (vars_reset.c) */
	/* a write may run nextval() (a serial column's default, a trigger),
	 * and so may a function of the user's */
	if (si->writes || si->unknown_fn)
		ss |= STATS_SS_SEQ_SET;
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
		uint32_t ss = nt->ss[i] & mask &
		              ~(PROXY_SS_EFD_ANY | STATS_SS_SEQ_READ | STATS_SS_SEQ_SET);

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

/* Log that the reasons <gone> of <s>'s pin ended. */
static void log_unpinned(struct proxy_server *s, uint16_t gone)
{
	struct proxy_pin *p = &s->pin;
	char who[256], why[160];

	/* the temporary objects are gone, not the temporary schema they made,
	 * which a new backend does not have: once free, the server is closed
	 * and replaced rather than pooled (as when a pinned client leaves) */
	if (gone & R(TEMP))
		s->stale_session = true;
	if (!gone || !s->client || log_current_level < LOG_LVL_INFO)
		return;
	proxy_client_describe(s->client, who, sizeof(who));
	proxy_pin_describe(gone, why, sizeof(why));
	if (p->held)
		log_info("%s: %s ended, still pinned to S-%llu", who, why,
		         (unsigned long long)s->id);
	else
		log_info("%s: unpinned from S-%llu after %.1f s (%s ended)", who,
		         (unsigned long long)s->id, proxy_now(s->ctx) - p->since, why);
}

/* May a query of sluice's own go to <s> now, ahead of whatever its client
 * sends next? Only between the client's messages, with nothing of the
 * client's in flight or half sent: no reply of the client's is then due
 * before the hidden ones, and no extended-protocol batch is open (a Query
 * would end its implicit transaction and drop its unnamed statement). */
static bool may_interject(const struct proxy_server *s)
{
	const struct proxy_client *c = s->client;

	return c && s->state == PROXY_SV_ACTIVE && s->outstanding == 0 && s->pq.n == 0 &&
	       !c->unsynced && !c->in_copy && !s->in_copy_out && c->pass_left == 0 &&
	       c->drop_left == 0 && !c->stalled;
}

/* Send <sql> to <s> as a query of sluice's own, its replies hidden up to
 * its ReadyForQuery (backrelay.c). -1 if <s> cannot be written to. */
static int send_internal(struct proxy_server *s, const char *sql)
{
	struct proto_buf b;

	proto_buf_init(&b);
	if (proto_put_query(&b, sql) < 0) {
		proto_buf_free(&b);
		return -1;
	}
	if (proxy_server_send_buf(s, &b) < 0)
		return -1;
	s->internal++;
	return 0;
}

/*
 * The question after a statement that may have ended temp, advisory or
 * listen state in part: how much of each the server still holds. Names
 * are qualified and operators spelled out, so that the client's
 * search_path cannot change what runs. Its one row is read by
 * proxy_pin_probe_reply.
 */
static const char probe_sql[] =
        "SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_listening_channels()),"
        " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks"
        " WHERE locktype OPERATOR(pg_catalog.=) 'advisory'"
        " AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()),"
        " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class"
        " WHERE relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc"
        " WHERE pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_type"
        " WHERE typnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_statistic_ext"
        " WHERE stxnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_operator"
        " WHERE oprnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_collation"
        " WHERE collnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"
        " OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM pg_catalog.pg_conversion"
        " WHERE connamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())";

/* Ask <s> what is left of its pin's state, when it may be asked now (else
 * at a later settle). May close <s>. */
static void probe(struct proxy_server *s)
{
	struct proxy_pin *p = &s->pin;

	if (!may_interject(s) || p->probe_zs)
		return;
	if (!proxy_pin_probe_start(p))
		return;
	/* the hidden queries already sent answer first */
	p->probe_zs = (uint8_t)(s->internal + 1 > 255 ? 255 : s->internal + 1);
	if (send_internal(s, probe_sql) < 0) {
		p->probe_zs = 0;
		p->probing = 0;
		proxy_server_close(s, "write to server failed");
	}
}

/* A field of the question's row (a count, in text): "0", nothing left? */
static bool field_zero(struct proto_reader *r)
{
	uint32_t n = proto_get_u32(r);
	bool zero;

	if (r->err || n > r->n) {
		r->err = true; /* a NULL or a short row: not an answer */
		return false;
	}
	zero = n == 1 && r->p[0] == '0';
	r->p += n;
	r->n -= n;
	return zero;
}

void proxy_pin_probe_reply(struct proxy_server *s, uint8_t type, const uint8_t *body, size_t len)
{
	struct proxy_pin *p = &s->pin;
	struct proto_reader r;

	if (!p->probe_zs)
		return;
	if (type == 'D') {
		if (p->probe_zs != 1 || !p->probing)
			return; /* a row of a hidden query sent before the question */
		proto_reader_init(&r, body, len);
		if (proto_get_u16(&r) != 3)
			return;
		bool listen = field_zero(&r), advisory = field_zero(&r), temp = field_zero(&r);

		if (r.err)
			return;
		p->empty = (uint16_t)((listen ? R(LISTEN) : 0) | (advisory ? R(ADVISORY) : 0) |
		                      (temp ? R(TEMP) : 0));
		return;
	}
	if (type != 'Z' || --p->probe_zs > 0)
		return;
	/* no row (an error, logged by backrelay.c) leaves <empty> 0: all stays */
	log_unpinned(s, proxy_pin_probed(p, p->empty));
}

/* ---- sequences: currval() and lastval() ---- */

void proxy_pin_linked(struct proxy_client *c, struct proxy_server *s)
{
	if (s->seq_own == c->id)
		return;
	/* what the client before may have left is another client's now */
	s->seq_foreign |= s->seq_own_set;
	s->seq_own = c->id;
	s->seq_own_set = false;
}

int proxy_pin_before(struct proxy_client *c, struct proxy_server *s, uint8_t type, uint32_t any)
{
	bool stale;

	if (type != 'Q' && type != 'P' && type != 'B' && type != 'E')
		return 0;
	if (!(any & (STATS_SS_SEQ_READ | STATS_SS_SEQ_SET)) || !proxy_pin_wanted(s))
		return 0;
	if (any & STATS_SS_SEQ_READ)
		c->seq_reader = true;
	/*
	 * The first statement of the client's here that reads sequence memory
	 * (or, for a client known to read it, may write it) goes to a fresh
	 * session's memory ("not yet defined in this session") when the server
	 * may hold another client's values, or only older ones of this
	 * client's (it advanced sequences on another server since): DISCARD
	 * SEQUENCES goes first. Once the client may have advanced a sequence
	 * here after another client, its own values would go too: then
	 * nothing is sent (see README).
	 */
	stale = s->seq_own_set && c->seq_set_on != s->id;
	if (((s->seq_foreign && !s->seq_own_set) || stale) && may_interject(s) &&
	    s->status != 'E' && ((any & STATS_SS_SEQ_READ) || c->seq_reader)) {
		if (send_internal(s, "DISCARD SEQUENCES") < 0)
			return -1;
		s->seq_foreign = s->seq_own_set = false;
		log_debug("C-%llu: DISCARD SEQUENCES on S-%llu before its currval()/lastval()",
		          (unsigned long long)c->id, (unsigned long long)s->id);
	}
	if (any & STATS_SS_SEQ_SET) {
		s->seq_own_set = true;
		c->seq_set_on = s->id;
	}
	return 0;
}

struct pool_node *proxy_pin_prefer(const struct proxy_client *c, struct pool_node *n,
                                   const struct pool_list *idle)
{
	struct pool_node *x = n;

	if (!n || !c->seq_reader || !c->seq_set_on)
		return n;
	/* a few of the warmest only: O(1), and the server the client's values
	 * are on is mostly among them when it comes back soon */
	for (int i = 0; i < 8 && x && x != &idle->head; i++, x = x->next) {
		const struct proxy_server *s = x->owner;

		if (s->id == c->seq_set_on && s->seq_own == c->id && !s->sp)
			return x;
	}
	return n;
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
	log_unpinned(s, gone);
	if (p->may_end && s->status == 'I')
		probe(s);
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
	/* and, in the same round trip, the question session mode asks
	 * (server.c): DISCARD ALL leaves the temporary schema a temp object
	 * made, which a brand-new backend does not have; one row closes the
	 * server instead of pooling it */
	if (proto_put_query(&b, "DISCARD ALL") < 0 ||
	    proto_put_query(&b, proxy_fresh_check_sql("DISCARD ALL")) < 0 ||
	    proxy_server_send_buf(s, &b) < 0) {
		proto_buf_free(&b); /* a failed put leaves it to us */
		proxy_server_close(s, "cannot send DISCARD ALL");
		return true;
	}
	s->internal += 2;
	s->reset_check = true;
	/* DISCARD ALL drops the statements sluice prepared there, and sets
	 * back what sluice SET and PostgreSQL does not report */
	proxy_server_stmts_free(s);
	s->seq_own = 0;
	s->seq_own_set = s->seq_foreign = false; /* DISCARD ALL drops sequence memory */
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
