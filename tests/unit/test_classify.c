/* The cold-path classifier (stats/classify.c) on a corpus of statements:
 * class and every flag, the tables read and written, for each; then the
 * fingerprint, the caps on the lists, text the parser cannot read and
 * text cut by a NUL. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "stats/stats.h"

/* Expected flags */
#define F_W   0x01 /* writes */
#define F_L   0x02 /* locking */
#define F_CTE 0x04 /* modifying_cte */
#define F_V   0x08 /* volatile_fn */
#define F_CAT 0x10 /* catalog */
#define F_TMP 0x20 /* temp */

struct want {
	const char *sql;
	enum stats_class cls;
	unsigned flags;
	const char *read;    /* names joined by ',' in the order met */
	const char *written; /* likewise */
};

static const struct want corpus[] = {
        /* select, VALUES, TABLE, WITH ... SELECT */
        {"SELECT 1", STATS_CL_SELECT, 0, "", ""},
        {"select a, b from t where id = 42", STATS_CL_SELECT, 0, "t", ""},
        {"VALUES (1, 'a'), (2, 'b')", STATS_CL_SELECT, 0, "", ""},
        {"TABLE t", STATS_CL_SELECT, 0, "t", ""},
        {"WITH q AS (SELECT * FROM t WHERE x > 1) SELECT * FROM q", STATS_CL_SELECT, 0, "t", ""},
        {"select * from a union all select * from b except select * from c", STATS_CL_SELECT, 0,
         "a,b,c", ""},
        /* joins and subqueries */
        {"select * from a join b on a.id = b.id left join lateral (select * from c where c.x = "
         "a.x) "
         "s on true where exists (select 1 from d.e where e.k = a.k)",
         STATS_CL_SELECT, 0, "a,b,c,d.e", ""},
        {"select a from t where b in (select b from u where c = (select max(c) from v))",
         STATS_CL_SELECT, 0, "t,u,v", ""},
        {"select * from a, a as a2, public.a", STATS_CL_SELECT, 0, "a,public.a", ""},
        /* schema-qualified and quoted names */
        {"select * from \"MyTab\" m, MyTab2, \"Sch\".\"T\", sch.t2", STATS_CL_SELECT, 0,
         "MyTab,mytab2,Sch.T,sch.t2", ""},
        /* locking clauses; the OF list names aliases, not tables */
        {"SELECT * FROM t WHERE id = 1 FOR UPDATE", STATS_CL_SELECT, F_L, "t", ""},
        {"select * from t a join u b on a.id = b.id for share of b", STATS_CL_SELECT, F_L, "t,u",
         ""},
        {"select * from t for no key update", STATS_CL_SELECT, F_L, "t", ""},
        {"select * from t for key share skip locked", STATS_CL_SELECT, F_L, "t", ""},
        {"select * from t for update nowait", STATS_CL_SELECT, F_L, "t", ""},
        /* CTEs with DML: a write; the CTE's own name is no table */
        {"WITH x AS (UPDATE a.t SET v = 1 RETURNING *) SELECT * FROM x", STATS_CL_SELECT,
         F_W | F_CTE, "", "a.t"},
        {"with d as (delete from q where done returning id) select count(*) from d",
         STATS_CL_SELECT, F_W | F_CTE, "", "q"},
        {"with i as (insert into log values (1) returning id) select * from i, t", STATS_CL_SELECT,
         F_W | F_CTE, "t", "log"},
        {"WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d", STATS_CL_INSERT,
         F_W | F_CTE, "", "b,a"},
        /* SELECT INTO */
        {"SELECT a INTO t2 FROM t", STATS_CL_SELECT, F_W, "t", "t2"},
        {"select * into temp tt from t", STATS_CL_SELECT, F_W | F_TMP, "t", "tt"},
        /* DML */
        {"INSERT INTO t (a, b) VALUES (1, 'x')", STATS_CL_INSERT, F_W, "", "t"},
        {"insert into s.t select * from u", STATS_CL_INSERT, F_W, "u", "s.t"},
        {"insert into t values (1) on conflict (id) do update set a = excluded.a", STATS_CL_INSERT,
         F_W, "", "t"},
        {"UPDATE t SET a = 1 WHERE id = 2", STATS_CL_UPDATE, F_W, "", "t"},
        {"update t set a = (select max(a) from t) from u where u.id = t.id", STATS_CL_UPDATE, F_W,
         "t,u", "t"},
        {"DELETE FROM t USING u WHERE t.id = u.id RETURNING *", STATS_CL_DELETE, F_W, "u", "t"},
        {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a "
         "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.a)",
         STATS_CL_MERGE, F_W, "s", "t"},
        /* COPY both ways */
        {"COPY t FROM STDIN", STATS_CL_COPY, F_W, "", "t"},
        {"copy s.t (a, b) from '/tmp/x' with (format csv)", STATS_CL_COPY, F_W, "", "s.t"},
        {"COPY t TO STDOUT", STATS_CL_COPY, 0, "t", ""},
        {"COPY (SELECT * FROM t JOIN u USING (id)) TO STDOUT", STATS_CL_COPY, 0, "t,u", ""},
        {"copy (update t set a = 1 returning *) to stdout", STATS_CL_COPY, F_W, "", "t"},
        /* EXPLAIN: only ANALYZE runs the statement */
        {"EXPLAIN UPDATE t SET a = 1", STATS_CL_UTILITY, 0, "t", ""},
        {"EXPLAIN ANALYZE UPDATE t SET a = 1", STATS_CL_UTILITY, F_W, "", "t"},
        {"explain (analyze, buffers) delete from t where id = 1", STATS_CL_UTILITY, F_W, "", "t"},
        {"explain (analyze false) update t set a = 1", STATS_CL_UTILITY, 0, "t", ""},
        {"explain (analyze off) update t set a = 1", STATS_CL_UTILITY, 0, "t", ""},
        {"explain (analyze 0) update t set a = 1", STATS_CL_UTILITY, 0, "t", ""},
        {"explain analyze select * from t", STATS_CL_UTILITY, 0, "t", ""},
        /* DO and CALL run arbitrary code */
        {"DO $$ BEGIN UPDATE t SET a = 1; END $$", STATS_CL_UTILITY, F_W | F_V, "", ""},
        {"do language plpgsql 'begin perform 1; end'", STATS_CL_UTILITY, F_W | F_V, "", ""},
        {"CALL p(1, 'x')", STATS_CL_UTILITY, F_W | F_V, "", ""},
        {"call s.p()", STATS_CL_UTILITY, F_W | F_V, "", ""},
        /* PREPARE does not run its statement; EXECUTE may write */
        {"PREPARE p (int) AS UPDATE t SET a = $1", STATS_CL_UTILITY, 0, "t", ""},
        {"prepare q as select * from t where id = $1", STATS_CL_UTILITY, 0, "t", ""},
        {"EXECUTE p(1)", STATS_CL_UTILITY, F_W, "", ""},
        {"DEALLOCATE p", STATS_CL_UTILITY, 0, "", ""},
        {"deallocate all", STATS_CL_UTILITY, 0, "", ""},
        /* DDL */
        {"CREATE TABLE t (id int primary key, u int references u(id))", STATS_CL_DDL, F_W, "u",
         "t"},
        {"create temp table tt (a int)", STATS_CL_DDL, F_W | F_TMP, "", "tt"},
        {"create table s.t (like s.base)", STATS_CL_DDL, F_W, "s.base", "s.t"},
        {"ALTER TABLE t ADD COLUMN b int", STATS_CL_DDL, F_W, "", "t"},
        {"DROP TABLE a.b, c", STATS_CL_DDL, F_W, "", "a.b,c"},
        {"drop index if exists i", STATS_CL_DDL, F_W, "", "i"},
        {"drop function f(int)", STATS_CL_DDL, F_W, "", ""},
        {"TRUNCATE a, b.c", STATS_CL_DDL, F_W, "", "a,b.c"},
        {"CREATE INDEX ON t (a)", STATS_CL_DDL, F_W, "", "t"},
        {"CREATE VIEW v AS SELECT * FROM t JOIN u USING (id)", STATS_CL_DDL, F_W, "t,u", "v"},
        {"create materialized view mv as select * from t", STATS_CL_DDL, F_W, "t", "mv"},
        {"create table x as select * from y", STATS_CL_DDL, F_W, "y", "x"},
        {"REFRESH MATERIALIZED VIEW mv", STATS_CL_DDL, F_W, "", "mv"},
        {"GRANT SELECT ON t TO bob", STATS_CL_DDL, F_W, "", "t"},
        {"revoke all on s.t from bob", STATS_CL_DDL, F_W, "", "s.t"},
        {"grant r to bob", STATS_CL_DDL, F_W, "", ""},
        {"COMMENT ON TABLE t IS 'x'", STATS_CL_DDL, F_W, "", ""},
        {"REINDEX TABLE t", STATS_CL_DDL, F_W, "", "t"},
        {"CLUSTER t USING i", STATS_CL_DDL, F_W, "", "t"},
        {"create sequence s", STATS_CL_DDL, F_W, "", "s"},
        {"create function f() returns int language sql begin atomic update t set a = 1; "
         "select 1; end",
         STATS_CL_DDL, F_W, "t", ""},
        {"create rule r as on insert to t do instead insert into u values (new.a)", STATS_CL_DDL,
         F_W, "u", "t"},
        /* names f without calling it */
        {"create trigger tr before insert on t for each row execute function f()", STATS_CL_DDL,
         F_W, "", "t"},
        {"create extension pg_trgm", STATS_CL_DDL, F_W, "", ""},
        {"alter system set work_mem = '8MB'", STATS_CL_DDL, F_W, "", ""},
        /* TCL of each kind */
        {"BEGIN", STATS_CL_TCL, 0, "", ""},
        {"begin isolation level serializable", STATS_CL_TCL, 0, "", ""},
        {"START TRANSACTION READ ONLY", STATS_CL_TCL, 0, "", ""},
        {"COMMIT", STATS_CL_TCL, 0, "", ""},
        {"END", STATS_CL_TCL, 0, "", ""},
        {"ROLLBACK", STATS_CL_TCL, 0, "", ""},
        {"ABORT", STATS_CL_TCL, 0, "", ""},
        {"SAVEPOINT s1", STATS_CL_TCL, 0, "", ""},
        {"RELEASE SAVEPOINT s1", STATS_CL_TCL, 0, "", ""},
        {"ROLLBACK TO SAVEPOINT s1", STATS_CL_TCL, 0, "", ""},
        {"PREPARE TRANSACTION 'gx'", STATS_CL_TCL, 0, "", ""},
        {"COMMIT PREPARED 'gx'", STATS_CL_TCL, 0, "", ""},
        {"ROLLBACK PREPARED 'gx'", STATS_CL_TCL, 0, "", ""},
        {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", STATS_CL_TCL, 0, "", ""},
        {"set transaction snapshot '00000003-0000001B-1'", STATS_CL_TCL, 0, "", ""},
        /* utility */
        {"SET search_path = a, public", STATS_CL_UTILITY, 0, "", ""},
        {"set local statement_timeout = 100", STATS_CL_UTILITY, 0, "", ""},
        {"set session characteristics as transaction read only", STATS_CL_UTILITY, 0, "", ""},
        {"RESET ALL", STATS_CL_UTILITY, 0, "", ""},
        {"SHOW work_mem", STATS_CL_UTILITY, 0, "", ""},
        {"show all", STATS_CL_UTILITY, 0, "", ""},
        {"VACUUM ANALYZE t", STATS_CL_UTILITY, 0, "t", ""},
        {"ANALYZE s.t", STATS_CL_UTILITY, 0, "s.t", ""},
        {"DISCARD ALL", STATS_CL_UTILITY, 0, "", ""},
        {"LISTEN ch", STATS_CL_UTILITY, 0, "", ""},
        {"NOTIFY ch, 'x'", STATS_CL_UTILITY, 0, "", ""},
        {"UNLISTEN *", STATS_CL_UTILITY, 0, "", ""},
        {"LOCK TABLE t IN EXCLUSIVE MODE", STATS_CL_UTILITY, F_L, "t", ""},
        {"DECLARE c CURSOR FOR SELECT * FROM t FOR SHARE", STATS_CL_UTILITY, F_L, "t", ""},
        {"FETCH 10 FROM c", STATS_CL_UTILITY, 0, "", ""},
        {"MOVE 1 IN c", STATS_CL_UTILITY, 0, "", ""},
        {"CLOSE c", STATS_CL_UTILITY, 0, "", ""},
        {"CHECKPOINT", STATS_CL_UTILITY, 0, "", ""},
        {"LOAD 'auto_explain'", STATS_CL_UTILITY, 0, "", ""},
        {"SET CONSTRAINTS ALL DEFERRED", STATS_CL_UTILITY, 0, "", ""},
        /* functions */
        {"SELECT now()", STATS_CL_SELECT, F_V, "", ""},
        {"select random() from t", STATS_CL_SELECT, F_V, "t", ""},
        {"select nextval('s')", STATS_CL_SELECT, F_V, "", ""},
        {"select clock_timestamp(), txid_current()", STATS_CL_SELECT, F_V, "", ""},
        {"select pg_sleep(0.2)", STATS_CL_SELECT, F_V, "", ""},
        {"select lower(a), upper(b), length(c), substr(d, 1, 2), round(e), abs(f), trim(g) from t",
         STATS_CL_SELECT, 0, "t", ""},
        {"select pg_catalog.lower('A')", STATS_CL_SELECT, 0, "", ""},
        {"select myschema.lower('A')", STATS_CL_SELECT, F_V, "", ""},
        {"select my_function(a) from t", STATS_CL_SELECT, F_V, "t", ""},
        {"select count(*), sum(a), max(b) from t group by c", STATS_CL_SELECT, 0, "t", ""},
        {"select coalesce(a, 0), greatest(a, b), nullif(a, b) from t", STATS_CL_SELECT, 0, "t", ""},
        {"select to_char(ts, 'YYYY') from t", STATS_CL_SELECT, F_V, "t", ""},
        {"SELECT CURRENT_TIMESTAMP", STATS_CL_SELECT, F_V, "", ""},
        {"select current_user, session_user", STATS_CL_SELECT, F_V, "", ""},
        {"select * from t where d = current_date", STATS_CL_SELECT, F_V, "t", ""},
        {"select * from t where ts > 'now'::timestamptz", STATS_CL_SELECT, F_V, "t", ""},
        {"select * from t where d = 'today'::date", STATS_CL_SELECT, F_V, "t", ""},
        {"select * from t where d = '2024-01-01'::date", STATS_CL_SELECT, 0, "t", ""},
        {"select * from generate_series(1, 10) g", STATS_CL_SELECT, F_V, "", ""},
        {"select * from t where a = lower(now()::text)", STATS_CL_SELECT, F_V, "t", ""},
        /* catalogs */
        {"select * from pg_class", STATS_CL_SELECT, F_CAT, "pg_class", ""},
        {"select * from pg_catalog.pg_class c join pg_namespace n on n.oid = c.relnamespace",
         STATS_CL_SELECT, F_CAT, "pg_catalog.pg_class,pg_namespace", ""},
        {"select table_name from information_schema.tables", STATS_CL_SELECT, F_CAT,
         "information_schema.tables", ""},
        {"select * from pg_toast.pg_toast_1", STATS_CL_SELECT, F_CAT, "pg_toast.pg_toast_1", ""},
        {"select * from public.pg_like_name", STATS_CL_SELECT, 0, "public.pg_like_name", ""},
        /* temp */
        {"select * from pg_temp.x", STATS_CL_SELECT, F_TMP, "pg_temp.x", ""},
        {"insert into pg_temp.tt values (1)", STATS_CL_INSERT, F_W | F_TMP, "", "pg_temp.tt"},
        {"select * from pg_temp_3.x", STATS_CL_SELECT, F_TMP, "pg_temp_3.x", ""},
        /* a text of several statements: class of the first, flags of all */
        {"select 1; update t set a = 1", STATS_CL_SELECT, F_W, "", "t"},
        /* blank text parses to no statement */
        {"", STATS_CL_OTHER, 0, "", ""},
        {"-- nothing here", STATS_CL_OTHER, 0, "", ""},
};

static void join(char *dst, size_t n, char *const *list, uint8_t count)
{
	size_t off = 0;

	dst[0] = '\0';
	for (uint8_t i = 0; i < count; i++)
		off += (size_t)snprintf(dst + off, n - off, "%s%s", i ? "," : "", list[i]);
}

static int classify(const char *sql, uint8_t kw, struct stats_shape_info *si)
{
	return stats_classify(sql, strlen(sql), kw, si);
}

Test(classify, corpus)
{
	char got[1024];

	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		const struct want *c = &corpus[i];
		struct stats_shape_info si;
		int rc = classify(c->sql, PROTO_KW_OTHER, &si);

		cr_expect_eq(rc, 0, "[%s] rc %d", c->sql, rc);
		cr_expect(si.parsed, "[%s] not parsed", c->sql);
		cr_expect_neq(si.pg_fp, 0, "[%s] no fingerprint", c->sql);
		cr_expect_eq(si.cls, c->cls, "[%s] class %s, want %s", c->sql,
		             stats_class_name(si.cls), stats_class_name(c->cls));
		cr_expect_eq(si.writes, !!(c->flags & F_W), "[%s] writes %d", c->sql, si.writes);
		cr_expect_eq(si.locking, !!(c->flags & F_L), "[%s] locking %d", c->sql, si.locking);
		cr_expect_eq(si.modifying_cte, !!(c->flags & F_CTE), "[%s] modifying_cte %d",
		             c->sql, si.modifying_cte);
		cr_expect_eq(si.volatile_fn, !!(c->flags & F_V), "[%s] volatile_fn %d", c->sql,
		             si.volatile_fn);
		cr_expect_eq(si.catalog, !!(c->flags & F_CAT), "[%s] catalog %d", c->sql,
		             si.catalog);
		cr_expect_eq(si.temp, !!(c->flags & F_TMP), "[%s] temp %d", c->sql, si.temp);
		cr_expect_not(si.tables_cut, "[%s] tables cut", c->sql);
		join(got, sizeof(got), si.read, si.nread);
		cr_expect_str_eq(got, c->read, "[%s] read \"%s\", want \"%s\"", c->sql, got,
		                 c->read);
		join(got, sizeof(got), si.written, si.nwritten);
		cr_expect_str_eq(got, c->written, "[%s] written \"%s\", want \"%s\"", c->sql, got,
		                 c->written);
		stats_shape_info_free(&si);
		cr_expect_eq(si.nread + si.nwritten, 0);
	}
}

