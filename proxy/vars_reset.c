/*
 * RESET in transaction mode. A direct session's RESET (RESET ALL,
 * SET .. TO DEFAULT, DISCARD ALL) returns a parameter to the value its
 * startup gave; a pooled server's returns it to the server's own. So each
 * client keeps its tracked startup values (an interned set, shared by the
 * clients that gave the same), the relay notes which of them a RESET sent
 * may have set back (bit tests on the statement bits the classifier gave
 * its shape: nothing for other statements), the server's ParameterStatus
 * for them is held back meanwhile, and at the client's next ReadyForQuery
 * with nothing in flight, and outside a failed transaction, the startup
 * values are set again with hidden FunctionCalls of set_config (inside the
 * client's transaction block, if one is open, so that a ROLLBACK undoes
 * both alike); the client is then told what changed from what it was told
 * last, before that ReadyForQuery, as PostgreSQL does.
 *
 * The hooks: proxy_vars_sent (relay.c) for each client message sent,
 * proxy_vars_hide and proxy_vars_settle (backrelay.c) for the replies.
 */
#include "proxy/proxy.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "stats/stats.h"

/* pg_catalog.set_config(text, text, bool): its OID is fixed in
 * PostgreSQL's catalog (pg_proc.dat), the same in every version. */
#define SET_CONFIG_OID 2078

int proxy_vars_start(struct proxy_client *c)
{
	const char *names[PROXY_NVARS], *values[PROXY_NVARS];
	size_t n = 0;
	bool oom;

	for (int v = 0; v < PROXY_NVARS; v++) {
		if (!c->vars[v])
			continue;
		names[n] = proxy_var_name(v);
		values[n++] = c->vars[v];
		c->start_mask |= 1u << v;
	}
	c->start = proxy_sparams_get(c->ctx, names, values, n, &oom);
	return oom ? -1 : 0;
}

/* The tracked parameter a statement of fingerprint <fp> names (its
 * shape's set_name): -1 when it names another or none, -2 when stats/ no
 * longer knows the shape. */
static int shape_var(struct proxy_ctx *ctx, uint64_t fp)
{
	const struct stats_shape_info *si = stats_shape_find(ctx->stats, fp);

	if (!si)
		return -2;
	return si->set_name ? proxy_var_index(si->set_name) : -1;
}

void proxy_vars_sent(struct proxy_client *c, struct proxy_server *s, uint8_t type, int act)
{
	const struct proxy_note *nt = &c->ctx->note;

	if (!c->start_mask || (type != 'Q' && type != 'E'))
		return;
	if (act != PROXY_PS_FORWARD && act != PROXY_PS_REPLACE && act != PROXY_PS_REPLACE_HEAD)
		return; /* answered here, or not sent yet (it comes back) */
	/* in order: a SET after a RESET in the same text is what stays */
	for (uint16_t i = 0; i < nt->n; i++) {
		uint32_t ss = nt->ss[i];
		int v;

		if (ss & STATS_SS_ROLLBACK)
			s->rs_redo |= s->rs_tx; /* a ROLLBACK TO a savepoint before them */
		if (!(ss & (PROXY_SS_VAR_RESET | STATS_SS_SET)))
			continue;
		if (ss & (STATS_SS_RESET_ALL | STATS_SS_DISCARD_ALL)) {
			s->rs_pend |= c->start_mask;
			continue;
		}
		v = shape_var(c->ctx, nt->fp[i]);
		if (ss & PROXY_SS_VAR_RESET) {
			/* a shape stats/ no longer knows may be any of them; a
			 * RESET of a parameter sluice does not carry is none */
			if (v >= 0)
				s->rs_pend |= c->start_mask & (1u << v);
			else if (v == -2)
				s->rs_pend |= c->start_mask;
		} else if (v >= PROXY_NBUILTIN_VARS && !(ss & STATS_SS_SET_UNNAMED)) {
			/* a SET of a parameter PostgreSQL does not report (those
			 * it reports, settle reads from their ParameterStatus) */
			s->rs_pend &= ~(1u << v);
		}
	}
}

bool proxy_vars_hide(const struct proxy_server *s, int v)
{
	return v >= 0 && (((s->rs_pend | s->rs_redo) >> v) & 1u);
}

/* May a FunctionCall of sluice's own go to <s> now, ahead of whatever its
 * client sends next? Only with nothing of the client's in flight or half
 * sent, and no extended-protocol batch of its open. */
static bool quiet(const struct proxy_server *s)
{
	const struct proxy_client *c = s->client;

	return c && s->state == PROXY_SV_ACTIVE && s->outstanding == 0 && s->pq.n == 0 &&
	       !c->unsynced && !c->in_copy && !s->in_copy_out && c->pass_left == 0 && !c->stalled;
}

/* FunctionCall of set_config(<name>, <value>, false). A FunctionCall
 * leaves the client's unnamed statement and portal alone, which a Query
 * or a Parse of sluice's own would drop. */
