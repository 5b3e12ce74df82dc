/*
 * Named prepared statements under transaction pooling.
 *
 * A client's statement names mean nothing on the next server it lands on.
 * So each distinct (query text, parameter types) gets one process-wide
 * server-side name ("sluice_<n>"); a client's Parse/Bind/Describe/Close are
 * rewritten to that name; a server that lacks the statement gets a Parse
 * injected first, whose ParseComplete is hidden; a Parse for a statement the
 * server already has, and a client's Close of a statement, are answered
 * locally. Each server keeps at most max_prepared_statements, closing the
 * least recently used. Messages stream: only their names are rewritten, so
 * parameter values and long texts pass through; a named Parse's text is
 * kept once, in the registry, for preparing it on other servers.
 *
 * Replies must reach the client in request order, so every request that
 * gets a reply is queued on the server's tracker (reply.c): injected
 * messages are queued hidden, locally made replies are queued to be
 * emitted when they reach the head, and the tracker tells this file what
 * became of the Parses and Describes it cares about (proxy_ps_reply_*).
 */
#include "proxy/stmt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "stats/stats.h"

/* ---- message building ---- */

static int put_parse(struct proto_buf *b, const char *name, const struct proxy_stmt *st)
{
	size_t start = proto_msg_begin(b, 'P');

	if (start == (size_t)-1 || proto_put_str(b, name) < 0 || proto_put_str(b, st->query) < 0 ||
	    proto_put_bytes(b, st->types, st->types_len) < 0)
		return -1;
	proto_msg_end(b, start);
	return 0;
}

/* Describe ('D') or Close ('C') of the statement <name>. */
static int put_stmt_msg(struct proto_buf *b, uint8_t type, const char *name)
{
	size_t start = proto_msg_begin(b, type);

	if (start == (size_t)-1 || proto_put_u8(b, 'S') < 0 || proto_put_str(b, name) < 0)
		return -1;
	proto_msg_end(b, start);
	return 0;
}

/*
 * Make sure <s> has <st> prepared, injecting a hidden Parse (and Close of
 * the least recently used statement when over the limit) into <out>.
 * <ss> is what proxy_sv_find(s, st) returned. With <parse> false the caller
 * writes the Parse itself (the client's, streaming).
 */
static int ensure_prepared(struct proxy_server *s, struct proxy_stmt *st, struct proxy_sv_stmt *ss,
                           struct proto_buf *out, bool parse)
{
	int max = s->ctx->conf->max_prepared_statements;

	if (ss) {
		pool_list_remove(&s->stmt_lru, &ss->lru);
		pool_list_push_front(&s->stmt_lru, &ss->lru);
		return 0;
	}
	if (max > 0 && s->stmt_lru.n >= (size_t)max) {
		struct proxy_sv_stmt *old = s->stmt_lru.head.prev->owner;

		if (put_stmt_msg(out, 'C', old->stmt->name) < 0 ||
		    proxy_reply_push(s, PROXY_PEND_CLOSE, PROXY_PEND_HIDE, NULL, 0) < 0)
			return -1;
		proxy_sv_remove(s, old);
	}
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -1;
	ss->id = st->id;
	ss->stmt = st;
	ss->lru.owner = ss;
	if ((parse && put_parse(out, st->name, st) < 0) ||
	    proxy_reply_push(s, PROXY_PEND_PARSE, PROXY_PEND_HIDE, &st->id, sizeof(st->id)) < 0) {
		free(ss);
		return -1;
	}
	proxy_stmt_ref(st);
	HASH_ADD(hh, s->stmts, id, sizeof(ss->id), ss);
	pool_list_push_front(&s->stmt_lru, &ss->lru);
	s->pool->st.server_parses++; /* SHOW STATS: a Parse this server gets */
	return 0;
}

/* What a shape Describe is for (the bytes of its pending entry). */
struct shape_ref {
	uint64_t serial;   /* the client's statement */
	uint64_t expected; /* its shape (SHAPE_CHECK) */
	uint64_t stmt_id;  /* the server-side statement */
};

/*
 * In place of a statement whose shape changed: a message PostgreSQL always
 * refuses with an ERROR (a Describe of no known kind; a name could have been
 * taken by an SQL PREPARE), so that PostgreSQL itself ends the pipeline and
 * its transaction as it would for "cached plan must not change result
 * type". The relay swaps the error for that one.
 */
static int put_stale(struct proxy_server *s, uint8_t kind, struct proto_buf *out)
{
	size_t start = proto_msg_begin(out, 'D');

	if (start == (size_t)-1 || proto_put_u8(out, '!') < 0 || proto_put_str(out, "") < 0 ||
	    proxy_reply_push(s, kind, PROXY_PEND_STALE, NULL, 0) < 0)
		return -1;
	proto_msg_end(out, start);
	return PROXY_PS_REPLACE;
}

