/*
 * Private to proxy/: the prepared-statement registry shared by prepared.c
 * (the protocol side) and stmt.c (the tables): one entry per distinct
 * (query text, parameter types), the names each client gave it, and the
 * statements each server holds.
 */
#ifndef SLUICE_PROXY_STMT_H
#define SLUICE_PROXY_STMT_H

#include "proxy/proxy.h"

struct proxy_stmt {
	uint64_t hash; /* key: hash of query + types */
	uint64_t id;
	char name[32];  /* server-side name */
	char *query;    /* owned, NUL-terminated */
	uint8_t *types; /* owned: int16 count + int32 OIDs, as on the wire */
	size_t types_len;
	uint64_t fp;          /* fingerprint of its text (statistics), 0 = not scanned yet */
	uint32_t ss;          /* its session-state bits (pin.c), PROXY_SS_KNOWN once known */
	uint64_t valid_epoch; /* ctx->ddl_epoch + 1 when a server last accepted it */
	uint32_t refs;        /* client names and server statements that use it */
	bool hashed;          /* in ctx->stmts, shared by (text, types) */
	size_t bytes;         /* memory it holds, for SHOW MEM */
	size_t fill_cap;      /* while its text streams in: room in <query> */
	UT_hash_handle hh;
	struct proxy_stmt *next_same; /* hash collisions */
};

/*
 * A statement's shape is a hash of the RowDescription (less the format
 * codes, which the Bind chooses) that Describe reports for it or for a
 * portal bound to it. A client that described it may rely on that shape
 * (PgJDBC decodes later rows by it without asking again), so it must
 * never get rows of another shape: when DDL changed what the text returns,
 * PostgreSQL answers "cached plan must not change result type", and so does
 * sluice when the statement would be prepared anew on another server.
 */
struct proxy_cl_stmt {
	char *name;              /* owned: the client's name */
	struct proxy_stmt *stmt; /* borrowed from ctx */
	uint64_t serial;         /* tells this naming apart from earlier ones of the name */
	uint64_t shape;          /* what the client was told, if has_shape */
	bool has_shape;
	bool stale; /* the server-side statement no longer has that shape */
	UT_hash_handle hh;
};

struct proxy_sv_stmt {
	uint64_t id;             /* key: proxy_stmt id */
	struct proxy_stmt *stmt; /* borrowed */
	uint64_t shape;          /* as this server reported it, if has_shape */
	bool has_shape;
	struct pool_node lru; /* most recently used at the front */
	UT_hash_handle hh;
};

/* The registry and the per-connection tables (each documented in stmt.c). */
struct proxy_stmt *proxy_stmt_find(struct proxy_ctx *ctx, const char *query, const uint8_t *types,
                                   size_t types_len, uint64_t *hash, struct proxy_stmt **head);
struct proxy_stmt *proxy_stmt_new(struct proxy_ctx *ctx, size_t qcap);
void proxy_stmt_link(struct proxy_ctx *ctx, struct proxy_stmt *st, struct proxy_stmt *head);
void proxy_stmt_destroy(struct proxy_ctx *ctx, struct proxy_stmt *st);
void proxy_stmt_ref(struct proxy_stmt *st);
void proxy_stmt_unref_new(struct proxy_ctx *ctx, struct proxy_stmt *st);
struct proxy_stmt *proxy_stmt_get(struct proxy_ctx *ctx, const char *query, const uint8_t *types,
                                  size_t types_len);
struct proxy_cl_stmt *proxy_cl_find(struct proxy_client *c, const char *name);
void proxy_cl_remove(struct proxy_client *c, struct proxy_cl_stmt *cs);
int proxy_cl_set(struct proxy_client *c, const char *name, struct proxy_stmt *st);
struct proxy_cl_stmt *proxy_cl_find_serial(struct proxy_client *c, uint64_t serial);
struct proxy_sv_stmt *proxy_sv_find(struct proxy_server *s, const struct proxy_stmt *st);
void proxy_sv_remove(struct proxy_server *s, struct proxy_sv_stmt *ss);

#endif /* SLUICE_PROXY_STMT_H */
