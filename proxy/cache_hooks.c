/*
 * The proxy's side of the result cache (cache/): which client Query is
 * looked up, serving a hit without a server, capturing a miss's reply as
 * it streams to the client, and bumping the generations of the tables a
 * committed write touched. relay.c, client.c and backrelay.c call in here
 * with one line each; the extended protocol (groups up to a Sync, and the
 * named statements of session-mode clients) is cache_ext.c's, and
 * everything else about the cache lives in this file.
 *
 * The rule above all is that a hit returns only what a direct connection
 * would have returned. What that takes here:
 *  - Only a whole Query of one statement is looked up, and only when the
 *    client's server (if it has one) is quiet: nothing in flight, status
 *    'I'. Its reply is then the next thing the client gets, so a hit goes
 *    out in order, and a leader's reply is the next one from the server.
 *  - The key holds the exact text of the statement as the client sent it
 *    (literals included: the normalized text would map "id = 1" and
 *    "id = 2" to one entry), the database, the role, and every session
 *    setting that shapes the bytes of a result and follows the client
 *    (client_encoding, DateStyle, TimeZone, IntervalStyle,
 *    standard_conforming_strings, track_extra_parameters). A SET of
 *    anything else, SET ROLE and SET SESSION AUTHORIZATION stop caching
 *    for the rest of that client's session.
 *  - Writes are collected per client as its statements are sent (the
 *    parser's written[] tables; the whole database when the parser cannot
 *    name them: DDL without a table, a function that is not PostgreSQL's
 *    own, DO, CALL, a FunctionCall, text it could not read) and bumped at the
 *    ReadyForQuery that ends their transaction with status 'I', unless
 *    the transaction was rolled back. A client that leaves with writes
 *    collected bumps them then: they may have committed.
 *  - While a lookup is pending the client's input is not read; the
 *    messages it pipelined stay buffered behind the Query.
 */
#include "proxy/cache_int.h"
#include "proxy/stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

/* Per process: the scanner's buffer for the text of a Query looked up. */
static char scan_buf[8192];

bool proxy_cache_on(const struct proxy_ctx *ctx)
{
	return ctx->cache != NULL;
}

bool proxy_cache_waiting(const struct proxy_client *c)
{
	return c->cache && c->cache->st == PROXY_CC_PENDING;
}

bool proxy_cache_capturing(const struct proxy_server *s)
{
	const struct proxy_cl_cache *cc = s->client ? s->client->cache : NULL;

	return cc && cc->capturing;
}

struct proxy_cl_cache *proxy_cc_get(struct proxy_client *c)
{
	if (!c->cache) {
		c->cache = calloc(1, sizeof(*c->cache));
		if (c->cache) {
			cache_capture_init(&c->cache->cap, c->ctx->conf->cache.max_result_bytes);
			proxy_cc_ext_init(c, c->cache);
		}
	}
	return c->cache;
}

/* ---- startup, reload, exit (main.c) ---- */

int proxy_cache_init(struct proxy_ctx *ctx, char *err, size_t errlen)
{
	const struct conf_cache *cc = &ctx->conf->cache;

	if (!cc->enabled)
		return 0;
	ctx->cache_rules = cache_rules_new();
	if (!ctx->cache_rules || cache_rules_load(ctx->cache_rules, cc) < 0) {
		snprintf(err, errlen, "cache: out of memory");
		return -1;
	}
	ctx->cache = cache_new(ctx->loop, cc, NULL, err, errlen);
	return ctx->cache ? 0 : -1;
}

void proxy_cache_start(struct proxy_ctx *ctx)
{
	if (ctx->cache) {
		cache_start(ctx->cache);
		log_info("cache: on, Redis at %s", ctx->conf->cache.redis_url);
	}
}

void proxy_cache_reload(struct proxy_ctx *ctx, const struct conf *nc)
{
	if (nc->cache.enabled != (ctx->cache != NULL))
		log_warn("[cache] enabled changes need a restart");
	if (ctx->cache_rules && cache_rules_load(ctx->cache_rules, &nc->cache) < 0)
		log_error("cache: out of memory loading the rules; the old ones stay");
}

