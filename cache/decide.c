/*
 * Which statements the cache may answer. Two questions, in this order:
 * is the statement a candidate (a sluice:cache hint, a CACHE ADD or a
 * query rule naming its fingerprint, or table rules covering every table
 * it reads), and is it safe (the parser shows a plain read with nothing
 * volatile, outside a transaction, in a session whose role and settings
 * the key covers)? sluice:nocache always wins. Every "no" has a reason,
 * counted by the caller.
 *
 * Rules are uthash tables: a fingerprint is one lookup, a table rule one
 * lookup per table read (by full name, then by relation name alone).
 */
#include "cache/cache.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "conf/conf.h"
#include "protocol/proto.h"
#include "stats/stats.h"

_Static_assert(CACHE_MAX_TABLES == STATS_MAX_TABLES, "a lookup takes the parser's read[]");

struct fp_rule {
	uint64_t fp;
	uint32_t ttl_s; /* 0: default_ttl */
	UT_hash_handle hh;
};

struct table_rule {
	char *name; /* owned: as written, "schema.table" or "table" */
	uint32_t ttl_s;
	UT_hash_handle hh;
};

struct cache_rules {
	struct fp_rule *conf_fp;        /* config query.<fp> rules */
	struct table_rule *conf_table;  /* config table.<name> rules */
	struct fp_rule *added;          /* CACHE ADD */
	struct conf_cache_rule *copies; /* owned: the rules as loaded */
	size_t ncopies;
};

static const char *const reason_names[CACHE_NREASONS] = {
        [CACHE_OK] = "ok",
        [CACHE_NOT_MARKED] = "not_marked",
        [CACHE_NOCACHE_HINT] = "nocache_hint",
        [CACHE_UNPARSED] = "unparsed",
        [CACHE_CUT] = "cut",
        [CACHE_NOT_READ] = "not_read",
        [CACHE_WRITES] = "writes",
        [CACHE_MODIFYING_CTE] = "modifying_cte",
        [CACHE_LOCKING] = "locking",
        [CACHE_VOLATILE] = "volatile",
        [CACHE_CATALOG] = "catalog",
        [CACHE_TEMP] = "temp",
        [CACHE_IN_TRANSACTION] = "in_transaction",
        [CACHE_ROLE_CHANGED] = "role_changed",
        [CACHE_SESSION_STATE] = "session_state",
        [CACHE_MULTI_STATEMENT] = "multi_statement",
        [CACHE_EXTENDED] = "extended_protocol",
};

const char *cache_reason_name(enum cache_reason r)
{
	return (unsigned)r < CACHE_NREASONS ? reason_names[r] : "unknown";
}

struct cache_rules *cache_rules_new(void)
{
	return calloc(1, sizeof(struct cache_rules));
}

static void free_fp(struct fp_rule **h)
{
	struct fp_rule *r, *tmp;

	HASH_ITER(hh, *h, r, tmp)
	{
		HASH_DEL(*h, r); // NOLINT(clang-analyzer-unix.Malloc)
		free(r);
	}
}

static void free_conf_part(struct cache_rules *r)
{
	struct table_rule *t, *tmp;

	free_fp(&r->conf_fp);
	HASH_ITER(hh, r->conf_table, t, tmp)
	{
		HASH_DEL(r->conf_table, t); // NOLINT(clang-analyzer-unix.Malloc)
		free(t->name);
		free(t);
	}
	for (size_t i = 0; i < r->ncopies; i++)
		free(r->copies[i].table);
	free(r->copies);
	r->copies = NULL;
	r->ncopies = 0;
}

void cache_rules_free(struct cache_rules *r)
{
	if (!r)
		return;
	free_conf_part(r);
	free_fp(&r->added);
	free(r);
}

int cache_rules_load(struct cache_rules *r, const struct conf_cache *cc)
{
	struct cache_rules fresh = {0};

	fresh.copies = calloc(cc->nrules ? cc->nrules : 1, sizeof(*fresh.copies));
	if (!fresh.copies)
		return -1;
	for (size_t i = 0; i < cc->nrules; i++) {
		const struct conf_cache_rule *src = &cc->rules[i];
		struct conf_cache_rule *cp = &fresh.copies[fresh.ncopies];

		*cp = *src;
		cp->table = NULL;
		if (src->is_table) {
			struct table_rule *t = calloc(1, sizeof(*t));

			cp->table = strdup(src->table);
			if (t)
				t->name = strdup(src->table);
			if (!t || !t->name || !cp->table) {
				if (t)
					free(t->name);
				free(t);
				free(cp->table);
				goto oom;
			}
			t->ttl_s = src->ttl_s;
			HASH_ADD_KEYPTR(hh, fresh.conf_table, t->name, strlen(t->name), t);
		} else {
			struct fp_rule *f = calloc(1, sizeof(*f));

			if (!f)
				goto oom;
			f->fp = src->fp;
			f->ttl_s = src->ttl_s;
			HASH_ADD(hh, fresh.conf_fp, fp, sizeof(f->fp), f);
		}
		fresh.ncopies++;
	}
	free_conf_part(r);
	r->conf_fp = fresh.conf_fp;
	r->conf_table = fresh.conf_table;
	r->copies = fresh.copies;
	r->ncopies = fresh.ncopies;
	return 0;
oom:
	free_conf_part(&fresh);
	return -1;
}

int cache_rules_add(struct cache_rules *r, uint64_t fp, uint32_t ttl_s)
{
	struct fp_rule *f;

	HASH_FIND(hh, r->added, &fp, sizeof(fp), f);
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return -1;
		f->fp = fp;
		HASH_ADD(hh, r->added, fp, sizeof(f->fp), f);
	}
	f->ttl_s = ttl_s;
	return 0;
}