/* Is the client's own Parse of statement <serial> queued on <s>, not
 * answered yet? (Only for a Parse of a name in use: a scan is fine.) */
static bool parse_pending(struct proxy_server *s, uint64_t serial)
{
	for (size_t i = 0; i < s->pq.n; i++) {
		const struct proxy_pending *h = proxy_reply_at(&s->pq, i);

		if (h->kind == PROXY_PEND_PARSE && h->serial == serial)
			return true;
	}
	return false;
}

/* Is a Sync queued behind the head of <s>'s queue? */
static bool sync_queued(struct proxy_server *s)
{
	for (size_t i = 1; i < s->pq.n; i++)
		if (proxy_reply_at(&s->pq, i)->kind == PROXY_PEND_SYNC)
			return true;
	return false;
}

/*
 * The Parse just queued on <s> (by ensure_prepared) is the client's own,
 * for its name <name>: its reply goes to the client, and the entry notes
 * which client statement it defines, so that a Parse the server fails or
 * skips defines nothing, as in PostgreSQL (proxy_ps_parse_refused).
 */
static void own_parse(struct proxy_client *c, struct proxy_server *s, const char *name)
{
	struct proxy_pending *h = proxy_reply_at(&s->pq, s->pq.n - 1);
	struct proxy_cl_stmt *cs = proxy_cl_find(c, name);

	h->flags &= ~PROXY_PEND_HIDE;
	if (cs && h->kind == PROXY_PEND_PARSE)
		h->serial = cs->serial; /* reply.c settles it (proxy_ps_parse_refused) */
}

/*
 * In place of a client's Parse of a name it already uses: PostgreSQL fails
 * it with 42P05 and skips to Sync, and the name keeps its statement. The
 * server gets a message it refuses (as for put_stale), so that it skips to
 * Sync and fails a transaction block as it would; the relay swaps its error
 * for "already exists". The name rides on the queued request (so at most
 * what it holds; a longer one is taken as a new statement, as before).
 */
static int put_dup(struct proxy_server *s, const char *name, struct proto_buf *out)
{
	size_t len = strlen(name), start;

	if (len == 0 || len >= sizeof(s->dup_name) ||
	    len > sizeof(((struct proxy_pending *)0)->bytes))
		return 0;
	start = proto_msg_begin(out, 'D');
	if (start == (size_t)-1 || proto_put_u8(out, '!') < 0 || proto_put_str(out, "") < 0 ||
	    proxy_reply_push(s, PROXY_PEND_DESCRIBE_S, PROXY_PEND_STALE, name, len) < 0)
		return -1;
	proto_msg_end(out, start);
	return PROXY_PS_REPLACE;
}

/*
 * Make a client statement ready for a request on <s> (whose reply is of
 * <kind>). 0 when it is: prepared there (a Parse injected if needed), and
 * either never described by the client or with the shape the client knows.
 * If the shape changed, the request is replaced by a failing one
 * (PROXY_PS_REPLACE). If the server's shape is not known yet, a Describe is
 * injected and the request waits for its answer (PROXY_PS_STALL). -1 on OOM.
 */
static int stmt_ready(struct proxy_server *s, struct proxy_cl_stmt *cs, uint8_t kind,
                      struct proto_buf *out)
{
	struct proxy_sv_stmt *ss;
	struct shape_ref ref;
	bool known;

	if (cs->stale)
		return put_stale(s, kind, out);
	ss = proxy_sv_find(s, cs->stmt);
	known = ss && ss->has_shape;
	if (cs->has_shape && known && ss->shape != cs->shape) {
		cs->stale = true;
		return put_stale(s, kind, out);
	}
	if (ensure_prepared(s, cs->stmt, ss, out, true) < 0)
		return -1;
	if (!cs->has_shape || known)
		return 0;
	ref.serial = cs->serial;
	ref.expected = cs->shape;
	ref.stmt_id = cs->stmt->id;
	if (put_stmt_msg(out, 'D', cs->stmt->name) < 0 || proto_put_msg(out, 'H', NULL, 0) < 0 ||
	    proxy_reply_push(s, PROXY_PEND_DESCRIBE_S, PROXY_PEND_HIDE | PROXY_PEND_SHAPE_CHECK,
	                     &ref, sizeof(ref)) < 0)
		return -1;
	return PROXY_PS_STALL;
}

/* PostgreSQL's own error, with its routine name: drivers that heal it by
 * preparing the statement again (PgJDBC) recognise it by that. Or, when the
 * failed request was a duplicate Parse (put_dup), PostgreSQL's 42P05. */