void proxy_cache_free(struct proxy_ctx *ctx)
{
	if (ctx->cache)
		cache_free(ctx->cache);
	ctx->cache = NULL;
	cache_rules_free(ctx->cache_rules);
	ctx->cache_rules = NULL;
}

/* ---- writes ---- */

static void pend_table(struct proxy_cl_cache *cc, const char *t)
{
	for (unsigned i = 0; i < cc->npend; i++)
		if (strcmp(cc->pend[i], t) == 0)
			return;
	if (cc->npend == PROXY_CC_PEND_MAX || !(cc->pend[cc->npend] = strdup(t))) {
		cc->pend_db = true;
		return;
	}
	cc->npend++;
}

static void pend_clear(struct proxy_cl_cache *cc)
{
	for (unsigned i = 0; i < cc->npend; i++)
		free(cc->pend[i]);
	cc->npend = 0;
	cc->pend_db = false;
}

/* The writes collected are committed (or may be): bump them. */
static void pend_bump(struct proxy_client *c, struct proxy_cl_cache *cc)
{
	struct cache *ca = c->ctx->cache;

	if (cc->pend_db)
		cache_bump_db(ca, c->db_name);
	else if (cc->npend)
		cache_bump(ca, c->db_name, (const char *const *)cc->pend, cc->npend);
	pend_clear(cc);
}

/* What one statement sent to PostgreSQL may change: its tables, or the
 * whole database when they are not known. */
static void note_stmt(struct proxy_ctx *ctx, struct proxy_cl_cache *cc, uint64_t fp, uint32_t ss)
{
	const struct stats_shape_info *si = fp ? stats_shape_find(ctx->stats, fp) : NULL;

	if (ss & (STATS_SS_ROLE | STATS_SS_AUTH))
		cc->role_changed = true;
	if (ss & STATS_SS_SET)
		cc->state_changed = true;
	if (!si || !si->parsed || si->tables_cut) {
		cc->pend_db = true;
		return;
	}
	/* a function of the user's (or DO, CALL) may write anything, and the
	 * parser cannot see inside it; PostgreSQL's own (now(), random(),
	 * nextval()) write no table */
	if (si->unknown_fn)
		cc->pend_db = true;
	if (si->writes || si->modifying_cte) {
		if (si->nwritten == 0)
			cc->pend_db = true;
		for (unsigned i = 0; i < si->nwritten; i++)
			pend_table(cc, si->written[i]);
	}
}

void proxy_cache_sent(struct proxy_client *c, const struct proxy_ps_msg *m)
{
	struct proxy_ctx *ctx = c->ctx;
	const struct proxy_note *nt = &ctx->note;
	struct proxy_cl_cache *cc;

	if (!ctx->cache)
		return;
	/* session mode: made at the first request, to follow named
	 * statements from the start (cache_ext.c) */
	cc = c->cache ? c->cache : proxy_cc_sess_mode(c) ? proxy_cc_get(c) : NULL;
	proxy_cc_ext_sent(c, cc, m);
	if (m->type != 'Q' && m->type != 'E' && m->type != 'F')
		return;
	if (!(cc = proxy_cc_get(c))) {
		/* out of memory: nothing can be remembered, so forget every entry
		 * of the database rather than risk a stale one */
		cache_bump_db(ctx->cache, c->db_name);
		return;
	}
	if (m->type == 'F' || nt->n == 0) {
		/* a fast-path call, an Execute of a statement not known, a Query
		 * whose statements could not be noted: anything may change */
		if (m->type != 'Q' || m->avail > 1)
			cc->pend_db = true;
		return;
	}
	/* a Query read only in part, or with more statements than noted */
	if (m->type == 'Q' && (m->avail != (size_t)m->len - 4 || nt->n >= PROTO_SQL_MAX_STMTS))
		cc->pend_db = true;
	for (unsigned i = 0; i < nt->n; i++)
		note_stmt(ctx, cc, nt->fp[i], nt->ss[i]);
}

