/*
 * The prepared-statement registry: every distinct (query text, parameter
 * types) a client prepared in transaction mode, the names clients gave it,
 * and the statements each server holds, with the reference counts that
 * free an entry with its last user.
 */
#include "proxy/stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "stats/stats.h"

/* ---- statement registry ----
 *
 * Every entry is referenced by the client names (struct proxy_cl_stmt) and
 * the server statements (struct proxy_sv_stmt) that use it, and freed with
 * the last of them. So the registry holds what connected clients have
 * prepared plus what servers keep (max_prepared_statements each, closing the
 * least recently used): unique texts of clients that left go away.
 */

static uint64_t stmt_hash(const char *query, size_t qlen, const uint8_t *types, size_t types_len)
{
	return XXH64(query, qlen, 0) ^ XXH64(types, types_len, 1);
}

struct proxy_stmt *proxy_stmt_find(struct proxy_ctx *ctx, const char *query, const uint8_t *types,
                                   size_t types_len, uint64_t *hash, struct proxy_stmt **head)
{
	uint64_t h = stmt_hash(query, strlen(query), types, types_len);
	struct proxy_stmt *st;

	*hash = h;
	*head = NULL;
	HASH_FIND(hh, ctx->stmts, &h, sizeof(h), *head);
	for (st = *head; st; st = st->next_same)
		if (st->types_len == types_len && memcmp(st->types, types, types_len) == 0 &&
		    strcmp(st->query, query) == 0)
			return st;
	return NULL;
}

/* A new unshared entry with room for <qcap> bytes of text (plus a NUL). */
struct proxy_stmt *proxy_stmt_new(struct proxy_ctx *ctx, size_t qcap)
{
	struct proxy_stmt *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->query = malloc(qcap + 1);
	if (!st->query) {
		free(st);
		return NULL;
	}
	st->query[qcap] = '\0';
	st->id = ++ctx->next_stmt_id;
	snprintf(st->name, sizeof(st->name), "sluice_%llu", (unsigned long long)st->id);
	st->bytes = sizeof(*st) + qcap + 1;
	ctx->n_stmts++;
	ctx->stmt_bytes += st->bytes;
	return st;
}

/* Share <st> under its (text, types), after <head> (stmt_find's). */
void proxy_stmt_link(struct proxy_ctx *ctx, struct proxy_stmt *st, struct proxy_stmt *head)
{
	if (head) {
		st->next_same = head->next_same;
		head->next_same = st;
	} else {
		HASH_ADD(hh, ctx->stmts, hash, sizeof(st->hash), st);
	}
	st->hashed = true;
}

static void stmt_unlink(struct proxy_ctx *ctx, struct proxy_stmt *st)
{
	struct proxy_stmt *head = NULL;

	if (!st->hashed)
		return;
	HASH_FIND(hh, ctx->stmts, &st->hash, sizeof(st->hash), head);
	if (head == st) {
		HASH_DEL(ctx->stmts, st);
		if (st->next_same)
			HASH_ADD(hh, ctx->stmts, hash, sizeof(st->next_same->hash), st->next_same);
	} else {
		for (; head; head = head->next_same) {
			if (head->next_same == st) {
				head->next_same = st->next_same;
				break;
			}
		}
	}
	st->next_same = NULL;
	st->hashed = false;
}

void proxy_stmt_destroy(struct proxy_ctx *ctx, struct proxy_stmt *st)
{
	ctx->n_stmts--;
	ctx->stmt_bytes -= st->bytes;
	free(st->query);
	free(st->types);
	free(st);
}

void proxy_stmt_ref(struct proxy_stmt *st)
{
	st->refs++;
}

static void stmt_unref(struct proxy_ctx *ctx, struct proxy_stmt *st)
{
	if (--st->refs > 0)
		return;
	stmt_unlink(ctx, st);
	proxy_stmt_destroy(ctx, st);
}

/* Drop an entry stmt_get just made that nothing came to reference. */
void proxy_stmt_unref_new(struct proxy_ctx *ctx, struct proxy_stmt *st)
{
	stmt_unlink(ctx, st);
	proxy_stmt_destroy(ctx, st);
}