bool cache_rules_drop(struct cache_rules *r, uint64_t fp)
{
	struct fp_rule *f;

	HASH_FIND(hh, r->added, &fp, sizeof(fp), f);
	if (!f)
		return false;
	HASH_DEL(r->added, f);
	free(f);
	return true;
}

void cache_rules_each(const struct cache_rules *r,
                      void (*fn)(void *arg, const struct cache_rule_view *v), void *arg)
{
	const struct fp_rule *f, *tmp;

	for (size_t i = 0; i < r->ncopies; i++) {
		const struct conf_cache_rule *c = &r->copies[i];
		struct cache_rule_view v = {
		        .kind = c->is_table ? "table" : "query",
		        .table = c->table,
		        .fp = c->fp,
		        .ttl_s = c->ttl_s,
		};
		fn(arg, &v);
	}
	HASH_ITER(hh, r->added, f, tmp)
	{
		struct cache_rule_view v = {.kind = "added", .fp = f->fp, .ttl_s = f->ttl_s};
		fn(arg, &v);
	}
}

static const struct table_rule *find_table(const struct cache_rules *r, const char *name,
                                           size_t len)
{
	const struct table_rule *t;

	HASH_FIND(hh, r->conf_table, name, len, t);
	return t;
}

/*
 * The TTL of the table rule covering <name> (a table the statement
 * reads), 0 when none: "s.t" is covered by rule "s.t" or rule "t"; an
 * unqualified "t" by rule "t" or rule "public.t" (the default schema).
 * A rule only marks; which table a name really is matters to
 * invalidation, whose ids ignore the schema (cache_gen_table).
 */
static uint32_t table_ttl(const struct cache_rules *r, const char *name)
{
	const char *dot = strrchr(name, '.');
	const struct table_rule *t;
	char buf[160];

	t = find_table(r, name, strlen(name));
	if (t)
		return t->ttl_s;
	if (dot) {
		t = find_table(r, dot + 1, strlen(dot + 1));
		return t ? t->ttl_s : 0;
	}
	if (strlen(name) + 8 > sizeof(buf))
		return 0;
	memcpy(buf, "public.", 7);
	strcpy(buf + 7, name);
	t = find_table(r, buf, strlen(buf));
	return t ? t->ttl_s : 0;
}

/* Is it a candidate, and for how long? */
static bool marked(const struct cache_rules *r, uint32_t default_ttl,
                   const struct proto_sql_stmt *s, const struct stats_shape_info *shape,
                   uint32_t *ttl)
{
	const struct fp_rule *f = NULL;

	if (s->hints & PROTO_SQL_HINT_CACHE) {
		*ttl = s->cache_ttl ? s->cache_ttl : default_ttl;
		return true;
	}
	if (!r)
		return false;
	HASH_FIND(hh, r->added, &s->fp, sizeof(s->fp), f);
	if (!f)
		HASH_FIND(hh, r->conf_fp, &s->fp, sizeof(s->fp), f);
	if (f) {
		*ttl = f->ttl_s ? f->ttl_s : default_ttl;
		return true;
	}
	if (!r->conf_table || !shape || !shape->parsed || shape->tables_cut || shape->nread == 0)
		return false;
	/* every table read must be listed; the smallest TTL among them */
	uint32_t min = 0;
	for (unsigned i = 0; i < shape->nread; i++) {
		uint32_t t = table_ttl(r, shape->read[i]);

		if (!t)
			return false;
		if (!min || t < min)
			min = t;
	}
	*ttl = min;
	return true;
}

static enum cache_reason unsafe(const struct proto_sql_stmt *s,
                                const struct stats_shape_info *shape,
                                const struct cache_session *sess)
{
	if (!shape || !shape->parsed)
		return CACHE_UNPARSED;
	if (s->cut || shape->tables_cut)
		return CACHE_CUT;
	switch (s->keyword) {
	case PROTO_KW_SELECT:
	case PROTO_KW_VALUES:
	case PROTO_KW_WITH:
	case PROTO_KW_TABLE:
		break;
	default:
		return CACHE_NOT_READ;
	}
	if (shape->modifying_cte)
		return CACHE_MODIFYING_CTE;
	if (shape->writes)
		return CACHE_WRITES; /* SELECT INTO, a writing function the parser knows */
	if (shape->locking)
		return CACHE_LOCKING;
	if (shape->volatile_fn)
		return CACHE_VOLATILE;
	if (shape->catalog)
		return CACHE_CATALOG;
	if (shape->temp)
		return CACHE_TEMP;
	if (sess) {
		if (sess->in_tx)
			return CACHE_IN_TRANSACTION;
		if (sess->role_changed)
			return CACHE_ROLE_CHANGED;
		if (sess->state_changed)
			return CACHE_SESSION_STATE;
		if (sess->multi_stmt)
			return CACHE_MULTI_STATEMENT;
	}
	return CACHE_OK;
}

bool cache_decide(const struct cache_rules *rules, uint32_t default_ttl,
                  const struct proto_sql_stmt *s, const struct stats_shape_info *shape,
                  const struct cache_session *sess, struct cache_verdict *out)
{
	uint32_t ttl = 0;

	out->ttl_s = 0;
	if (s->hints & PROTO_SQL_HINT_NOCACHE) {
		out->reason = CACHE_NOCACHE_HINT;
		return false;
	}
	if (!marked(rules, default_ttl, s, shape, &ttl)) {
		out->reason = CACHE_NOT_MARKED;
		return false;
	}
	out->reason = unsafe(s, shape, sess);
	if (out->reason != CACHE_OK)
		return false;
	out->ttl_s = ttl ? ttl : default_ttl;
	return true;
}