/* "ROLLBACK": the tag of ROLLBACK, ABORT, ROLLBACK TO SAVEPOINT and of a
 * COMMIT of a failed transaction. */
static bool tag_is(const uint8_t *body, size_t len, const char *w)
{
	size_t n = strlen(w);

	return len == n + 1 && memcmp(body, w, n) == 0 && body[n] == 0;
}

/* ---- lookups and hits ---- */

static const uint8_t rfq_idle[6] = {'Z', 0, 0, 0, 5, 'I'};

/* A hit: the statement's row in SHOW QUERIES (a hit is no call). */
void proxy_cc_count_hit(struct proxy_client *c, uint64_t fp)
{
	if (c->pool) {
		c->pool->st.query_count++;
		/* the row reply.c's record() would have used */
		if (c->pool->stats_scope)
			stats_cache_hit(c->ctx->stats, c->pool->stats_scope, fp);
	}
}

/* Write <e> and a ReadyForQuery to the client in place of the Query at the
 * head of its input, which is consumed, and count the hit for statement
 * <fp> in SHOW QUERIES. -1 if the client cannot be written to (the caller
 * closes it). */
static int replay(struct proxy_client *c, const struct cache_entry *e, size_t msg_len, uint64_t fp)
{
	struct proxy_ctx *ctx = c->ctx;

	if (proxy_io_send(ctx, &c->io, e->rowdesc, e->rowdesc_len) < 0 ||
	    proxy_io_send(ctx, &c->io, e->body, e->body_len) < 0 ||
	    proxy_io_send(ctx, &c->io, rfq_idle, sizeof(rfq_idle)) < 0)
		return -1;
	proto_buf_consume(&c->io.in, msg_len);
	proxy_cc_count_hit(c, fp);
	return 0;
}

static size_t head_msg_len(const struct proxy_client *c)
{
	const uint8_t *p = proto_buf_head(&c->io.in);

	return ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]) + 1;
}

/* Answer the head of <c>'s input (a Query or a group) with a hit: as
 * proxy_cc_replay_ext. */
static int replay_head(struct proxy_client *c, const struct cache_entry *e)
{
	struct proxy_cl_cache *cc = c->cache;

	if (cc->ext)
		return proxy_cc_replay_ext(c, e, cc->fp);
	if (!cache_entry_replay(e, CACHE_REPLAY_QUERY))
		return 1; /* stored without a RowDescription: it cannot answer a Query */
	return replay(c, e, head_msg_len(c), cc->fp) < 0 ? -1 : 0;
}

static void lookup_cb(struct cache_lookup *lk, enum cache_result r)
{
	struct proxy_client *c = lk->arg;
	struct proxy_cl_cache *cc = c->cache;
	struct proxy_ctx *ctx = c->ctx;
	int rc = 1;

	if (c->state == PROXY_CL_CLOSING || cc->st != PROXY_CC_PENDING)
		return;
	cc->st = PROXY_CC_NONE;
	if (r == CACHE_HIT)
		rc = replay_head(c, &lk->entry);
	if (rc < 0) {
		proxy_client_close(c);
		return;
	}
	/* a bypass, a miss we lead, or a hit that cannot answer this request */
	if (rc > 0)
		cc->st = PROXY_CC_GO;
	/* what was queued here leaves with the next loop iteration */
	ev_idle_start(ctx->loop, &ctx->kick);
	if (c->state == PROXY_CL_ACTIVE || c->state == PROXY_CL_IDLE)
		proxy_io_start_read(ctx, &c->io);
	proxy_client_process(c);
}

/* The session's settings that shape the bytes of a result, laid out as
 * "name=value\0" for each one set, then the startup parameters as
 * "startup:name=value\0". -1 if they do not fit. */