struct proxy_stmt *proxy_stmt_get(struct proxy_ctx *ctx, const char *query, const uint8_t *types,
                                  size_t types_len)
{
	size_t qlen = strlen(query);
	uint64_t h;
	struct proxy_stmt *head, *st = proxy_stmt_find(ctx, query, types, types_len, &h, &head);

	if (st)
		return st;
	st = proxy_stmt_new(ctx, qlen);
	if (!st)
		return NULL;
	st->types = malloc(types_len ? types_len : 1);
	if (!st->types) {
		proxy_stmt_destroy(ctx, st);
		return NULL;
	}
	memcpy(st->query, query, qlen + 1);
	memcpy(st->types, types, types_len);
	st->types_len = types_len;
	st->bytes += types_len;
	ctx->stmt_bytes += types_len;
	st->hash = h;
	proxy_stmt_link(ctx, st, head);
	return st;
}

void proxy_ps_registry(const struct proxy_ctx *ctx, size_t *n, size_t *bytes)
{
	*n = ctx->n_stmts;
	*bytes = ctx->stmt_bytes;
}

void proxy_stmts_free(struct proxy_ctx *ctx)
{
	struct proxy_stmt *st;

	while ((st = ctx->stmts)) {
		/* the analyzer loses track of the table uthash frees with its last entry */
		HASH_DEL(ctx->stmts, st); // NOLINT(clang-analyzer-unix.Malloc)
		while (st) {
			struct proxy_stmt *next = st->next_same;

			proxy_stmt_destroy(ctx, st);
			st = next;
		}
	}
}

struct proxy_cl_stmt *proxy_cl_find(struct proxy_client *c, const char *name)
{
	struct proxy_cl_stmt *cs = NULL;

	HASH_FIND_STR(c->stmts, name, cs);
	return cs;
}

void proxy_cl_remove(struct proxy_client *c, struct proxy_cl_stmt *cs)
{
	/* the analyzer loses track of the table uthash frees with its last entry */
	HASH_DEL(c->stmts, cs); // NOLINT(clang-analyzer-unix.Malloc)
	if (cs->stmt)
		stmt_unref(c->ctx, cs->stmt);
	free(cs->name);
	free(cs);
}

void proxy_client_stmts_free(struct proxy_client *c)
{
	struct proxy_cl_stmt *cs, *tmp;

	HASH_ITER(hh, c->stmts, cs, tmp)
	{
		proxy_cl_remove(c, cs);
	}
}

int proxy_cl_set(struct proxy_client *c, const char *name, struct proxy_stmt *st)
{
	struct proxy_cl_stmt *cs = proxy_cl_find(c, name);

	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return -1;
		cs->name = strdup(name);
		if (!cs->name) {
			free(cs);
			return -1;
		}
		HASH_ADD_KEYPTR(hh, c->stmts, cs->name, strlen(cs->name), cs);
	}
	proxy_stmt_ref(st);
	if (cs->stmt)
		stmt_unref(c->ctx, cs->stmt);
	cs->stmt = st;
	cs->serial = ++c->ctx->next_cl_stmt_serial;
	cs->has_shape = false;
	cs->stale = false;
	return 0;
}

struct proxy_cl_stmt *proxy_cl_find_serial(struct proxy_client *c, uint64_t serial)
{
	struct proxy_cl_stmt *cs, *tmp;

	if (!c)
		return NULL;
	HASH_ITER(hh, c->stmts, cs, tmp)
	{
		if (cs->serial == serial)
			return cs;
	}
	return NULL;
}

struct proxy_sv_stmt *proxy_sv_find(struct proxy_server *s, const struct proxy_stmt *st)
{
	struct proxy_sv_stmt *ss = NULL;

	HASH_FIND(hh, s->stmts, &st->id, sizeof(st->id), ss);
	return ss;
}

void proxy_sv_remove(struct proxy_server *s, struct proxy_sv_stmt *ss)
{
	HASH_DEL(s->stmts, ss);
	pool_list_remove(&s->stmt_lru, &ss->lru);
	stmt_unref(s->ctx, ss->stmt);
	free(ss);
}

void proxy_server_stmts_free(struct proxy_server *s)
{
	struct proxy_sv_stmt *ss, *tmp;

	HASH_ITER(hh, s->stmts, ss, tmp)
	{
		proxy_sv_remove(s, ss);
	}
}