int proxy_ps_put_stale_error(struct proxy_server *s, struct proto_buf *b)
{
	if (s->dup_name[0]) {
		char msg[sizeof(s->dup_name) + 48];

		snprintf(msg, sizeof(msg), "prepared statement \"%s\" already exists", s->dup_name);
		s->dup_name[0] = 0;
		return proto_put_error_routine(b, "ERROR", "42P05", msg, NULL, NULL,
		                               "StorePreparedStatement");
	}
	return proto_put_error_routine(
	        b, "ERROR", "0A000", "cached plan must not change result type",
	        "A table or type this prepared statement uses was altered since the statement "
	        "was described.",
	        "Prepare the statement again: Close it and Parse it anew.",
	        "RevalidateCachedQuery");
}

static const uint8_t parse_complete[5] = {'1', 0, 0, 0, 4};
static const uint8_t close_complete[5] = {'3', 0, 0, 0, 4};

/* Does <sql> start with <word> (case-insensitive, after blanks)? */
static const char *starts_with(const char *sql, const char *word)
{
	size_t n = strlen(word);

	while (isspace((unsigned char)*sql))
		sql++;
	if (strncasecmp(sql, word, n) != 0 || isalnum((unsigned char)sql[n]) || sql[n] == '_')
		return NULL;
	return sql + n;
}

static bool is_ddl(const char *sql)
{
	return starts_with(sql, "alter") || starts_with(sql, "drop") ||
	       starts_with(sql, "create") || starts_with(sql, "truncate") ||
	       starts_with(sql, "comment");
}

/* Forget every server's prepared statements: DDL may have changed what
 * they return. Servers deallocate theirs when next linked. */
static void ddl_seen(struct proxy_ctx *ctx)
{
	ctx->ddl_epoch++;
}

/* Is <sql> (all of a Query's text) DISCARD ALL, and nothing more? */
static bool is_discard_all(const char *sql)
{
	const char *p = starts_with(sql, "discard");

	if (!p || !(p = starts_with(p, "all")))
		return false;
	while (isspace((unsigned char)*p) || *p == ';')
		p++;
	return *p == '\0';
}

/*
 * A client's simple Query in transaction mode, of which <sql> is the start
 * (all of it when <complete>): DEALLOCATE of named statements is answered
 * locally (they are the proxy's), DISCARD ALL clears the client's and the
 * server's statements (only ALL drops prepared statements: PLANS, TEMP and
 * SEQUENCES leave them), DDL invalidates servers' statements.
 * Returns 1 if the query was answered here (nothing to forward), 0 to
 * forward it, -1 on OOM.
 */
static int client_query(struct proxy_client *c, struct proxy_server *s, const char *sql,
                        bool complete)
{
	const char *rest;

	if (complete && (rest = starts_with(sql, "deallocate"))) {
		char name[256];
		size_t i = 0;
		const char *p = rest;
		uint8_t reply[64];
		size_t rl;
		const char *tag;

		if (starts_with(p, "prepare"))
			p = starts_with(p, "prepare");
		while (isspace((unsigned char)*p))
			p++;
		bool quoted = *p == '"';

		if (quoted)
			p++;
		while (*p && i < sizeof(name) - 1 &&
		       (quoted ? *p != '"' : (isalnum((unsigned char)*p) || *p == '_')))
			name[i++] = quoted ? *p++ : (char)tolower((unsigned char)*p++);
		name[i] = '\0';
		if (quoted && *p == '"')
			p++;
		while (isspace((unsigned char)*p) || *p == ';')
			p++;
		if (*p || i == 0)
			return 0; /* not a form we know: let the server judge */
		if (!quoted && strcmp(name, "all") == 0) {
			proxy_client_stmts_free(c);
			if (s->pin.held & (1u << PROXY_PIN_PREPARE)) {
				/* the client's SQL PREPAREs are on the server: it drops
				 * them, and sluice's own statements there with them */
				proxy_server_stmts_free(s);
				return 0;
			}
			tag = "DEALLOCATE ALL";
		} else {
			struct proxy_cl_stmt *cs = proxy_cl_find(c, name);

			if (!cs)
				return 0; /* the server reports the error */
			proxy_cl_remove(c, cs);
			tag = "DEALLOCATE";
		}
		rl = 0;
		reply[rl++] = 'C';
		uint32_t len = (uint32_t)(4 + strlen(tag) + 1);

		reply[rl++] = (uint8_t)(len >> 24);
		reply[rl++] = (uint8_t)(len >> 16);
		reply[rl++] = (uint8_t)(len >> 8);
		reply[rl++] = (uint8_t)len;
		memcpy(reply + rl, tag, strlen(tag) + 1);
		rl += strlen(tag) + 1;
		/* ReadyForQuery with the server's current status */
		reply[rl++] = 'Z';
		reply[rl++] = 0;
		reply[rl++] = 0;
		reply[rl++] = 0;
		reply[rl++] = 5;
		reply[rl++] = 0; /* patched when emitted */
		if (proxy_reply_push(s, PROXY_PEND_FAKE, PROXY_PEND_FAKE_RFQ, reply, rl) < 0)
			return -1;
		return 1;
	}
	if (!proxy_pin_wanted(s) && starts_with(sql, "listen")) {
		/* notifications arrive on one server; the client would miss them
		 * (with pins, LISTEN keeps the client on its server) */
		if (proxy_reply_push(s, PROXY_PEND_FAKE, PROXY_PEND_FAKE_LISTEN, NULL, 0) < 0)
			return -1;
		return 1;
	}
	/* PostgreSQL refuses DISCARD ALL in a transaction block (and in a string
	 * of several statements), so then nothing is dropped */
	if (complete && s->status == 'I' && is_discard_all(sql)) {
		proxy_client_stmts_free(c);
		proxy_server_stmts_free(s);
	}
	if (is_ddl(sql))
		ddl_seen(c->ctx);
	return 0;
}