static int settings_of(const struct proxy_client *c, char *buf, size_t cap, size_t *len)
{
	size_t o = 0;

	for (int v = 0; v < PROXY_NVARS; v++) {
		const char *val = c->vars[v], *name;
		int n;

		/* application_name reaches a result only through functions that
		 * are not immutable, which are never cached */
		if (!val || v == PROXY_VAR_APPLICATION_NAME)
			continue;
		name = proxy_var_name(v);
		n = snprintf(buf + o, cap - o, "%s=%s", name ? name : "?", val);
		if (n < 0 || (size_t)n + 1 >= cap - o)
			return -1;
		o += (size_t)n + 1; /* the NUL stays: it separates */
	}
	/* session mode: the startup parameters its server was opened with
	 * (options -c search_path=..., any GUC) shape results too */
	if (c->sp) {
		size_t pos = 0;
		const char *name, *val;

		while ((name = proxy_sparams_next(c->sp, &pos, &val)) != NULL) {
			int n = snprintf(buf + o, cap - o, "startup:%s=%s", name, val ? val : "");

			if (n < 0 || (size_t)n + 1 >= cap - o)
				return -1;
			o += (size_t)n + 1;
		}
	}
	*len = o;
	return 0;
}

int proxy_cc_lookup(struct proxy_client *c, struct proxy_cl_cache *cc,
                    const struct stats_shape_info *si, uint32_t ttl_s, uint64_t fp)
{
	int rc;

	cc->lk.db = c->db_name;
	cc->lk.tables = (const char *const *)si->read;
	cc->lk.ntables = si->nread;
	cc->lk.cb = lookup_cb;
	cc->lk.arg = c;
	cc->ttl_s = ttl_s;
	/* the fingerprint reply.c notes for this statement when it is sent:
	 * the same scan of the same text */
	cc->fp = fp;
	switch (cache_lookup(c->ctx->cache, &cc->lk)) {
	case CACHE_HIT:
		rc = replay_head(c, &cc->lk.entry);
		if (rc > 0)
			return PROXY_CACHE_GO;
		cc->st = PROXY_CC_NONE;
		if (rc < 0) {
			proxy_client_close(c);
			return PROXY_CACHE_CLOSED;
		}
		return PROXY_CACHE_DONE;
	case CACHE_PENDING:
		cc->st = PROXY_CC_PENDING;
		proxy_io_stop_read(c->ctx, &c->io);
		return PROXY_CACHE_WAIT;
	default:
		return PROXY_CACHE_GO;
	}
}

const struct stats_shape_info *proxy_cc_decide(struct proxy_client *c, struct proxy_server *s,
                                               struct proxy_cl_cache *cc, const char *text,
                                               size_t tlen, struct cache_verdict *v, uint64_t *fp)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proto_sql_scan sc;
	const struct stats_shape_info *si;
	struct cache_session sess = {0};

	proto_sql_scan(text, tlen, true, scan_buf, sizeof(scan_buf), &sc);
	if (sc.nstmts == 0)
		return NULL;
	si = stats_shape_seen(ctx->stats, &sc.stmt[0], scan_buf + sc.stmt[0].norm_off,
	                      text + sc.stmt[0].src_off);
	sess.in_tx = s && s->status != 'I';
	sess.role_changed = cc->role_changed;
	sess.state_changed = cc->state_changed;
	sess.multi_stmt = sc.nstmts > 1;
	if (!cache_decide(ctx->cache_rules, ctx->conf->cache.default_ttl, &sc.stmt[0], si, &sess,
	                  v)) {
		cache_count(ctx->cache, v->reason);
		return NULL;
	}
	*fp = sc.stmt[0].fp;
	return si;
}

/* No hint in the text and no rule that could mark it: not marked. */
bool proxy_cc_may_be_marked(const struct proxy_ctx *ctx, const char *text, size_t tlen)
{
	return ctx->cache_nrules || ctx->conf->cache.nrules || memmem(text, tlen, "sluice:", 7);
}

int proxy_cc_key_session(const struct proxy_client *c, struct cache_key_input *in, char *settings,
                         size_t cap)
{
	size_t slen = 0;

	if (settings_of(c, settings, cap, &slen) < 0)
		return -1;
	in->db = c->db_name;
	in->role = c->user;
	in->client_encoding = c->vars[PROXY_VAR_CLIENT_ENCODING];
	in->settings = settings;
	in->settings_len = slen;
	return 0;
}