Test(classify, class_names)
{
	static const char *const names[] = {"select", "insert", "update", "delete",  "merge",
	                                    "copy",   "ddl",    "tcl",    "utility", "other"};

	cr_assert_eq(sizeof(names) / sizeof(names[0]), STATS_NCLASSES);
	for (int i = 0; i < STATS_NCLASSES; i++)
		cr_expect_str_eq(stats_class_name((enum stats_class)i), names[i]);
	cr_expect_str_eq(stats_class_name(STATS_NCLASSES), "other");
	cr_expect_str_eq(stats_class_name((enum stats_class)200), "other");
}

/* libpg_query's fingerprint ignores literals and spacing, not the shape. */
Test(classify, fingerprint)
{
	struct stats_shape_info a, b, c;

	cr_assert_eq(classify("SELECT * FROM t WHERE id = 1", PROTO_KW_SELECT, &a), 0);
	cr_assert_eq(classify("select *  from t where id = 99", PROTO_KW_SELECT, &b), 0);
	cr_assert_eq(classify("select * from t where id = 1 and x = 2", PROTO_KW_SELECT, &c), 0);
	cr_expect_eq(a.pg_fp, b.pg_fp);
	cr_expect_neq(a.pg_fp, c.pg_fp);
	stats_shape_info_free(&a);
	stats_shape_info_free(&b);
	stats_shape_info_free(&c);
}

