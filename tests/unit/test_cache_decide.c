/* cache_decide(): hints, rules, CACHE ADD/DROP and every reason a marked
 * statement is refused, from real scanner and parser verdicts. */
#include <criterion/criterion.h>
#include <string.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "protocol/proto.h"
#include "stats/stats.h"

struct seen {
	struct proto_sql_scan scan;
	char norm[4096];
	struct stats_shape_info shape;
	bool parsed;
};

/* Scan and classify <sql> (one statement). */
static void see(struct seen *s, const char *sql)
{
	memset(s, 0, sizeof(*s));
	proto_sql_scan(sql, strlen(sql), true, s->norm, sizeof(s->norm), &s->scan);
	cr_assert_eq(s->scan.nstmts, 1, "%s", sql);
	const struct proto_sql_stmt *st = &s->scan.stmt[0];
	s->parsed = stats_classify(sql + st->src_off, st->src_len, st->keyword, &s->shape) == 0;
}

static enum cache_reason why(const struct cache_rules *r, const char *sql,
                             const struct cache_session *sess, uint32_t *ttl)
{
	struct seen s;
	struct cache_verdict v;
	bool ok;

	see(&s, sql);
	ok = cache_decide(r, 60, &s.scan.stmt[0], &s.shape, sess, &v);
	cr_assert_eq(ok, v.reason == CACHE_OK, "%s", sql);
	if (ttl)
		*ttl = v.ttl_s;
	stats_shape_info_free(&s.shape);
	return v.reason;
}

#define EXPECT(r, sql, reason)                                                                     \
	do {                                                                                       \
		enum cache_reason got_ = why(r, sql, NULL, NULL);                                  \
		cr_assert_eq(got_, reason, "%s: %s, expected %s", sql, cache_reason_name(got_),    \
		             cache_reason_name(reason));                                           \
	} while (0)

Test(cache_decide, hints)
{
	uint32_t ttl;

	cr_assert_eq(why(NULL, "/* sluice:cache */ SELECT a FROM t WHERE id = 1", NULL, &ttl),
	             CACHE_OK);
	cr_assert_eq(ttl, 60, "no ttl= takes default_ttl");
	cr_assert_eq(why(NULL, "SELECT a FROM t /* sluice:cache ttl=30 */", NULL, &ttl), CACHE_OK);
	cr_assert_eq(ttl, 30);
	EXPECT(NULL, "SELECT a FROM t", CACHE_NOT_MARKED);
	EXPECT(NULL, "/* sluice:cache */ /* sluice:nocache */ SELECT 1", CACHE_NOCACHE_HINT);
	EXPECT(NULL, "/* sluice:cache */ VALUES (1), (2)", CACHE_OK);
	EXPECT(NULL, "/* sluice:cache */ WITH x AS (SELECT a FROM t) SELECT * FROM x", CACHE_OK);
	EXPECT(NULL, "/* sluice:cache */ SELECT 1", CACHE_OK);
}

Test(cache_decide, only_safe_reads)
{
	EXPECT(NULL, "/* sluice:cache */ SELECT now()", CACHE_VOLATILE);
	EXPECT(NULL, "/* sluice:cache */ SELECT random()", CACHE_VOLATILE);
	EXPECT(NULL, "/* sluice:cache */ SELECT nextval('s')", CACHE_VOLATILE);
	EXPECT(NULL, "/* sluice:cache */ SELECT current_user", CACHE_VOLATILE);
	EXPECT(NULL, "/* sluice:cache */ SELECT my_func(a) FROM t", CACHE_VOLATILE);
	EXPECT(NULL, "/* sluice:cache */ SELECT a FROM t FOR UPDATE", CACHE_LOCKING);
	EXPECT(NULL, "/* sluice:cache */ SELECT a FROM t FOR SHARE", CACHE_LOCKING);
	EXPECT(NULL, "/* sluice:cache */ WITH d AS (DELETE FROM t RETURNING a) SELECT * FROM d",
	       CACHE_MODIFYING_CTE);
	EXPECT(NULL, "/* sluice:cache */ SELECT relname FROM pg_class", CACHE_CATALOG);
	EXPECT(NULL, "/* sluice:cache */ SELECT * FROM information_schema.tables", CACHE_CATALOG);
	EXPECT(NULL, "/* sluice:cache */ SELECT * FROM pg_temp.x", CACHE_TEMP);
	EXPECT(NULL, "/* sluice:cache */ UPDATE t SET a = 1", CACHE_NOT_READ);
	EXPECT(NULL, "/* sluice:cache */ INSERT INTO t VALUES (1)", CACHE_NOT_READ);
	EXPECT(NULL, "/* sluice:cache */ SELECT a INTO t2 FROM t", CACHE_WRITES);
	EXPECT(NULL, "/* sluice:cache */ SHOW search_path", CACHE_NOT_READ);
	EXPECT(NULL, "/* sluice:cache */ SELECT FROM WHERE (", CACHE_UNPARSED);
}