int proxy_cache_query(struct proxy_client *c, struct proxy_server *s)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_cl_cache *cc = c->cache;
	const uint8_t *head = proto_buf_head(&c->io.in);
	size_t avail = proto_buf_avail(&c->io.in), mlen;
	const char *text;
	size_t tlen;
	const struct stats_shape_info *si;
	struct cache_verdict v;
	struct cache_key_input in = {0};
	char settings[PROXY_CC_SETTINGS_MAX];
	uint64_t fp = 0;

	if (!ctx->cache || avail < 5)
		return PROXY_CACHE_GO;
	if (head[0] == 'D' || head[0] == 'C') {
		/* never looked up; they may need the unnamed statement back */
		if (s && cc && cc->lost_parse && cc->st != PROXY_CC_PENDING &&
		    proxy_cc_restore_parse(c, s) < 0)
			return PROXY_CACHE_CLOSED;
		return PROXY_CACHE_GO;
	}
	if (head[0] != 'Q' && head[0] != 'P' && head[0] != 'B')
		return PROXY_CACHE_GO;
	if (cc && cc->st == PROXY_CC_PENDING)
		return PROXY_CACHE_WAIT;
	if (head[0] == 'B' && s && cc && cc->lost_parse && proxy_cc_restore_parse(c, s) < 0)
		return PROXY_CACHE_CLOSED;
	if (cc && cc->st == PROXY_CC_GO) {
		/* decided before it waited for a server: it goes now */
		if (s) {
			cc->st = PROXY_CC_NONE;
			cc->p_decided = head[0] == 'P';
			if (cc->lk.leader) {
				cache_capture_reset(&cc->cap);
				cc->capturing = true;
			}
		}
		return PROXY_CACHE_GO;
	}
	/* a server with anything in flight answers that first: a hit now
	 * would overtake it */
	if (s && (s->outstanding > 0 || s->inflight > 0 || s->internal > 0 || s->pq.n > 0 ||
	          s->status != 'I' || s->in_copy_out || c->unsynced || c->in_copy))
		return PROXY_CACHE_GO;
	if (head[0] != 'Q')
		return proxy_cc_ext_query(c, s);
	mlen = head_msg_len(c);
	if (avail < mlen || mlen < 6 || head[mlen - 1] != 0)
		return PROXY_CACHE_GO; /* not whole yet: it streams to PostgreSQL */
	text = (const char *)head + 5;
	tlen = mlen - 6;
	if (memchr(text, 0, tlen))
		return PROXY_CACHE_GO; /* PostgreSQL refuses it */
	if (!proxy_cc_may_be_marked(ctx, text, tlen) || !(cc = proxy_cc_get(c)))
		return PROXY_CACHE_GO;
	if (!s)
		cc->st = PROXY_CC_GO; /* whatever follows, it is decided */
	if (!(si = proxy_cc_decide(c, s, cc, text, tlen, &v, &fp)))
		return PROXY_CACHE_GO;
	if (proxy_cc_key_session(c, &in, settings, sizeof(settings)) < 0)
		return PROXY_CACHE_GO;
	in.text = text; /* the exact text: its literals are part of the question */
	in.text_len = tlen;
	cache_key_make(&in, &cc->lk.key);
	cc->ext = false;
	return proxy_cc_lookup(c, cc, si, v.ttl_s, fp);
}

/* ---- replies (backrelay.c) ---- */

static void capture_end(struct proxy_ctx *ctx, struct proxy_cl_cache *cc, bool ok)
{
	cc->capturing = false;
	if (ok)
		cache_store(ctx->cache, &cc->lk, &cc->cap, cc->ttl_s);
	else
		cache_abandon(ctx->cache, &cc->lk);
	cache_capture_reset(&cc->cap);
}

void proxy_cache_reply_part(struct proxy_server *s, const uint8_t *p, size_t n)
{
	struct proxy_cl_cache *cc = s->client->cache;

	if (cc->capturing)
		cache_capture_more(&cc->cap, p, n);
}