/* Text the parser cannot read: -1, the scanner's keyword gives the class,
 * and nothing else is set. */
Test(classify, unparsable)
{
	static const struct {
		uint8_t kw;
		enum stats_class cls;
	} kws[] = {
	        {PROTO_KW_SELECT, STATS_CL_SELECT},
	        {PROTO_KW_WITH, STATS_CL_SELECT},
	        {PROTO_KW_VALUES, STATS_CL_SELECT},
	        {PROTO_KW_TABLE, STATS_CL_SELECT},
	        {PROTO_KW_INSERT, STATS_CL_INSERT},
	        {PROTO_KW_UPDATE, STATS_CL_UPDATE},
	        {PROTO_KW_DELETE, STATS_CL_DELETE},
	        {PROTO_KW_MERGE, STATS_CL_MERGE},
	        {PROTO_KW_COPY, STATS_CL_COPY},
	        {PROTO_KW_CREATE, STATS_CL_DDL},
	        {PROTO_KW_ALTER, STATS_CL_DDL},
	        {PROTO_KW_DROP, STATS_CL_DDL},
	        {PROTO_KW_TRUNCATE, STATS_CL_DDL},
	        {PROTO_KW_GRANT, STATS_CL_DDL},
	        {PROTO_KW_REVOKE, STATS_CL_DDL},
	        {PROTO_KW_COMMENT, STATS_CL_DDL},
	        {PROTO_KW_REFRESH, STATS_CL_DDL},
	        {PROTO_KW_REINDEX, STATS_CL_DDL},
	        {PROTO_KW_CLUSTER, STATS_CL_DDL},
	        {PROTO_KW_BEGIN, STATS_CL_TCL},
	        {PROTO_KW_START, STATS_CL_TCL},
	        {PROTO_KW_COMMIT, STATS_CL_TCL},
	        {PROTO_KW_END, STATS_CL_TCL},
	        {PROTO_KW_ROLLBACK, STATS_CL_TCL},
	        {PROTO_KW_ABORT, STATS_CL_TCL},
	        {PROTO_KW_SAVEPOINT, STATS_CL_TCL},
	        {PROTO_KW_RELEASE, STATS_CL_TCL},
	        {PROTO_KW_PREPARE, STATS_CL_UTILITY},
	        {PROTO_KW_EXECUTE, STATS_CL_UTILITY},
	        {PROTO_KW_DEALLOCATE, STATS_CL_UTILITY},
	        {PROTO_KW_SET, STATS_CL_UTILITY},
	        {PROTO_KW_RESET, STATS_CL_UTILITY},
	        {PROTO_KW_SHOW, STATS_CL_UTILITY},
	        {PROTO_KW_EXPLAIN, STATS_CL_UTILITY},
	        {PROTO_KW_VACUUM, STATS_CL_UTILITY},
	        {PROTO_KW_ANALYZE, STATS_CL_UTILITY},
	        {PROTO_KW_LISTEN, STATS_CL_UTILITY},
	        {PROTO_KW_UNLISTEN, STATS_CL_UTILITY},
	        {PROTO_KW_NOTIFY, STATS_CL_UTILITY},
	        {PROTO_KW_DO, STATS_CL_UTILITY},
	        {PROTO_KW_CALL, STATS_CL_UTILITY},
	        {PROTO_KW_LOCK, STATS_CL_UTILITY},
	        {PROTO_KW_DISCARD, STATS_CL_UTILITY},
	        {PROTO_KW_DECLARE, STATS_CL_UTILITY},
	        {PROTO_KW_FETCH, STATS_CL_UTILITY},
	        {PROTO_KW_MOVE, STATS_CL_UTILITY},
	        {PROTO_KW_CLOSE, STATS_CL_UTILITY},
	        {PROTO_KW_CHECKPOINT, STATS_CL_UTILITY},
	        {PROTO_KW_NONE, STATS_CL_OTHER},
	        {PROTO_KW_OTHER, STATS_CL_OTHER},
	        {250, STATS_CL_OTHER},
	};
	static const char *const texts[] = {
	        "select * from t where",
	        "update t set a = 1 where (",
	        "selec 1",
	        "insert into t values ('unterminated",
	        "with x as (update t set a = 1) selec x",
	};

	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
		for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
			struct stats_shape_info si;
			int rc = classify(texts[t], kws[i].kw, &si);
			cr_expect_eq(rc, -1, "[%s] kw %u rc %d", texts[t], kws[i].kw, rc);
			cr_expect_eq(si.cls, kws[i].cls, "[%s] kw %u class %s", texts[t], kws[i].kw,
			             stats_class_name(si.cls));
			cr_expect_not(si.parsed);
			cr_expect_eq(si.pg_fp, 0);
			cr_expect_not(si.writes || si.locking || si.modifying_cte ||
			              si.volatile_fn || si.catalog || si.temp || si.tables_cut);
			cr_expect_eq(si.nread + si.nwritten, 0);
			stats_shape_info_free(&si);
		}
}