static int put_set_config(struct proto_buf *out, const char *name, const char *value)
{
	static const char no[] = "false";
	size_t nl = strlen(name), vl = strlen(value);
	struct proto_buf b;
	int rc;

	proto_buf_init(&b);
	rc = proto_put_u32(&b, SET_CONFIG_OID);
	if (rc == 0)
		rc = proto_put_u16(&b, 1); /* one format code for all arguments: */
	if (rc == 0)
		rc = proto_put_u16(&b, 0); /* text */
	if (rc == 0)
		rc = proto_put_u16(&b, 3);
	if (rc == 0)
		rc = proto_put_u32(&b, (uint32_t)nl);
	if (rc == 0)
		rc = proto_put_bytes(&b, name, nl);
	if (rc == 0)
		rc = proto_put_u32(&b, (uint32_t)vl);
	if (rc == 0)
		rc = proto_put_bytes(&b, value, vl);
	if (rc == 0)
		rc = proto_put_u32(&b, sizeof(no) - 1);
	if (rc == 0)
		rc = proto_put_bytes(&b, no, sizeof(no) - 1);
	if (rc == 0)
		rc = proto_put_u16(&b, 0); /* result in text */
	if (rc == 0)
		rc = proto_put_msg(out, 'F', proto_buf_head(&b), proto_buf_avail(&b));
	proto_buf_free(&b);
	return rc;
}

/* The client of <s> is told <value> of <v> if that is not what it was
 * told last (c->vars: what it was told, and what it gets on every server). */
static int tell_var(struct proxy_client *c, int v, const char *value, struct proto_buf *tell)
{
	const char *iv;

	if (!value || (c->vars[v] && strcmp(c->vars[v], value) == 0))
		return 0;
	if (!(iv = proxy_str_get(c->ctx, value)))
		return -1;
	proxy_str_put(c->ctx, c->vars[v]);
	c->vars[v] = iv;
	return proto_put_param_status(tell, proxy_var_name(v), value);
}

int proxy_vars_settle(struct proxy_server *s, struct proto_buf *tell)
{
	struct proxy_client *c = s->client;
	uint32_t pend = s->rs_pend | s->rs_redo, done = 0;
	struct proto_buf b;
	int rc = 0, k = 0;

	if (s->status == 'I')
		s->rs_tx = 0;
	if (!pend || !c)
		return 0;
	if (s->mode == CONF_POOL_STATEMENT && s->status != 'I') {
		s->rs_pend = s->rs_redo = 0; /* its block is rolled back (backrelay.c) */
		return 0;
	}
	/* a failed transaction runs nothing: its ROLLBACK (TO) decides */
	if (s->status == 'E' || !quiet(s))
		return 0;
	/* a value set back in a block a ROLLBACK ended is the one from before
	 * the block: of those PostgreSQL does not report, nothing is owed */
	if (s->status == 'I')
		pend = s->rs_pend | (s->rs_redo & ((1u << PROXY_NBUILTIN_VARS) - 1));
	s->rs_pend = s->rs_redo = 0;
	proto_buf_init(&b);
	for (int v = 0; v < PROXY_NVARS && rc == 0; v++) {
		const char *start, *now;

		if (!((pend >> v) & 1u) ||
		    !(start = proxy_sparams_find(c->start, proxy_var_name(v))))
			continue;
		if (v >= PROXY_NBUILTIN_VARS) {
			/* not reported: a RESET that ran left the server's default
			 * (and setting it again where one was undone changes nothing) */
			rc = put_set_config(&b, proxy_var_name(v), start);
			k++;
			done |= 1u << v;
			continue;
		}
		/* reported: the server's value says whether a RESET was the
		 * last to change it (it is then the server's own default) */
		now = s->vars[v];
		if (now && now == s->login_vars[v] && strcmp(now, start) != 0) {
			rc = put_set_config(&b, proxy_var_name(v), start);
			k++;
			done |= 1u << v;
			now = start;
		}
		if (rc == 0)
			rc = tell_var(c, v, now, tell);
	}
	if (rc < 0 || k == 0) {
		proto_buf_free(&b);
		return rc;
	}
	if (proxy_server_send_buf(s, &b) < 0)
		return -1;
	s->internal += k;
	if (s->status == 'T')
		s->rs_tx |= done; /* a ROLLBACK TO may undo them (proxy_vars_sent) */
	/* an error before its last ReadyForQuery is one of these (backrelay.c) */
	s->rs_zs = (uint16_t)(s->internal < UINT16_MAX ? s->internal : UINT16_MAX);
	s->rs_fcs = (uint16_t)k;
	if (log_current_level >= LOG_LVL_DEBUG) {
		char who[256];

		proxy_client_describe(c, who, sizeof(who));
		log_debug("%s: %d startup parameter(s) set again on S-%llu after a RESET", who, k,
		          (unsigned long long)s->id);
	}
	return 0;
}