void proxy_cache_reply(struct proxy_server *s, const uint8_t *msg, size_t len)
{
	struct proxy_client *c = s->client;
	struct proxy_cl_cache *cc = c->cache;
	uint8_t type = msg[0];

	if (cc->capturing) {
		if (type == 'Z')
			/* cache_store refuses what is incomplete, failed or too big
			 * (and counts the last) */
			capture_end(s->ctx, cc, s->status == 'I');
		else if (len <= PROXY_INSPECT_MAX + 1)
			cache_capture_msg(&cc->cap, msg, len);
		else /* streamed past in pieces: proxy_cache_reply_part brings them */
			cache_capture_begin(&cc->cap, type, len);
	}
	if (len > PROXY_INSPECT_MAX + 1)
		return; /* streaming past: not a message read whole */
	if (type == 'C') {
		cc->last_rollback = tag_is(msg + 5, len - 5, "ROLLBACK");
		cc->saw_commit |= tag_is(msg + 5, len - 5, "COMMIT");
	} else if (type == 'Z') {
		if (s->status == 'I' && (cc->npend || cc->pend_db)) {
			if (cc->last_rollback && !cc->saw_commit)
				pend_clear(cc); /* nothing of it committed */
			else
				pend_bump(c, cc);
		}
		cc->last_rollback = cc->saw_commit = false;
	}
}

/* ---- a client that goes ---- */

void proxy_cache_client_gone(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc || !c->ctx->cache)
		return;
	if (cc->capturing)
		capture_end(c->ctx, cc, false);
	cache_lookup_cancel(c->ctx->cache, &cc->lk);
	cc->st = PROXY_CC_NONE;
	/* an autocommit write may have committed after all */
	if (cc->npend || cc->pend_db)
		pend_bump(c, cc);
}

/* The head Query was consumed without going to a server (poolmgr.c drops
 * a queued one on a cancel). A lead of it would otherwise stay open: its
 * waiters would wait for this client's next statement, and take that
 * statement's reply for this one's. Ending it sends them to PostgreSQL. */
void proxy_cache_dropped(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc || !c->ctx->cache)
		return;
	if (cc->capturing)
		capture_end(c->ctx, cc, false);
	cache_lookup_cancel(c->ctx->cache, &cc->lk);
	cc->st = PROXY_CC_NONE;
}

/* A cancel for a client whose lookup is pending: it waits on another
 * client's query of the same statement (single flight) or on Redis, and
 * nothing of its own runs anywhere. PostgreSQL would cancel its query, so
 * it leaves the flight, gets query_canceled and goes on with what it
 * pipelined. May close <c>. */
void proxy_cache_cancel_wait(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;
	struct proxy_ctx *ctx = c->ctx;

	if (!cc || cc->st != PROXY_CC_PENDING)
		return;
	cache_lookup_cancel(ctx->cache, &cc->lk);
	cc->st = PROXY_CC_NONE;
	/* the Query, or the group up to its Sync, was whole when it was looked
	 * up: all of it is answered by the error (what is left of a group
	 * would run at PostgreSQL on another statement or portal) */
	proto_buf_consume(&c->io.in, cc->ext ? proxy_cc_group_len(c) : head_msg_len(c));
	proxy_client_fail(c, PROXY_ERR_CANCELED, "canceling statement due to user request");
	if (c->state == PROXY_CL_CLOSING)
		return;
	ev_idle_start(ctx->loop, &ctx->kick);
	if (c->state == PROXY_CL_ACTIVE || c->state == PROXY_CL_IDLE)
		proxy_io_start_read(ctx, &c->io);
	proxy_client_process(c);
}

void proxy_cache_client_free(struct proxy_client *c)
{
	struct proxy_cl_cache *cc = c->cache;

	if (!cc)
		return;
	pend_clear(cc);
	cache_capture_reset(&cc->cap);
	proxy_cc_ext_free(cc);
	free(cc);
	c->cache = NULL;
}