/* <len> bounds the text: what follows is not read, and a NUL ends it. */
Test(classify, length_and_nul)
{
	struct stats_shape_info si;
	const char two[] = "select * from t; drop table u";
	const char nul[] = "select * from t\0 for update";

	cr_assert_eq(stats_classify(two, strlen("select * from t"), PROTO_KW_SELECT, &si), 0);
	cr_expect_eq(si.cls, STATS_CL_SELECT);
	cr_expect_not(si.writes);
	cr_expect_eq(si.nread, 1);
	cr_expect_eq(si.nwritten, 0);
	stats_shape_info_free(&si);

	cr_assert_eq(stats_classify(nul, sizeof(nul) - 1, PROTO_KW_SELECT, &si), 0);
	cr_expect_not(si.locking);
	cr_expect_eq(si.nread, 1);
	stats_shape_info_free(&si);

	/* a cut text that no longer parses */
	cr_expect_eq(stats_classify(two, 10, PROTO_KW_SELECT, &si), -1);
	cr_expect_eq(si.cls, STATS_CL_SELECT);
	stats_shape_info_free(&si);
}

/* More tables than STATS_MAX_TABLES: the lists stop there, flagged cut. */
Test(classify, tables_cut)
{
	char sql[4096];
	size_t off = 0;
	struct stats_shape_info si;

	off += (size_t)snprintf(sql + off, sizeof(sql) - off, "select * from t0");
	for (int i = 1; i < STATS_MAX_TABLES + 4; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ", t%d", i);
	cr_assert_eq(classify(sql, PROTO_KW_SELECT, &si), 0);
	cr_expect_eq(si.nread, STATS_MAX_TABLES);
	cr_expect(si.tables_cut);
	cr_expect_str_eq(si.read[0], "t0");
	cr_expect_str_eq(si.read[STATS_MAX_TABLES - 1], "t15");
	stats_shape_info_free(&si);

	/* exactly the cap, and repeats, are not cut */
	off = (size_t)snprintf(sql, sizeof(sql), "select * from t0");
	for (int i = 1; i < STATS_MAX_TABLES; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ", t%d, t%d as x%d", i, i, i);
	cr_assert_eq(classify(sql, PROTO_KW_SELECT, &si), 0);
	cr_expect_eq(si.nread, STATS_MAX_TABLES);
	cr_expect_not(si.tables_cut);
	stats_shape_info_free(&si);

	/* writes have their own list */
	off = (size_t)snprintf(sql, sizeof(sql), "truncate w0");
	for (int i = 1; i < STATS_MAX_TABLES + 1; i++)
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, ", w%d", i);
	cr_assert_eq(classify(sql, PROTO_KW_TRUNCATE, &si), 0);
	cr_expect_eq(si.nwritten, STATS_MAX_TABLES);
	cr_expect_eq(si.nread, 0);
	cr_expect(si.tables_cut);
	stats_shape_info_free(&si);
}

