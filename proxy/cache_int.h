/*
 * Private to the proxy's side of the result cache: cache_hooks.c (setup,
 * simple Query lookups, hits, captures of a miss's reply, writes and their
 * generation bumps, a client's lifetime) and cache_ext.c (the extended
 * protocol: groups up to a Sync, their hits, and the named statements of
 * session-mode clients). What a client's cache state holds, and the few
 * functions one file lends the other.
 */
#ifndef SLUICE_PROXY_CACHE_INT_H
#define SLUICE_PROXY_CACHE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "proxy/proxy.h"

/* Tables written in the open transaction that are remembered by name;
 * beyond, the whole database is bumped. */
#define PROXY_CC_PEND_MAX 16
/* Session settings laid out for the key; longer values are not cached. */
#define PROXY_CC_SETTINGS_MAX 1024

struct proxy_sess_stmt;
struct stats_shape_info;

/* Session mode: the client's named statements, as far as sluice knows
 * them for sure (cache_ext.c). */
struct proxy_cc_sess {
	struct proxy_sess_stmt *stmts;     /* accepted by PostgreSQL, by name */
	struct proxy_sess_stmt *pending;   /* Parses not answered yet, by name (the live one) */
	struct proxy_sess_stmt *by_serial; /* owned: all of them, accepted and pending */
	unsigned nstmts;                   /* accepted and pending */
	size_t bytes;                      /* theirs */
	uint64_t portal_serial;            /* the statement the unnamed portal was bound to */
	uint64_t next_serial;
	bool on;       /* session mode when made: named statements are followed */
	bool ext_open; /* an extended-protocol request since the last Sync */
	bool lost;     /* not followed: nothing named is served */
};

enum proxy_cc_state {
	PROXY_CC_NONE = 0, /* nothing decided for the head message */
	PROXY_CC_PENDING,  /* a lookup is out: the client is not read */
	PROXY_CC_GO,       /* the head Query goes to PostgreSQL (a bypass, or a miss we lead) */
};

struct proxy_cl_cache {
	struct cache_lookup lk; /* lk.leader: told CACHE_MISS, must store or abandon */
	struct cache_capture cap;
	uint32_t ttl_s;      /* of the statement led */
	uint64_t fp;         /* the scanner's fingerprint of the Query looked up */
	uint8_t st;          /* enum proxy_cc_state */
	bool capturing;      /* the leader's reply is streaming through <cap> */
	bool role_changed;   /* SET ROLE / SET SESSION AUTHORIZATION was sent */
	bool state_changed;  /* a SET of a setting the key does not hold */
	bool pend_db;        /* a write the parser cannot name: bump the database */
	bool last_rollback;  /* the last CommandComplete since ReadyForQuery: ROLLBACK */
	bool saw_commit;     /* a COMMIT since the last ReadyForQuery */
	bool ext;            /* the lookup is of an extended-protocol group */
	bool p_decided;      /* the head Parse was decided here (counted, if at all) */
	uint8_t *lost_parse; /* owned: an unnamed Parse answered from the cache */
	size_t lost_len;
	uint8_t npend;                 /* entries of <pend> */
	char *pend[PROXY_CC_PEND_MAX]; /* owned: tables written in the transaction */
	struct proxy_cc_sess sess;     /* session mode: named statements */
};

static inline bool proxy_cc_sess_mode(const struct proxy_client *c)
{
	return c->pool && c->pool->mode == CONF_POOL_SESSION;
}

/* ---- cache_hooks.c, for cache_ext.c ---- */

/* <c>'s cache state, made on first use; NULL when out of memory. */
struct proxy_cl_cache *proxy_cc_get(struct proxy_client *c);
/* Cheap for the statements that are not marked: could <text> be? */
bool proxy_cc_may_be_marked(const struct proxy_ctx *ctx, const char *text, size_t tlen);
/* Scan <text> (<tlen> bytes) and decide for its first statement: its
 * shape, with the verdict in <v> and the fingerprint in <fp>; NULL
 * (counted when marked) if it is not served. */
const struct stats_shape_info *proxy_cc_decide(struct proxy_client *c, struct proxy_server *s,
                                               struct proxy_cl_cache *cc, const char *text,
                                               size_t tlen, struct cache_verdict *v, uint64_t *fp);
/* The key's fields that are not the statement's, <settings> (<cap>
 * bytes) holding the session's: -1 if they do not fit. */
int proxy_cc_key_session(const struct proxy_client *c, struct cache_key_input *in, char *settings,
                         size_t cap);
/* Look up cc->lk.key (made) for a statement of shape <si>: the returns of
 * proxy_cache_query. May close <c> (PROXY_CACHE_CLOSED). */
int proxy_cc_lookup(struct proxy_client *c, struct proxy_cl_cache *cc,
                    const struct stats_shape_info *si, uint32_t ttl_s, uint64_t fp);
/* A hit of statement <fp>: counted in SHOW STATS and SHOW QUERIES. */
void proxy_cc_count_hit(struct proxy_client *c, uint64_t fp);

/* ---- cache_ext.c, for cache_hooks.c ---- */

/* proxy_cache_query for an extended-protocol group at the head of <c>'s
 * input. May close <c>. */
int proxy_cc_ext_query(struct proxy_client *c, struct proxy_server *s);
/* Answer the group at the head of <c>'s input with <e>: 0 done, 1 when it
 * cannot be (it goes to PostgreSQL), -1 if <c> cannot be written to (the
 * caller closes it). */
int proxy_cc_replay_ext(struct proxy_client *c, const struct cache_entry *e, uint64_t fp);
/* The head of <c>'s input (a Bind, Describe or Close) may need the unnamed
 * statement a hit left unparsed at <s>: send it first. -1 if <c> was
 * closed. */
int proxy_cc_restore_parse(struct proxy_client *c, struct proxy_server *s);
/* The bytes of the group at the head of <c>'s input, its Sync included. */
size_t proxy_cc_group_len(const struct proxy_client *c);
/* Client message <m> went to the server (proxy_cache_sent): what it does
 * to the unnamed statement and, in session mode, the named ones; a marked
 * Parse not looked up is counted. */
void proxy_cc_ext_sent(struct proxy_client *c, struct proxy_cl_cache *cc,
                       const struct proxy_ps_msg *m);
/* <cc> was made: follow named statements when in session mode. */
void proxy_cc_ext_init(struct proxy_client *c, struct proxy_cl_cache *cc);
/* Free what cache_ext.c holds in <cc>. */
void proxy_cc_ext_free(struct proxy_cl_cache *cc);

#endif