/* The start of a query text: the NUL-terminated string at <p> (at most <n>
 * bytes, cut to PROXY_PREFIX_MAX) copied to <buf>, for classification. */
static const char *text_head(char buf[PROXY_PREFIX_MAX + 1], const uint8_t *p, size_t n)
{
	const uint8_t *nul;

	if (n > PROXY_PREFIX_MAX)
		n = PROXY_PREFIX_MAX;
	nul = memchr(p, 0, n);
	if (nul)
		n = (size_t)(nul - p);
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

/* Write the type and length of a rewritten message whose body starts with
 * the strings <a> and (if not NULL) <b>; the rest follows from the client. */
static int put_head(struct proto_buf *out, uint8_t type, uint32_t len, const char *a, const char *b)
{
	uint8_t h[5] = {type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                (uint8_t)len};

	if (proto_buf_append(out, h, sizeof(h)) < 0 || proto_put_str(out, a) < 0 ||
	    (b && proto_put_str(out, b) < 0))
		return -1;
	return 0;
}

/*
 * A named Parse too large to inspect whole: the client's text streams to
 * the server behind a header naming a new server-side statement, and is
 * copied into the registry as it passes (proxy_ps_fill): sluice needs it to
 * prepare the statement on the next server the client lands on. Memory
 * stays bounded: the text is held once (never in the input buffer), by an
 * entry that goes with the last client name and server statement using it.
 */
static int parse_streaming(struct proxy_client *c, struct proxy_server *s, struct proxy_ps_msg *m,
                           const char *name, struct proto_buf *out)
{
	size_t nlen = strlen(name) + 1, rest = (size_t)m->len - 4 - nlen;
	uint64_t newlen;
	struct proxy_stmt *st = proxy_stmt_new(c->ctx, rest);

	if (!st)
		return -1;
	st->fill_cap = rest;
	newlen = (uint64_t)m->len - nlen + strlen(st->name) + 1;
	if (proxy_cl_set(c, name, st) < 0) {
		proxy_stmt_destroy(c->ctx, st);
		return -1;
	}
	if (ensure_prepared(s, st, NULL, out, false) < 0 ||
	    put_head(out, 'P', (uint32_t)newlen, st->name, NULL) < 0)
		return -1;
	own_parse(c, s, name);
	c->fill = st;
	c->fill_off = 0;
	m->skip = 5 + nlen;
	return PROXY_PS_REPLACE_HEAD;
}

void proxy_ps_fill(struct proxy_client *c, const uint8_t *p, size_t n)
{
	struct proxy_stmt *st = c->fill;

	if (n > st->fill_cap - c->fill_off)
		n = st->fill_cap - c->fill_off;
	memcpy(st->query + c->fill_off, p, n);
	c->fill_off += n;
}

void proxy_ps_fill_done(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;
	struct proxy_stmt *st = c->fill, *head;
	const char *nul = memchr(st->query, 0, st->fill_cap);
	size_t qlen, tlen;
	uint64_t h;

	c->fill = NULL;
	if (!nul)
		return; /* malformed: the server refuses it; nothing to share */
	qlen = (size_t)(nul - st->query);
	tlen = st->fill_cap - qlen - 1;
	st->types = malloc(tlen ? tlen : 1);
	if (!st->types)
		return; /* stays unshared: it works for this client all the same */
	memcpy(st->types, st->query + qlen + 1, tlen);
	st->types_len = tlen;
	st->bytes += tlen;
	ctx->stmt_bytes += tlen;
	if (proxy_stmt_find(ctx, st->query, st->types, tlen, &h, &head))
		return; /* the same text is registered already: keep this one apart */
	st->hash = h;
	proxy_stmt_link(ctx, st, head);
}

int proxy_ps_client_message(struct proxy_client *c, struct proxy_server *s, struct proxy_ps_msg *m,
                            struct proto_buf *out)
{
	struct proto_reader r;
	bool whole = m->avail == (size_t)m->len - 4;
	char head[PROXY_PREFIX_MAX + 1];
	int act;

	proto_reader_init(&r, m->body, m->avail);
	switch (m->type) {
	case 'Q': {
		int rc = client_query(c, s, text_head(head, r.p, r.n), whole);

		if (rc < 0)
			return -1;
		if (rc == 1)
			return PROXY_PS_DROP;
		if (proxy_reply_push(s, PROXY_PEND_QUERY, 0, NULL, 0) < 0)
			return -1;
		return PROXY_PS_FORWARD;
	}
	case 'F':
		if (proxy_reply_push(s, PROXY_PEND_QUERY, 0, NULL, 0) < 0)
			return -1;
		return PROXY_PS_FORWARD;
	case 'S':
		if (proxy_reply_push(s, PROXY_PEND_SYNC, 0, NULL, 0) < 0)
			return -1;
		return PROXY_PS_FORWARD;
	case 'E':
		if (proxy_reply_push(s, PROXY_PEND_EXECUTE, 0, NULL, 0) < 0)
			return -1;
		return PROXY_PS_FORWARD;
	case 'P': {
		const char *name = proto_get_str(&r);
		const char *query;
		struct proxy_stmt *st;
		struct proxy_cl_stmt *dup;
		struct proxy_sv_stmt *ss;

		if (name && *name && !whole && (size_t)m->len - 4 <= PROXY_INSPECT_MAX)
			return PROXY_PS_MORE;
		if (name && is_ddl(text_head(head, r.p, r.n)))
			ddl_seen(c->ctx);
		/* (a Parse too large to inspect whole streams as before) */
		if (whole && name && *name && (dup = proxy_cl_find(c, name))) {
			if (parse_pending(s, dup->serial)) {
				/* pipelined behind its first Parse, which may yet fail
				 * (then the name is free): wait for that answer */
				s->await_parse = dup->serial;
				return PROXY_PS_STALL;
			}
			if ((act = put_dup(s, name, out)) != 0)
				return act;
		}
		if (!name || !*name) {
			/* unnamed (or a name longer than what is read first, which
			 * sluice never registers): it streams through */
			if (proxy_reply_push(s, PROXY_PEND_PARSE, 0, NULL, 0) < 0)
				return -1;
			return PROXY_PS_FORWARD;
		}
		if (!whole)
			return parse_streaming(c, s, m, name, out);
		query = proto_get_str(&r);
		if (!query) {
			/* malformed: the server says so */
			if (proxy_reply_push(s, PROXY_PEND_PARSE, 0, NULL, 0) < 0)
				return -1;
			return PROXY_PS_FORWARD;
		}
		st = proxy_stmt_get(c->ctx, query, r.p, r.n);
		if (!st)
			return -1;
		if (proxy_cl_set(c, name, st) < 0) {
			if (st->refs == 0)
				proxy_stmt_unref_new(c->ctx, st);
			return -1;
		}
		if ((ss = proxy_sv_find(s, st))) {
			/* already there: answer ParseComplete in order */
			if (ensure_prepared(s, st, ss, out, true) < 0 ||
			    proxy_reply_push(s, PROXY_PEND_FAKE, 0, parse_complete, 5) < 0)
				return -1;
			return PROXY_PS_REPLACE;
		}
		if (ensure_prepared(s, st, NULL, out, true) < 0)
			return -1;
		/* the injected Parse is this Parse */
		own_parse(c, s, name);
		return PROXY_PS_REPLACE;
	}
	case 'B': {
		const char *portal = proto_get_str(&r);
		const char *name = proto_get_str(&r);
		struct proxy_cl_stmt *cs;
		uint64_t newlen;

		c->bound_serial = 0;
		/* names not within what is read first are none of sluice's */
		if (!portal || !name || !*name || !(cs = proxy_cl_find(c, name))) {
			if (proxy_reply_push(s, PROXY_PEND_BIND, 0, NULL, 0) < 0)
				return -1;
			return PROXY_PS_FORWARD;
		}
		if ((act = stmt_ready(s, cs, PROXY_PEND_BIND, out)) != 0)
			return act;
		if (!cs->has_shape) {
			/* a Describe of this portal reports the statement's shape */
			c->bound_portal = XXH64(portal, strlen(portal), 0);
			c->bound_serial = cs->serial;
			c->bound_stmt_id = cs->stmt->id;
		}
		/* only the names are rewritten: parameter values stream through
		 * (server-side names are short: no overflow of 32 bits) */
		newlen = (uint64_t)m->len - strlen(name) + strlen(cs->stmt->name);
		if (put_head(out, 'B', (uint32_t)newlen, portal, cs->stmt->name) < 0 ||
		    proxy_reply_push(s, PROXY_PEND_BIND, 0, NULL, 0) < 0)
			return -1;
		m->skip = 5 + strlen(portal) + 1 + strlen(name) + 1;
		return PROXY_PS_REPLACE_HEAD;
	}
	case 'D':
	case 'C': {
		uint8_t kind = proto_get_u8(&r);
		const char *name = proto_get_str(&r);
		struct proxy_cl_stmt *cs;
		uint8_t pend = m->type == 'D' ? (kind == 'S' ? PROXY_PEND_DESCRIBE_S
		                                             : PROXY_PEND_DESCRIBE_P)
		                              : PROXY_PEND_CLOSE;

		if (m->type == 'D' && kind == 'P' && name && c->bound_serial &&
		    XXH64(name, strlen(name), 0) == c->bound_portal) {
			struct shape_ref ref = {c->bound_serial, 0, c->bound_stmt_id};

			c->bound_serial = 0; /* once is enough */
			if (proxy_reply_push(s, pend, PROXY_PEND_SHAPE_KEEP, &ref, sizeof(ref)) < 0)
				return -1;
			return PROXY_PS_FORWARD;
		}
		if (r.err || kind != 'S' || !*name || !(cs = proxy_cl_find(c, name))) {
			if (m->type == 'C' && kind == 'S' && name && *name) {
				/* closing an unknown name is not an error in PostgreSQL */
				if (proxy_reply_push(s, PROXY_PEND_FAKE, 0, close_complete, 5) < 0)
					return -1;
				return PROXY_PS_DROP;
			}
			if (proxy_reply_push(s, pend, 0, NULL, 0) < 0)
				return -1;
			return PROXY_PS_FORWARD;
		}
		if (m->type == 'C') {
			/* the server keeps it for other clients; the client's name goes */
			proxy_cl_remove(c, cs);
			if (proxy_reply_push(s, PROXY_PEND_FAKE, 0, close_complete, 5) < 0)
				return -1;
			return PROXY_PS_DROP;
		}
		if ((act = stmt_ready(s, cs, pend, out)) != 0)
			return act;
		struct shape_ref ref = {cs->serial, 0, cs->stmt->id};

		if (put_stmt_msg(out, 'D', cs->stmt->name) < 0 ||
		    proxy_reply_push(s, pend, PROXY_PEND_SHAPE_KEEP, &ref, sizeof(ref)) < 0)
			return -1;
		return PROXY_PS_REPLACE;
	}
	default:
		return PROXY_PS_FORWARD;
	}
}

/* Server linked to a client: drop statements made stale by DDL. Appends a
 * DEALLOCATE ALL to <sql> when needed. */
bool proxy_ps_on_link(struct proxy_server *s)
{
	if (s->ddl_epoch == s->ctx->ddl_epoch)
		return false;
	s->ddl_epoch = s->ctx->ddl_epoch;
	if (!s->stmts)
		return false;
	proxy_server_stmts_free(s);
	return true;
}

/*
 * A pinned server (pin.c) between its client's transactions, where an
 * unpinned one would be linked anew: the statements DDL made stale are
 * closed there, as proxy_ps_on_link has them dropped, but one by one (a
 * DEALLOCATE ALL would drop the client's own SQL PREPAREs too), in a
 * hidden batch. 0, or -1 if the server cannot be written to.
 */
int proxy_ps_refresh(struct proxy_server *s)
{
	struct proxy_sv_stmt *ss, *tmp;
	struct proto_buf b;

	if (s->ddl_epoch == s->ctx->ddl_epoch)
		return 0;
	s->ddl_epoch = s->ctx->ddl_epoch;
	if (!s->stmts)
		return 0;
	proto_buf_init(&b);
	HASH_ITER(hh, s->stmts, ss, tmp)
	{
		if (put_stmt_msg(&b, 'C', ss->stmt->name) < 0) {
			proto_buf_free(&b);
			return -1;
		}
	}
	if (proto_put_msg(&b, 'S', NULL, 0) < 0) {
		proto_buf_free(&b);
		return -1;
	}
	proxy_server_stmts_free(s);
	if (proxy_server_send_buf(s, &b) < 0)
		return -1;
	s->internal++; /* its replies are hidden up to its ReadyForQuery */
	return 0;
}

/* A Parse that failed or was skipped left nothing on the server. */
static void forget_parse(struct proxy_server *s, const struct proxy_pending *h)
{
	struct proxy_sv_stmt *ss = NULL;
	uint64_t id;

	memcpy(&id, h->bytes, sizeof(id));
	HASH_FIND(hh, s->stmts, &id, sizeof(id), ss);
	if (ss)
		proxy_sv_remove(s, ss);
}

bool proxy_ps_checking(const struct proxy_server *s)
{
	for (size_t i = 0; i < s->pq.n; i++) {
		const struct proxy_pending *h = &s->pq.v[(s->pq.head + i) % s->pq.cap];

		if ((h->flags & PROXY_PEND_SHAPE_CHECK) ||
		    (s->await_parse && h->kind == PROXY_PEND_PARSE && h->serial == s->await_parse))
			return true;
	}
	return false;
}

/* Is this ErrorResponse PostgreSQL's "cached plan must not change result
 * type"? Told by SQLSTATE and routine, as the message may be translated. */
static bool plan_changed(const uint8_t *body, size_t len)
{
	struct proto_msg m = {.type = 'E', .body = body, .body_len = len};
	struct proto_error e;

	return proto_parse_error(&m, &e) == 0 && strcmp(e.sqlstate, "0A000") == 0 &&
	       strcmp(e.routine, "RevalidateCachedQuery") == 0;
}

bool proxy_row_shape(const uint8_t *body, size_t len, uint64_t *shape)
{
	struct proto_reader r;
	uint16_t nfields;
	uint64_t h = 0x5eed;

	if (!body) {
		*shape = 0x6e6f64617461; /* NoData */
		return true;
	}
	proto_reader_init(&r, body, len);
	nfields = proto_get_u16(&r);
	for (uint16_t i = 0; i < nfields && !r.err; i++) {
		const uint8_t *field = r.p;

		/* name, table OID, column, type OID, size, modifier; then the format */
		if (!proto_get_str(&r) || !proto_get_bytes(&r, 16))
			return false;
		h = XXH64(field, (size_t)(r.p - field), h);
		(void)proto_get_u16(&r);
	}
	if (r.err || r.n != 0)
		return false;
	*shape = h ^ nfields;
	return true;
}

/* The Describe at the head of the queue reported its RowDescription (or
 * NoData): <known> is false when the reply was too large to read whole. */
static void shape_done(struct proxy_server *s, const struct proxy_pending *h, bool known,
                       uint64_t shape)
{
	struct shape_ref ref;
	struct proxy_sv_stmt *ss = NULL;
	struct proxy_cl_stmt *cs;

	if (!(h->flags & (PROXY_PEND_SHAPE_KEEP | PROXY_PEND_SHAPE_CHECK)) || h->len != sizeof(ref))
		return;
	memcpy(&ref, h->bytes, sizeof(ref));
	HASH_FIND(hh, s->stmts, &ref.stmt_id, sizeof(ref.stmt_id), ss);
	if (ss && known) {
		ss->shape = shape;
		ss->has_shape = true;
	}
	cs = proxy_cl_find_serial(s->client, ref.serial);
	if (!cs)
		return;
	if (h->flags & PROXY_PEND_SHAPE_KEEP) {
		cs->shape = shape;
		cs->has_shape = known;
	} else if (!known || shape != ref.expected) {
		cs->stale = true;
	}
}

void proxy_ps_reply_error(struct proxy_server *s, const uint8_t *body, size_t len)
{
	const struct proxy_pending *h = s->pq.n ? &s->pq.v[s->pq.head] : NULL;

	if (body && plan_changed(body, len))
		ddl_seen(s->ctx); /* DDL passed by another way: prepare everything anew */
	/* the request this error answers: which error a STALE one stands for */
	s->dup_name[0] = 0;
	if (h && (h->flags & PROXY_PEND_STALE) && h->kind == PROXY_PEND_DESCRIBE_S && h->len) {
		memcpy(s->dup_name, h->bytes, h->len);
		s->dup_name[h->len] = 0;
	}
}

void proxy_ps_reply_skipped(struct proxy_server *s, const struct proxy_pending *h)
{
	/* the Parse a stalled one waits for failed; with no Sync behind it
	 * queued, the server skips what the client sends next up to its Sync,
	 * the stalled Parse among it */
	if (s->await_parse && h->kind == PROXY_PEND_PARSE && h->serial == s->await_parse &&
	    !sync_queued(s))
		s->pq.check_failed = true;
	if (h->kind == PROXY_PEND_PARSE && h->len >= sizeof(uint64_t))
		forget_parse(s, h);
	if (h->flags & PROXY_PEND_SHAPE_CHECK)
		s->pq.check_failed = true;
}

void proxy_ps_parse_refused(struct proxy_client *c, uint64_t serial)
{
	struct proxy_cl_stmt *cs = proxy_cl_find_serial(c, serial);

	if (cs)
		proxy_cl_remove(c, cs);
}

void proxy_ps_reply_parsed(struct proxy_server *s, const struct proxy_pending *h)
{
	struct proxy_sv_stmt *ss = NULL;
	uint64_t id;

	if (h->kind != PROXY_PEND_PARSE || h->len < sizeof(uint64_t))
		return;
	/* a server accepted it: later Parses of it may be answered here */
	memcpy(&id, h->bytes, sizeof(id));
	HASH_FIND(hh, s->stmts, &id, sizeof(id), ss);
	if (ss)
		ss->stmt->valid_epoch = s->ctx->ddl_epoch + 1;
}

void proxy_ps_reply_described(struct proxy_server *s, const struct proxy_pending *h, uint8_t type,
                              const uint8_t *body, size_t len)
{
	uint64_t shape = 0;
	/* a RowDescription too large to read whole has no known shape */
	bool known =
	        (type == 'n' || body) && proxy_row_shape(type == 'n' ? NULL : body, len, &shape);

	shape_done(s, h, known, shape);
}

/* Does a Parse among the whole messages in <p>[0, <off>) name <name>? */
static bool parsed_before(const uint8_t *p, size_t off, const char *name)
{
	size_t at = 0;
	struct proto_msg m;

	while (at < off && proto_next(p + at, off - at, false, PROXY_INSPECT_MAX, &m) == PROTO_OK) {
		struct proto_reader r;

		proto_reader_init(&r, m.body, m.body_len);
		if (m.type == 'P') {
			const char *n = proto_get_str(&r);

			if (n && strcmp(n, name) == 0)
				return true;
		}
		at += m.raw_len;
	}
	return false;
}

/*
 * A client without a server sent statement management only: Parse of
 * statements a server has already accepted, Close of statements, then
 * Sync. Answer it here, as PostgreSQL would, without taking a server: a
 * client that prepares synchronously while its neighbours hold every
 * server in a transaction (pgbench -M prepared with one thread) must not
 * wait for them. Consumes what it answers; anything else is left for the
 * server. Returns -1 if the client was closed.
 */
int proxy_ps_answer_idle(struct proxy_client *c)
{
	struct proxy_ctx *ctx = c->ctx;

	for (;;) {
		const uint8_t *p = proto_buf_head(&c->io.in);
		size_t n = proto_buf_avail(&c->io.in), off = 0;
		bool synced = false;

		/* first pass: is there a whole group of such messages up to a Sync? */
		while (!synced) {
			struct proto_msg m;
			struct proto_reader r;

			if (proto_next(p + off, n - off, false, PROXY_INSPECT_MAX, &m) != PROTO_OK)
				return 0;
			proto_reader_init(&r, m.body, m.body_len);
			if (m.type == 'S') {
				synced = true;
			} else if (m.type == 'P') {
				const char *name = proto_get_str(&r), *query = proto_get_str(&r);
				uint64_t h;
				struct proxy_stmt *head, *st;

				/* a name in use is PostgreSQL's error to give (put_dup),
				 * and so is one a group names twice */
				if (!name || !query || !*name || proxy_cl_find(c, name) ||
				    parsed_before(p, off, name))
					return 0;
				st = proxy_stmt_find(ctx, query, r.p, r.n, &h, &head);
				if (!st || st->valid_epoch != ctx->ddl_epoch + 1)
					return 0;
			} else if (m.type == 'C') {
				uint8_t kind = proto_get_u8(&r);
				const char *name = proto_get_str(&r);

				if (r.err || kind != 'S' || !name || !*name)
					return 0;
			} else {
				return 0;
			}
			off += m.raw_len;
		}
		/* second pass: apply and answer */
		struct proto_buf out;
		size_t done = 0;
		int rc = 0;

		proto_buf_init(&out);
		while (done < off && rc == 0) {
			struct proto_msg m;
			struct proto_reader r;

			(void)proto_next(p + done, off - done, false, PROXY_INSPECT_MAX, &m);
			proto_reader_init(&r, m.body, m.body_len);
			if (m.type == 'S') {
				rc = proto_put_rfq(&out, 'I');
			} else if (m.type == 'P') {
				const char *name = proto_get_str(&r), *query = proto_get_str(&r);
				uint64_t h;
				struct proxy_stmt *head,
				        *st = proxy_stmt_find(ctx, query, r.p, r.n, &h, &head);

				rc = proxy_cl_set(c, name, st);
				if (rc == 0)
					rc = proto_buf_append(&out, parse_complete,
					                      sizeof(parse_complete));
			} else {
				struct proxy_cl_stmt *cs;

				(void)proto_get_u8(&r);
				cs = proxy_cl_find(c, proto_get_str(&r));
				if (cs)
					proxy_cl_remove(c, cs);
				rc = proto_buf_append(&out, close_complete, sizeof(close_complete));
			}
			done += m.raw_len;
		}
		if (rc == 0)
			rc = proxy_io_send(ctx, &c->io, proto_buf_head(&out),
			                   proto_buf_avail(&out));
		proto_buf_free(&out);
		if (rc < 0) {
			proxy_client_close(c);
			return -1;
		}
		proto_buf_consume(&c->io.in, off);
	}
}