/* A statement nested deeper than the walk goes is classed as unparsable;
 * one a little less deep is read. */
Test(classify, deep_nesting)
{
	static char sql[64 * 1024];
	struct stats_shape_info si;
	size_t off;

	for (int depth = 100; depth <= 3000; depth += 2900) {
		off = (size_t)snprintf(sql, sizeof(sql), "select ");
		for (int i = 0; i < depth; i++)
			off += (size_t)snprintf(sql + off, sizeof(sql) - off, "f(");
		off += (size_t)snprintf(sql + off, sizeof(sql) - off, "1");
		for (int i = 0; i < depth; i++)
			off += (size_t)snprintf(sql + off, sizeof(sql) - off, ")");
		int rc = classify(sql, PROTO_KW_SELECT, &si);
		cr_expect_eq(si.cls, STATS_CL_SELECT);
		if (depth == 100) {
			cr_expect_eq(rc, 0);
			cr_expect(si.volatile_fn);
		} else {
			cr_expect_eq(rc, -1);
			cr_expect_not(si.parsed);
		}
		stats_shape_info_free(&si);
	}
}

/* Free twice, and a NULL, are fine. */
Test(classify, free_twice)
{
	struct stats_shape_info si;

	cr_assert_eq(classify("update a set x = 1 from b", PROTO_KW_UPDATE, &si), 0);
	cr_expect_eq(si.nread, 1);
	cr_expect_eq(si.nwritten, 1);
	stats_shape_info_free(&si);
	stats_shape_info_free(&si);
	stats_shape_info_free(NULL);
}

/* ---- session state (STATS_SS_*), for transaction pooling's pins ---- */

#define SS_SET_ANY (STATS_SS_SET | STATS_SS_SET_UNNAMED)

struct want_ss {
	const char *sql;
	uint8_t kw;
	uint32_t ss;
	const char *set_name; /* NULL: none expected */
};