Test(cache_decide, session_facts)
{
	const char *q = "/* sluice:cache */ SELECT a FROM t";
	struct cache_session s = {0};

	cr_assert_eq(why(NULL, q, &s, NULL), CACHE_OK);
	s.in_tx = true;
	cr_assert_eq(why(NULL, q, &s, NULL), CACHE_IN_TRANSACTION);
	s = (struct cache_session){.role_changed = true};
	cr_assert_eq(why(NULL, q, &s, NULL), CACHE_ROLE_CHANGED);
	s = (struct cache_session){.state_changed = true};
	cr_assert_eq(why(NULL, q, &s, NULL), CACHE_SESSION_STATE);
	s = (struct cache_session){.multi_stmt = true};
	cr_assert_eq(why(NULL, q, &s, NULL), CACHE_MULTI_STATEMENT);
	/* nocache wins over everything, unmarked stays unmarked */
	s.in_tx = true;
	cr_assert_eq(why(NULL, "/* sluice:nocache */ SELECT a FROM t", &s, NULL),
	             CACHE_NOCACHE_HINT);
	cr_assert_eq(why(NULL, "SELECT a FROM t", &s, NULL), CACHE_NOT_MARKED);
}

static struct cache_rules *rules_from(const char *const *tables, const uint32_t *ttls, size_t nt,
                                      const uint64_t *fps, size_t nf)
{
	struct conf_cache_rule rv[8];
	struct conf_cache cc = {0};
	struct cache_rules *r = cache_rules_new();

	cr_assert_not_null(r);
	for (size_t i = 0; i < nt; i++)
		rv[cc.nrules++] = (struct conf_cache_rule){
		        .is_table = true, .table = (char *)tables[i], .ttl_s = ttls[i]};
	for (size_t i = 0; i < nf; i++)
		rv[cc.nrules++] = (struct conf_cache_rule){.fp = fps[i], .ttl_s = 15};
	cc.rules = rv;
	cr_assert_eq(cache_rules_load(r, &cc), 0);
	return r;
}

Test(cache_decide, table_rules_cover_every_table)
{
	const char *tables[] = {"public.users", "orders", "app.items"};
	const uint32_t ttls[] = {30, 10, 90};
	struct cache_rules *r = rules_from(tables, ttls, 3, NULL, 0);
	uint32_t ttl;

	cr_assert_eq(why(r, "SELECT name FROM public.users WHERE id = 3", NULL, &ttl), CACHE_OK);
	cr_assert_eq(ttl, 30);
	cr_assert_eq(why(r, "SELECT name FROM users WHERE id = 3", NULL, &ttl), CACHE_OK,
	             "an unqualified read matches a public. rule");
	cr_assert_eq(why(r, "SELECT * FROM shop.orders", NULL, &ttl), CACHE_OK,
	             "a rule without schema matches any schema");
	cr_assert_eq(ttl, 10);
	cr_assert_eq(why(r, "SELECT * FROM users u JOIN orders o ON o.uid = u.id", NULL, &ttl),
	             CACHE_OK);
	cr_assert_eq(ttl, 10, "the smallest TTL of the tables read");
	EXPECT(r, "SELECT * FROM users u JOIN payments p ON p.uid = u.id", CACHE_NOT_MARKED);
	EXPECT(r, "SELECT * FROM items", CACHE_NOT_MARKED);
	EXPECT(r, "SELECT * FROM other.users", CACHE_NOT_MARKED);
	EXPECT(r, "SELECT * FROM app.items", CACHE_OK);
	EXPECT(r, "SELECT 1", CACHE_NOT_MARKED);
	/* a rule marks; safety still decides */
	EXPECT(r, "SELECT * FROM users FOR UPDATE", CACHE_LOCKING);
	EXPECT(r, "SELECT now(), * FROM users", CACHE_VOLATILE);
	EXPECT(r, "/* sluice:nocache */ SELECT * FROM users", CACHE_NOCACHE_HINT);
	EXPECT(r, "UPDATE users SET name = 'x'", CACHE_NOT_MARKED);
	cache_rules_free(r);
}

static uint64_t fp_of(const char *sql)
{
	struct seen s;

	see(&s, sql);
	stats_shape_info_free(&s.shape);
	return s.scan.stmt[0].fp;
}

struct collect {
	int n;
	char kinds[8][8];
	uint64_t fps[8];
	uint32_t ttls[8];
};

static void collect(void *arg, const struct cache_rule_view *v)
{
	struct collect *c = arg;

	strcpy(c->kinds[c->n], v->kind);
	c->fps[c->n] = v->fp;
	c->ttls[c->n++] = v->ttl_s;
}

Test(cache_decide, fingerprint_rules_and_cache_add)
{
	uint64_t fp = fp_of("SELECT a FROM t WHERE id = 1");
	struct cache_rules *r = rules_from(NULL, NULL, 0, &fp, 1);
	uint64_t fp2 = fp_of("SELECT b FROM t WHERE id = 1");
	struct collect col = {0};
	uint32_t ttl;

	cr_assert_eq(why(r, "SELECT a FROM t WHERE id = 42", NULL, &ttl), CACHE_OK,
	             "the fingerprint ignores literals");
	cr_assert_eq(ttl, 15);
	EXPECT(r, "SELECT b FROM t WHERE id = 1", CACHE_NOT_MARKED);
	cr_assert_eq(cache_rules_add(r, fp2, 0), 0);
	cr_assert_eq(why(r, "SELECT b FROM t WHERE id = 7", NULL, &ttl), CACHE_OK);
	cr_assert_eq(ttl, 60, "CACHE ADD without TTL takes default_ttl");
	cr_assert_eq(cache_rules_add(r, fp2, 5), 0);
	cr_assert_eq(why(r, "SELECT b FROM t WHERE id = 7", NULL, &ttl), CACHE_OK);
	cr_assert_eq(ttl, 5, "a second ADD replaces the first");

	cache_rules_each(r, collect, &col);
	cr_assert_eq(col.n, 2);
	cr_assert_str_eq(col.kinds[0], "query");
	cr_assert_eq(col.fps[0], fp);
	cr_assert_str_eq(col.kinds[1], "added");
	cr_assert_eq(col.fps[1], fp2);
	cr_assert_eq(col.ttls[1], 5);

	/* a reload replaces the config rules and keeps the added ones */
	struct conf_cache empty = {0};
	cr_assert_eq(cache_rules_load(r, &empty), 0);
	EXPECT(r, "SELECT a FROM t WHERE id = 1", CACHE_NOT_MARKED);
	EXPECT(r, "SELECT b FROM t WHERE id = 1", CACHE_OK);
	cr_assert(cache_rules_drop(r, fp2));
	cr_assert_not(cache_rules_drop(r, fp2));
	EXPECT(r, "SELECT b FROM t WHERE id = 1", CACHE_NOT_MARKED);
	/* nocache beats CACHE ADD */
	cr_assert_eq(cache_rules_add(r, fp2, 0), 0);
	EXPECT(r, "SELECT b FROM t WHERE id = 1 /* sluice:nocache */", CACHE_NOCACHE_HINT);
	cache_rules_free(r);
}

Test(cache_decide, no_shape_is_unparsed)
{
	struct seen s;
	struct cache_verdict v;

	see(&s, "/* sluice:cache */ SELECT a FROM t");
	cr_assert_not(cache_decide(NULL, 60, &s.scan.stmt[0], NULL, NULL, &v));
	cr_assert_eq(v.reason, CACHE_UNPARSED);
	stats_shape_info_free(&s.shape);
}

Test(cache_decide, reason_names)
{
	for (int i = 0; i < CACHE_NREASONS; i++)
		cr_assert_not_null(cache_reason_name((enum cache_reason)i), "%d", i);
	cr_assert_str_eq(cache_reason_name(CACHE_VOLATILE), "volatile");
	cr_assert_str_eq(cache_reason_name(CACHE_NREASONS), "unknown");
}