static const struct want_ss ss_corpus[] = {
        /* what creates state */
        {"CREATE TEMP TABLE t (a int)", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"create temporary table t (a int)", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE TABLE pg_temp.t (a int)", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE TEMP VIEW v AS SELECT 1", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE TEMP SEQUENCE s", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        /* other objects in pg_temp (PostgreSQL's stats_ext test) */
        {"CREATE STATISTICS pg_temp.st ON a, b FROM ab1", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE TYPE pg_temp.ty AS (a int)", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE TYPE pg_temp.en AS ENUM ('a')", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE DOMAIN pg_temp.d AS int", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"CREATE AGGREGATE pg_temp.ag (int) (sfunc = int4pl, stype = int)", PROTO_KW_CREATE,
         STATS_SS_TEMP, NULL},
        {"CREATE STATISTICS st ON a, b FROM ab1", PROTO_KW_CREATE, 0, NULL},
        {"CREATE TYPE public.ty AS (a int)", PROTO_KW_CREATE, 0, NULL},
        {"DROP STATISTICS pg_temp.st", PROTO_KW_DROP, STATS_SS_MAY_END, NULL},
        {"CREATE TEMP TABLE t AS SELECT 1", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
        {"SELECT 1 AS a INTO TEMP t", PROTO_KW_SELECT, STATS_SS_TEMP, NULL},
        {"CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'select 1'", PROTO_KW_CREATE,
         STATS_SS_TEMP, NULL},
        {"SELECT pg_advisory_lock(1)", PROTO_KW_SELECT, STATS_SS_ADVISORY, NULL},
        {"select pg_catalog.pg_try_advisory_lock(1, 2)", PROTO_KW_SELECT, STATS_SS_ADVISORY, NULL},
        {"SELECT pg_advisory_lock_shared($1)", PROTO_KW_SELECT, STATS_SS_ADVISORY, NULL},
        {"SELECT x FROM t WHERE pg_try_advisory_lock_shared(id)", PROTO_KW_SELECT,
         STATS_SS_ADVISORY, NULL},
        {"LISTEN chan", PROTO_KW_LISTEN, STATS_SS_LISTEN, NULL},
        {"SET search_path = a, public", PROTO_KW_SET, STATS_SS_SET, "search_path"},
        {"SET SESSION statement_timeout TO 5", PROTO_KW_SET, STATS_SS_SET, "statement_timeout"},
        {"SET TIME ZONE 'UTC'", PROTO_KW_SET, STATS_SS_SET, "timezone"},
        {"SET NAMES 'UTF8'", PROTO_KW_SET, STATS_SS_SET, "client_encoding"},
        {"SET DateStyle = 'ISO'", PROTO_KW_SET, STATS_SS_SET, "datestyle"},
        {"SET work_mem FROM CURRENT", PROTO_KW_SET, STATS_SS_SET, "work_mem"},
        {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", PROTO_KW_SET, STATS_SS_SET,
         "SESSION CHARACTERISTICS"},
        /* a tracked name and another: <set_name> cannot speak for both */
        {"SET TimeZone = 'UTC'; SET search_path = a", PROTO_KW_SET, SS_SET_ANY, "timezone"},
        {"SET TimeZone = 'UTC'; SELECT set_config('search_path', 'a', false)", PROTO_KW_SET,
         SS_SET_ANY, "timezone"},
        {"SELECT set_config('search_path', 'a', false)", PROTO_KW_SELECT, SS_SET_ANY, NULL},
        {"SELECT set_config($1, $2, $3)", PROTO_KW_SELECT, SS_SET_ANY, NULL},
        {"SELECT set_config('a.b', 'c', 'true')", PROTO_KW_SELECT, SS_SET_ANY, NULL},
        {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", PROTO_KW_DECLARE, STATS_SS_CURSOR, NULL},
        {"PREPARE p (int) AS SELECT $1", PROTO_KW_PREPARE, STATS_SS_PREPARE, NULL},
        /* the body runs at EXECUTE: what it takes counts at PREPARE */
        {"PREPARE p AS SELECT pg_advisory_lock(1)", PROTO_KW_PREPARE,
         STATS_SS_PREPARE | STATS_SS_ADVISORY, NULL},
        {"LOAD 'auto_explain'", PROTO_KW_OTHER, STATS_SS_LOAD, NULL},
        {"SET ROLE bob", PROTO_KW_SET, STATS_SS_ROLE, NULL},
        /* a string the fingerprint cannot tell from 'bob' */
        {"SET ROLE 'none'", PROTO_KW_SET, STATS_SS_ROLE, NULL},
        {"SET SESSION AUTHORIZATION bob", PROTO_KW_SET, STATS_SS_AUTH, NULL},
        /* what ends it */
        {"DISCARD ALL", PROTO_KW_DISCARD, STATS_SS_DISCARD_ALL, NULL},
        {"discard temporary", PROTO_KW_DISCARD, STATS_SS_DISCARD_TEMP, NULL},
        {"UNLISTEN *", PROTO_KW_UNLISTEN, STATS_SS_UNLISTEN_ALL, NULL},
        {"SELECT pg_advisory_unlock_all()", PROTO_KW_SELECT, STATS_SS_UNLOCK_ALL, NULL},
        {"RESET ALL", PROTO_KW_RESET, STATS_SS_RESET_ALL, NULL},
        {"RESET ROLE", PROTO_KW_RESET, STATS_SS_RESET_ROLE, NULL},
        {"SET ROLE NONE", PROTO_KW_SET, STATS_SS_RESET_ROLE, NULL},
        {"SET SESSION AUTHORIZATION DEFAULT", PROTO_KW_SET, STATS_SS_RESET_AUTH, NULL},
        {"RESET SESSION AUTHORIZATION", PROTO_KW_RESET, STATS_SS_RESET_AUTH, NULL},
        {"CLOSE c", PROTO_KW_CLOSE, STATS_SS_CLOSE, NULL},
        {"CLOSE ALL", PROTO_KW_CLOSE, STATS_SS_CLOSE_ALL, NULL},
        {"DEALLOCATE p", PROTO_KW_DEALLOCATE, STATS_SS_DEALLOCATE, NULL},
        {"DEALLOCATE PREPARE ALL", PROTO_KW_DEALLOCATE, STATS_SS_DEALLOCATE_ALL, NULL},
        /* what may end some of it: the server is asked what is left */
        {"UNLISTEN chan", PROTO_KW_UNLISTEN, STATS_SS_MAY_END, NULL},
        {"SELECT pg_advisory_unlock(1)", PROTO_KW_SELECT, STATS_SS_MAY_END, NULL},
        {"SELECT pg_catalog.pg_advisory_unlock_shared(1, 2)", PROTO_KW_SELECT, STATS_SS_MAY_END,
         NULL},
        {"DROP TABLE t", PROTO_KW_DROP, STATS_SS_MAY_END, NULL},
        {"DROP TABLE IF EXISTS pg_temp.t, u", PROTO_KW_DROP, STATS_SS_MAY_END, NULL},
        {"DROP FUNCTION pg_temp.f()", PROTO_KW_DROP, STATS_SS_MAY_END, NULL},
        {"DROP SEQUENCE s", PROTO_KW_DROP, STATS_SS_MAY_END, NULL},
        {"DROP ROLE r", PROTO_KW_DROP, 0, NULL},
        {"DROP SCHEMA x", PROTO_KW_DROP, 0, NULL},
        /* what reads or advances sequence memory (no state: see pin_hooks.c) */
        {"SELECT currval('s')", PROTO_KW_SELECT, STATS_SS_SEQ_READ, NULL},
        {"select pg_catalog.lastval()", PROTO_KW_SELECT, STATS_SS_SEQ_READ, NULL},
        {"SELECT currval(pg_get_serial_sequence('t', 'id'))", PROTO_KW_SELECT, STATS_SS_SEQ_READ,
         NULL},
        {"SELECT nextval('s')", PROTO_KW_SELECT, STATS_SS_SEQ_SET, NULL},
        {"SELECT setval('s', 5)", PROTO_KW_SELECT, STATS_SS_SEQ_SET, NULL},
        {"SELECT nextval('s'), currval('s')", PROTO_KW_SELECT, STATS_SS_SEQ_SET | STATS_SS_SEQ_READ,
         NULL},
        /* what undoes work: an end sent before it in the transaction is void */
        {"ROLLBACK", PROTO_KW_ROLLBACK, STATS_SS_ROLLBACK, NULL},
        {"ABORT", PROTO_KW_ABORT, STATS_SS_ROLLBACK, NULL},
        {"ROLLBACK TO SAVEPOINT a", PROTO_KW_ROLLBACK, STATS_SS_ROLLBACK, NULL},
        {"PREPARE TRANSACTION 'x'", PROTO_KW_PREPARE, STATS_SS_ROLLBACK, NULL},
        {"BEGIN", PROTO_KW_BEGIN, 0, NULL},
        {"COMMIT", PROTO_KW_COMMIT, 0, NULL},
        {"SAVEPOINT a", PROTO_KW_SAVEPOINT, 0, NULL},
        /* what leaves nothing behind */
        {"CREATE TABLE t (a int)", PROTO_KW_CREATE, 0, NULL},
        {"CREATE TEMP TABLE t (a int) ON COMMIT DROP", PROTO_KW_CREATE, 0, NULL},
        {"SELECT * FROM pg_temp.t", PROTO_KW_SELECT, 0, NULL},
        {"SELECT pg_advisory_xact_lock(1)", PROTO_KW_SELECT, 0, NULL},
        {"SELECT pg_try_advisory_xact_lock(1)", PROTO_KW_SELECT, 0, NULL},
        {"SET LOCAL search_path = a", PROTO_KW_SET, 0, NULL},
        {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", PROTO_KW_SET, 0, NULL},
        {"RESET search_path", PROTO_KW_RESET, STATS_SS_SET_RESET, "search_path"},
        {"SET work_mem TO DEFAULT", PROTO_KW_SET, STATS_SS_SET_RESET, "work_mem"},
        {"RESET extra_float_digits", PROTO_KW_RESET, STATS_SS_SET_RESET, "extra_float_digits"},
        {"SET extra_float_digits = 3", PROTO_KW_SET, STATS_SS_SET, "extra_float_digits"},
        {"SELECT set_config('a.b', 'c', true)", PROTO_KW_SELECT, 0, NULL},
        {"DECLARE c CURSOR FOR SELECT 1", PROTO_KW_DECLARE, 0, NULL},
        {"DISCARD PLANS", PROTO_KW_DISCARD, 0, NULL},
        {"NOTIFY chan", PROTO_KW_NOTIFY, 0, NULL},
        {"SELECT 1", PROTO_KW_SELECT, 0, NULL},
        {"INSERT INTO t VALUES (1)", PROTO_KW_INSERT, 0, NULL},
};

Test(classify, session_state)
{
	for (size_t i = 0; i < sizeof(ss_corpus) / sizeof(ss_corpus[0]); i++) {
		const struct want_ss *w = &ss_corpus[i];
		struct stats_shape_info si;

		cr_expect_eq(classify(w->sql, w->kw, &si), 0, "%s: not parsed", w->sql);
		cr_expect_eq(si.session, w->ss, "%s: session bits %#x, want %#x", w->sql,
		             si.session, w->ss);
		if (w->set_name)
			cr_expect(si.set_name && strcmp(si.set_name, w->set_name) == 0,
			          "%s: set_name %s, want %s", w->sql,
			          si.set_name ? si.set_name : "-", w->set_name);
		else
			cr_expect_null(si.set_name, "%s: set_name %s", w->sql, si.set_name);
		stats_shape_info_free(&si);
		cr_expect_null(si.set_name);
	}
}

/* DECLARE, CLOSE, PREPARE and DEALLOCATE name what they make or end, so
 * that a CLOSE of another cursor is not taken for the end of a held one. */
Test(classify, session_object_names)
{
	static const struct {
		const char *sql;
		uint8_t kw;
		const char *name; /* NULL: none */
	} cases[] = {
	        {"DECLARE c1 CURSOR WITH HOLD FOR SELECT 1", PROTO_KW_DECLARE, "c1"},
	        {"DECLARE \"Big\" CURSOR WITH HOLD FOR SELECT 1", PROTO_KW_DECLARE, "Big"},
	        {"CLOSE C1", PROTO_KW_CLOSE, "c1"},
	        {"CLOSE ALL", PROTO_KW_CLOSE, NULL},
	        {"PREPARE p1 AS SELECT 1", PROTO_KW_PREPARE, "p1"},
	        {"DEALLOCATE p1", PROTO_KW_DEALLOCATE, "p1"},
	        {"DEALLOCATE ALL", PROTO_KW_DEALLOCATE, NULL},
	        {"DECLARE c1 CURSOR FOR SELECT 1", PROTO_KW_DECLARE, NULL},
	        {"SELECT 1", PROTO_KW_SELECT, NULL},
	};

	cr_expect_neq(stats_name_hash("c1"), stats_name_hash("c2"));
	cr_expect_neq(stats_name_hash("Big"), stats_name_hash("big"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stats_shape_info si;

		cr_assert_eq(classify(cases[i].sql, cases[i].kw, &si), 0, "%s", cases[i].sql);
		cr_expect_eq(si.obj_hash, cases[i].name ? stats_name_hash(cases[i].name) : 0, "%s",
		             cases[i].sql);
		stats_shape_info_free(&si);
	}
}

/* Text the parser cannot read (a statement cut short, or a syntax error)
 * is judged by its words, erring on the side of "creates state". */
Test(classify, session_state_unparsed)
{
	static const struct want_ss cases[] = {
	        {"LISTEN", PROTO_KW_LISTEN, STATS_SS_LISTEN, NULL},
	        {"CREATE TEMP TABLE t (a int, b", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
	        {"/* c */ create temporary table t (", PROTO_KW_CREATE, STATS_SS_TEMP, NULL},
	        {"CREATE TABLE t (a int, b", PROTO_KW_CREATE, 0, NULL},
	        {"SET search_path = ", PROTO_KW_SET, SS_SET_ANY, NULL},
	        {"SET LOCAL search_path = ", PROTO_KW_SET, 0, NULL},
	        {"SET ROLE", PROTO_KW_SET, STATS_SS_ROLE, NULL},
	        {"DECLARE c CURSOR WITH HOLD FOR SELECT (", PROTO_KW_DECLARE, STATS_SS_CURSOR,
	         NULL},
	        {"PREPARE p AS SELECT (", PROTO_KW_PREPARE, STATS_SS_PREPARE, NULL},
	        {"SELECT pg_advisory_lock(1), (", PROTO_KW_SELECT, STATS_SS_ADVISORY, NULL},
	        {"SELECT pg_advisory_xact_lock(1), (", PROTO_KW_SELECT, 0, NULL},
	        {"LOAD", PROTO_KW_OTHER, STATS_SS_LOAD, NULL},
	        {"ROLLBACK TO", PROTO_KW_ROLLBACK, STATS_SS_ROLLBACK, NULL},
	        {"BEGIN ISOLATION", PROTO_KW_BEGIN, 0, NULL},
	        {"SELECT (", PROTO_KW_SELECT, 0, NULL},
	        {"UNLISTEN", PROTO_KW_UNLISTEN, STATS_SS_MAY_END, NULL},
	        {"SELECT pg_advisory_unlock(1), (", PROTO_KW_SELECT, STATS_SS_MAY_END, NULL},
	        {"SELECT currval('s'), (", PROTO_KW_SELECT, STATS_SS_SEQ_READ, NULL},
	        {"SELECT nextval('s'), (", PROTO_KW_SELECT, STATS_SS_SEQ_SET, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stats_shape_info si;

		cr_expect_eq(classify(cases[i].sql, cases[i].kw, &si), -1, "%s: parsed",
		             cases[i].sql);
		cr_expect_eq(si.session, cases[i].ss, "%s: session bits %#x, want %#x",
		             cases[i].sql, si.session, cases[i].ss);
		stats_shape_info_free(&si);
	}
}

/* Which calls may write what the parser cannot see (the cache bumps the
 * whole database for them): a function of the user's or an extension's,
 * DO and CALL; not PostgreSQL's own, immutable or not. */
Test(classify, unknown_functions)
{
	static const struct {
		const char *sql;
		bool volatile_fn, unknown_fn;
	} cases[] = {
	        {"SELECT lower(v) FROM t", false, false},
	        {"SELECT now(), random(), clock_timestamp() FROM t", true, false},
	        {"SELECT nextval('s'), current_setting('x')", true, false},
	        {"SELECT pg_catalog.now()", true, false},
	        {"SELECT CURRENT_TIMESTAMP, current_user", true, false},
	        {"SELECT concat(a, b), to_char(now(), 'YYYY') FROM t", true, false},
	        {"SELECT my_func(1) FROM t", true, true},
	        {"SELECT public.lower(v) FROM t", true, true},
	        {"SELECT v FROM t WHERE id = app.writes_things()", true, true},
	        {"SELECT query_to_xml('DELETE FROM t RETURNING *', true, false, '')", true, true},
	        {"DO $$ BEGIN PERFORM 1; END $$", true, true},
	        {"CALL do_it(1)", true, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct stats_shape_info si;

		cr_assert_eq(classify(cases[i].sql, PROTO_KW_OTHER, &si), 0, "[%s]", cases[i].sql);
		cr_expect_eq(si.volatile_fn, cases[i].volatile_fn, "[%s] volatile_fn %d",
		             cases[i].sql, si.volatile_fn);
		cr_expect_eq(si.unknown_fn, cases[i].unknown_fn, "[%s] unknown_fn %d", cases[i].sql,
		             si.unknown_fn);
		stats_shape_info_free(&si);
	}
}
