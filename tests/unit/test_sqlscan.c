/*
 * The SQL scanner (protocol/sqlscan.c): every lexical form of PostgreSQL 15
 * with its expected normalized text and keyword; fingerprints that must and
 * must not agree; hints; splitting, BEGIN ATOMIC bodies and the statement
 * limit; cut texts and small buffers; nparams; agreement with libpg_query's
 * pg_query_normalize on a corpus where the two should agree; and the cost
 * of a pgbench statement.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pg_query.h>

#include "protocol/proto.h"

static char buf[65536];

/* Scans <sql> (complete) into the shared buffer. */
static struct proto_sql_scan scan(const char *sql)
{
	struct proto_sql_scan r;

	proto_sql_scan(sql, strlen(sql), true, buf, sizeof(buf), &r);
	return r;
}

static const char *norm(const struct proto_sql_scan *r, unsigned i)
{
	return buf + r->stmt[i].norm_off;
}

/* The fingerprint of <sql>, which must be one statement. */
static uint64_t fp(const char *sql)
{
	struct proto_sql_scan r = scan(sql);

	cr_assert_eq(r.nstmts, 1, "%s: %u statements", sql, r.nstmts);
	return r.stmt[0].fp;
}

struct norm_case {
	const char *sql;
	const char *norm;
	enum proto_sql_kw kw;
};

/* One statement each: its normalized text and keyword. */
static const struct norm_case cases[] = {
        /* plain strings, doubled quotes, continuation across a newline */
        {"SELECT 'a'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'it''s'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT ''", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT ''''", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'a\\'", "SELECT $1", PROTO_KW_SELECT}, /* standard_conforming_strings */
        {"SELECT 'a;b'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'a--b/*c*/'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'foo'\n'bar'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'foo'  \n  'bar'\n'baz'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'foo' -- note\n'bar'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'foo', 'bar'", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT 'foo' 'bar'", "SELECT $1 $2", PROTO_KW_SELECT}, /* no newline: two */
        {"SELECT 'a'||'b'", "SELECT $1||$2", PROTO_KW_SELECT},
        {"SELECT 'multi\nline'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 'unterminated", "SELECT $1", PROTO_KW_SELECT},
        /* E'' strings with backslash escapes */
        {"SELECT E'a\\'b'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT e'a\\\\'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT E'\\\\', 1", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT E'x''y'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT E'a'\n'b\\'c'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT E'\\n\\t\\x41\\u0041'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT E'open\\'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT name'x'", "SELECT name$1", PROTO_KW_SELECT}, /* a word, then a string */
        /* U&'' and U&"" with UESCAPE */
        {"SELECT U&'d\\0061t'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT u&'d!0061t' UESCAPE '!'", "SELECT $1 UESCAPE '!'", PROTO_KW_SELECT},
        {"SELECT U&'a''b'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT U&\"d\\0061t\" FROM t", "SELECT U&\"d\\0061t\" FROM t", PROTO_KW_SELECT},
        {"SELECT U&\"d!0061t\" UESCAPE '!' FROM t", "SELECT U&\"d!0061t\" UESCAPE '!' FROM t",
         PROTO_KW_SELECT},
        {"SELECT U&'x' uescape '#', 'y'", "SELECT $1 uescape '#', $2", PROTO_KW_SELECT},
        {"SELECT U & 1", "SELECT U & $1", PROTO_KW_SELECT},
        /* bit strings and N'' */
        {"SELECT B'1010'", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT b'01', x'1F', X'ff'", "SELECT $1, $2, $3", PROTO_KW_SELECT},
        {"SELECT N'abc'", "SELECT N$1", PROTO_KW_SELECT}, /* as pg_query_normalize */
        {"SELECT bx'1'", "SELECT bx$1", PROTO_KW_SELECT},
        /* dollar quotes */
        {"SELECT $$abc$$", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $$it's$$", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $tag$a$$b$tag$", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $a$x$b$y$a$, 1", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT $_1$ ; $_1$", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $é$x$é$", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $$unterminated", "SELECT $1", PROTO_KW_SELECT},
        {"DO $$BEGIN PERFORM 1; END$$", "DO $1", PROTO_KW_DO},
        {"DO LANGUAGE plpgsql $body$ BEGIN END $body$", "DO LANGUAGE plpgsql $1", PROTO_KW_DO},
        {"SELECT a$b FROM t", "SELECT a$b FROM t", PROTO_KW_SELECT}, /* $ inside a word */
        {"SELECT f$$x$$", "SELECT f$$x$$", PROTO_KW_SELECT},
        /* parameters are not dollar quotes */
        {"SELECT $1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT $1, $2", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT $1, 5", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT 5, $1", "SELECT $2, $1", PROTO_KW_SELECT},
        {"SELECT $2 + 1, $1", "SELECT $2 + $3, $1", PROTO_KW_SELECT},
        {"SELECT $10, 'x'", "SELECT $10, $11", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a = $1 LIMIT 10", "SELECT * FROM t WHERE a = $1 LIMIT $2",
         PROTO_KW_SELECT},
        {"SELECT $1$x", "SELECT $1$x", PROTO_KW_SELECT},
        {"SELECT $", "SELECT $", PROTO_KW_SELECT},
        /* comments: block (nested), line; hints aside, they are dropped */
        {"SELECT /* c */ 1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1 /* a /* nested */ still */ , 2", "SELECT $1 , $2", PROTO_KW_SELECT},
        {"SELECT/**/1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT a/*x*/b FROM t", "SELECT a b FROM t", PROTO_KW_SELECT},
        {"SELECT 1 -- trailing", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1 -- c\n, 2", "SELECT $1 , $2", PROTO_KW_SELECT},
        {"-- lead\nSELECT 1", "SELECT $1", PROTO_KW_SELECT},
        {"/* lead */ SELECT 1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1 /* unterminated", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1 /* a /* b */", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT '/*', 2 /* ' */", "SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT 1/**/-- x\n/**/FROM t", "SELECT $1 FROM t", PROTO_KW_SELECT},
        {"SELECT 2 /*/ still a comment */", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT a/*", "SELECT a", PROTO_KW_SELECT},
        /* quoted identifiers */
        {"SELECT \"Foo\" FROM \"T\"", "SELECT \"Foo\" FROM \"T\"", PROTO_KW_SELECT},
        {"SELECT \"a\"\"b\" FROM t", "SELECT \"a\"\"b\" FROM t", PROTO_KW_SELECT},
        {"SELECT \"it's\", 'x'", "SELECT \"it's\", $1", PROTO_KW_SELECT},
        {"SELECT \"a  b\"", "SELECT \"a  b\"", PROTO_KW_SELECT},
        {"SELECT \"--\" FROM t", "SELECT \"--\" FROM t", PROTO_KW_SELECT},
        {"SELECT \"open", "SELECT \"open", PROTO_KW_SELECT},
        {"SELECT 1 AS \"x\"", "SELECT $1 AS \"x\"", PROTO_KW_SELECT},
        /* numbers */
        {"SELECT 1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1.5, .5, 5., 1e10, 1.5E-3, 2e+7", "SELECT $1, $2, $3, $4, $5, $6",
         PROTO_KW_SELECT},
        {"SELECT 9999999999999999999999", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT 1e", "SELECT $1e", PROTO_KW_SELECT},
        {"SELECT 0x1F", "SELECT $1x1F", PROTO_KW_SELECT},   /* PG15: no hex literal */
        {"SELECT 1_000", "SELECT $1_000", PROTO_KW_SELECT}, /* PG15: no separators */
        {"SELECT 0b101, 0o17", "SELECT $1b101, $2o17", PROTO_KW_SELECT},
        {"SELECT 1..2", "SELECT $1..$2", PROTO_KW_SELECT},
        {"SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1", PROTO_KW_SELECT},
        {"SELECT a.b.c", "SELECT a.b.c", PROTO_KW_SELECT},
        {"SELECT x FROM t WHERE y>.5", "SELECT x FROM t WHERE y>$1", PROTO_KW_SELECT},
        /* :: casts and typed literals */
        {"SELECT '1'::int", "SELECT $1::int", PROTO_KW_SELECT},
        {"SELECT 1::text", "SELECT $1::text", PROTO_KW_SELECT},
        {"SELECT a::text::varchar FROM t", "SELECT a::text::varchar FROM t", PROTO_KW_SELECT},
        {"SELECT CAST('1' AS int)", "SELECT CAST($1 AS int)", PROTO_KW_SELECT},
        {"SELECT interval '1 day'", "SELECT interval $1", PROTO_KW_SELECT},
        {"SELECT date '2020-01-01'", "SELECT date $1", PROTO_KW_SELECT},
        {"SELECT TIMESTAMP '2020-01-01 00:00'", "SELECT TIMESTAMP $1", PROTO_KW_SELECT},
        {"SELECT INTERVAL '1' DAY", "SELECT INTERVAL $1 DAY", PROTO_KW_SELECT},
        {"SELECT now() - interval '5 minutes'", "SELECT now() - interval $1", PROTO_KW_SELECT},
        {"SELECT '{1,2}'::int[]", "SELECT $1::int[]", PROTO_KW_SELECT},
        {"SELECT a::numeric(10,2) FROM t", "SELECT a::numeric($1,$2) FROM t", PROTO_KW_SELECT},
        /* signs: folded after an operator, '(', ',', a keyword; not after operands */
        {"SELECT -1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT - 1", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT -1.5e3", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT -.5", "SELECT $1", PROTO_KW_SELECT},
        {"SELECT a -1 FROM t", "SELECT a -$1 FROM t", PROTO_KW_SELECT},
        {"SELECT a - 1 FROM t", "SELECT a - $1 FROM t", PROTO_KW_SELECT},
        {"SELECT a-1 FROM t", "SELECT a-$1 FROM t", PROTO_KW_SELECT},
        {"SELECT a - -1 FROM t", "SELECT a - $1 FROM t", PROTO_KW_SELECT},
        {"SELECT 1-1", "SELECT $1-$2", PROTO_KW_SELECT},
        {"SELECT 1+-1", "SELECT $1+$2", PROTO_KW_SELECT},
        {"SELECT a=-1 FROM t", "SELECT a=$1 FROM t", PROTO_KW_SELECT},
        {"SELECT a<-1, a*-1, a/-1 FROM t", "SELECT a<$1, a*$2, a/$3 FROM t", PROTO_KW_SELECT},
        {"SELECT a%-1, a^-1, a||-1 FROM t", "SELECT a%-$1, a^-$2, a||-$3 FROM t", PROTO_KW_SELECT},
        {"SELECT f(-1, -2)", "SELECT f($1, $2)", PROTO_KW_SELECT},
        {"SELECT a[-1], a[1:-2] FROM t", "SELECT a[$1], a[$2:$3] FROM t", PROTO_KW_SELECT},
        {"SELECT (1) -1", "SELECT ($1) -$2", PROTO_KW_SELECT},
        {"SELECT 'a' -1", "SELECT $1 -$2", PROTO_KW_SELECT},
        {"SELECT $1 -1", "SELECT $1 -$2", PROTO_KW_SELECT},
        {"SELECT \"a\" -1 FROM t", "SELECT \"a\" -$1 FROM t", PROTO_KW_SELECT},
        {"SELECT a[1] -1 FROM t", "SELECT a[$1] -$2 FROM t", PROTO_KW_SELECT},
        {"SELECT current_date -1", "SELECT current_date -$1", PROTO_KW_SELECT},
        {"SELECT CASE WHEN a THEN -1 ELSE -2 END -1 FROM t",
         "SELECT CASE WHEN a THEN $1 ELSE $2 END -$3 FROM t", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a = 1 AND -1 = b OR -2 = c",
         "SELECT * FROM t WHERE a = $1 AND $2 = b OR $3 = c", PROTO_KW_SELECT},
        {"SELECT * FROM t LIMIT -1 OFFSET -5", "SELECT * FROM t LIMIT $1 OFFSET $2",
         PROTO_KW_SELECT},
        {"SELECT x BETWEEN -1 AND 1 FROM t", "SELECT x BETWEEN $1 AND $2 FROM t", PROTO_KW_SELECT},
        {"SELECT NOT -1", "SELECT NOT $1", PROTO_KW_SELECT},
        {"SELECT +1", "SELECT +$1", PROTO_KW_SELECT}, /* unary plus is not folded */
        {"SELECT -(1)", "SELECT -($1)", PROTO_KW_SELECT},
        {"SELECT -a FROM t", "SELECT -a FROM t", PROTO_KW_SELECT},
        {"SELECT f(a => -1, b := -2)", "SELECT f(a => $1, b := $2)", PROTO_KW_SELECT},
        {"SELECT a->>'x', a->-1 FROM t", "SELECT a->>$1, a->$2 FROM t", PROTO_KW_SELECT},
        {"SELECT a @> '{1}' FROM t", "SELECT a @> $1 FROM t", PROTO_KW_SELECT},
        {"-1", "$1", PROTO_KW_NONE},
        /* booleans and NULL are kept, as pg_stat_statements keeps them */
        {"SELECT true, false, NULL", "SELECT true, false, NULL", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IS NULL AND b = TRUE",
         "SELECT * FROM t WHERE a IS NULL AND b = TRUE", PROTO_KW_SELECT},
        /* IN lists of literals collapse to one placeholder */
        {"SELECT * FROM t WHERE a IN (1, 2, 3)", "SELECT * FROM t WHERE a IN ($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1)", "SELECT * FROM t WHERE a IN ($1)", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a in ( 'x' , 'y' )", "SELECT * FROM t WHERE a in ($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a NOT IN (1,2)", "SELECT * FROM t WHERE a NOT IN ($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (-1, 2.5, 'x', $$y$$)", "SELECT * FROM t WHERE a IN ($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1, 2) AND b = 3",
         "SELECT * FROM t WHERE a IN ($1) AND b = $2", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1, /* c */ 2)", "SELECT * FROM t WHERE a IN ($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1, b)", "SELECT * FROM t WHERE a IN ($1, b)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN ($1, $2)", "SELECT * FROM t WHERE a IN ($1, $2)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1, $1)", "SELECT * FROM t WHERE a IN ($2, $1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (SELECT 1)", "SELECT * FROM t WHERE a IN (SELECT $1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1+1, 2)", "SELECT * FROM t WHERE a IN ($1+$2, $3)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN ('a'::text, 'b')", "SELECT * FROM t WHERE a IN ($1::text, $2)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN ((1), (2))", "SELECT * FROM t WHERE a IN (($1), ($2))",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN ()", "SELECT * FROM t WHERE a IN ()", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1,)", "SELECT * FROM t WHERE a IN ($1,)", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1 2)", "SELECT * FROM t WHERE a IN ($1 $2)", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))",
         "SELECT * FROM t WHERE (a, b) IN (($1, $2), ($3, $4))", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN (1, 2, 3)) AND d IN (4, 5)",
         "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c IN ($1)) AND d IN ($2)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (1, 2", "SELECT * FROM t WHERE a IN ($1, $2", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a = ANY('{1,2}')", "SELECT * FROM t WHERE a = ANY($1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a IN (date '2020-01-01')", "SELECT * FROM t WHERE a IN (date $1)",
         PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE inx (1, 2)", "SELECT * FROM t WHERE inx ($1, $2)", PROTO_KW_SELECT},
        /* ORDER BY / GROUP BY positions are column references, kept */
        {"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 1", PROTO_KW_SELECT},
        {"SELECT a, b FROM t ORDER BY 1, 2 DESC", "SELECT a, b FROM t ORDER BY 1, 2 DESC",
         PROTO_KW_SELECT},
        {"SELECT a, count(*) FROM t GROUP BY 1 HAVING count(*) > 1",
         "SELECT a, count(*) FROM t GROUP BY 1 HAVING count(*) > $1", PROTO_KW_SELECT},
        {"SELECT a FROM t ORDER BY a DESC NULLS LAST, 2",
         "SELECT a FROM t ORDER BY a DESC NULLS LAST, 2", PROTO_KW_SELECT},
        {"SELECT a FROM t ORDER BY 1 + 1", "SELECT a FROM t ORDER BY $1 + $2", PROTO_KW_SELECT},
        {"SELECT a FROM t GROUP BY a UNION SELECT 1, 2",
         "SELECT a FROM t GROUP BY a UNION SELECT $1, $2", PROTO_KW_SELECT},
        {"SELECT a FROM t ORDER BY 1 LIMIT 5", "SELECT a FROM t ORDER BY 1 LIMIT $1",
         PROTO_KW_SELECT},
        {"SELECT (SELECT a FROM t ORDER BY 1), 2", "SELECT (SELECT a FROM t ORDER BY 1), $1",
         PROTO_KW_SELECT},
        /* whitespace: runs are one space, none added, none at the ends */
        {"  SELECT   1  ", "SELECT $1", PROTO_KW_SELECT},
        {"\tSELECT\n*\r\nFROM\ft\v", "SELECT * FROM t", PROTO_KW_SELECT},
        {"SELECT a,b FROM t WHERE a=1", "SELECT a,b FROM t WHERE a=$1", PROTO_KW_SELECT},
        {"SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = $1", PROTO_KW_SELECT},
        {"SELECT f( 1 )", "SELECT f( $1 )", PROTO_KW_SELECT},
        /* leading keyword */
        {"select 1", "select $1", PROTO_KW_SELECT},
        {"(SELECT 1)", "(SELECT $1)", PROTO_KW_SELECT},
        {"((SELECT 1) UNION (SELECT 2))", "((SELECT $1) UNION (SELECT $2))", PROTO_KW_SELECT},
        {"INSERT INTO t (a, b) VALUES (1, 'x')", "INSERT INTO t (a, b) VALUES ($1, $2)",
         PROTO_KW_INSERT},
        {"INSERT INTO t VALUES (1, 'a'), (-2, 'b') RETURNING id",
         "INSERT INTO t VALUES ($1, $2), ($3, $4) RETURNING id", PROTO_KW_INSERT},
        {"INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 'y'",
         "INSERT INTO t (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET b = $2", PROTO_KW_INSERT},
        {"UPDATE t SET a = DEFAULT, b = -3 WHERE c = 'q'",
         "UPDATE t SET a = DEFAULT, b = $1 WHERE c = $2", PROTO_KW_UPDATE},
        {"UPDATE pgbench_accounts SET abalance = abalance + 4321 WHERE aid = 12345",
         "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", PROTO_KW_UPDATE},
        {"DELETE FROM t WHERE id = 7", "DELETE FROM t WHERE id = $1", PROTO_KW_DELETE},
        {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = 0",
         "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = $1", PROTO_KW_MERGE},
        {"WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT $1) SELECT * FROM x",
         PROTO_KW_WITH},
        {"VALUES (1), (2)", "VALUES ($1), ($2)", PROTO_KW_VALUES},
        {"TABLE t", "TABLE t", PROTO_KW_TABLE},
        {"COPY t FROM STDIN", "COPY t FROM STDIN", PROTO_KW_COPY},
        {"COPY (SELECT 1) TO STDOUT WITH (FORMAT csv)",
         "COPY (SELECT $1) TO STDOUT WITH (FORMAT csv)", PROTO_KW_COPY},
        {"BEGIN", "BEGIN", PROTO_KW_BEGIN},
        {"begin isolation level serializable", "begin isolation level serializable",
         PROTO_KW_BEGIN},
        {"START TRANSACTION READ ONLY", "START TRANSACTION READ ONLY", PROTO_KW_START},
        {"COMMIT", "COMMIT", PROTO_KW_COMMIT},
        {"END", "END", PROTO_KW_END},
        {"ROLLBACK TO SAVEPOINT s1", "ROLLBACK TO SAVEPOINT s1", PROTO_KW_ROLLBACK},
        {"ABORT", "ABORT", PROTO_KW_ABORT},
        {"SAVEPOINT s1", "SAVEPOINT s1", PROTO_KW_SAVEPOINT},
        {"RELEASE SAVEPOINT s1", "RELEASE SAVEPOINT s1", PROTO_KW_RELEASE},
        {"PREPARE p (int) AS SELECT $1 + 1", "PREPARE p (int) AS SELECT $1 + $2", PROTO_KW_PREPARE},
        {"PREPARE TRANSACTION 'gx'", "PREPARE TRANSACTION $1", PROTO_KW_PREPARE},
        {"EXECUTE p (1)", "EXECUTE p ($1)", PROTO_KW_EXECUTE},
        {"DEALLOCATE ALL", "DEALLOCATE ALL", PROTO_KW_DEALLOCATE},
        {"SET search_path = 'a', public", "SET search_path = $1, public", PROTO_KW_SET},
        {"SET statement_timeout TO -1", "SET statement_timeout TO $1", PROTO_KW_SET},
        {"RESET ALL", "RESET ALL", PROTO_KW_RESET},
        {"SHOW server_version", "SHOW server_version", PROTO_KW_SHOW},
        {"EXPLAIN (ANALYZE) UPDATE t SET a = 1", "EXPLAIN (ANALYZE) UPDATE t SET a = $1",
         PROTO_KW_EXPLAIN},
        {"CREATE TABLE t (a int DEFAULT 5)", "CREATE TABLE t (a int DEFAULT $1)", PROTO_KW_CREATE},
        {"ALTER TABLE t ADD COLUMN b text", "ALTER TABLE t ADD COLUMN b text", PROTO_KW_ALTER},
        {"DROP TABLE IF EXISTS t", "DROP TABLE IF EXISTS t", PROTO_KW_DROP},
        {"TRUNCATE t", "TRUNCATE t", PROTO_KW_TRUNCATE},
        {"GRANT SELECT ON t TO r", "GRANT SELECT ON t TO r", PROTO_KW_GRANT},
        {"REVOKE ALL ON t FROM r", "REVOKE ALL ON t FROM r", PROTO_KW_REVOKE},
        {"COMMENT ON TABLE t IS 'x'", "COMMENT ON TABLE t IS $1", PROTO_KW_COMMENT},
        {"VACUUM ANALYZE t", "VACUUM ANALYZE t", PROTO_KW_VACUUM},
        {"ANALYZE t", "ANALYZE t", PROTO_KW_ANALYZE},
        {"ANALYSE t", "ANALYSE t", PROTO_KW_ANALYZE},
        {"LISTEN ch", "LISTEN ch", PROTO_KW_LISTEN},
        {"UNLISTEN *", "UNLISTEN *", PROTO_KW_UNLISTEN},
        {"NOTIFY ch, 'payload'", "NOTIFY ch, $1", PROTO_KW_NOTIFY},
        {"CALL p(-1)", "CALL p($1)", PROTO_KW_CALL},
        {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
         PROTO_KW_LOCK},
        {"DISCARD ALL", "DISCARD ALL", PROTO_KW_DISCARD},
        {"DECLARE c CURSOR FOR SELECT 1", "DECLARE c CURSOR FOR SELECT $1", PROTO_KW_DECLARE},
        {"FETCH 10 FROM c", "FETCH $1 FROM c", PROTO_KW_FETCH},
        {"MOVE NEXT IN c", "MOVE NEXT IN c", PROTO_KW_MOVE},
        {"CLOSE c", "CLOSE c", PROTO_KW_CLOSE},
        {"REFRESH MATERIALIZED VIEW v", "REFRESH MATERIALIZED VIEW v", PROTO_KW_REFRESH},
        {"REINDEX TABLE t", "REINDEX TABLE t", PROTO_KW_REINDEX},
        {"CLUSTER t", "CLUSTER t", PROTO_KW_CLUSTER},
        {"CHECKPOINT", "CHECKPOINT", PROTO_KW_CHECKPOINT},
        {"IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
         "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", PROTO_KW_OTHER},
        {"selects 1", "selects $1", PROTO_KW_OTHER},
        {"\"SELECT\" 1", "\"SELECT\" $1", PROTO_KW_NONE},
        {"'x'", "$1", PROTO_KW_NONE},
        {"()", "()", PROTO_KW_NONE},
        {"/* c */ (((DELETE FROM t)))", "(((DELETE FROM t)))", PROTO_KW_DELETE},
        /* functions and bodies */
        {"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
         "CREATE FUNCTION f() RETURNS int AS $1 LANGUAGE sql", PROTO_KW_CREATE},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
         "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT $1; SELECT $2; END",
         PROTO_KW_CREATE},
        {"SELECT 1 FROM t FOR UPDATE SKIP LOCKED", "SELECT $1 FROM t FOR UPDATE SKIP LOCKED",
         PROTO_KW_SELECT},
        {"SELECT x FROM generate_series(-5, 5) x", "SELECT x FROM generate_series($1, $2) x",
         PROTO_KW_SELECT},
        {"SELECT substring('abc' FROM -1 FOR 2)", "SELECT substring($1 FROM $2 FOR $3)",
         PROTO_KW_SELECT},
        {"SELECT a FROM t WHERE a LIKE 'x%' ESCAPE '!'",
         "SELECT a FROM t WHERE a LIKE $1 ESCAPE $2", PROTO_KW_SELECT},
        {"SELECT ARRAY[1, -2.5]", "SELECT ARRAY[$1, $2]", PROTO_KW_SELECT},
        {"SELECT ROW(1, 'a')", "SELECT ROW($1, $2)", PROTO_KW_SELECT},
        {"SELECT 'é', \"é\", é FROM t", "SELECT $1, \"é\", é FROM t", PROTO_KW_SELECT},
        {"SELECT {x}", "SELECT {x}", PROTO_KW_SELECT},
        {"SELECT 1 \\gset", "SELECT $1 \\gset", PROTO_KW_SELECT},
};

Test(sqlscan, normalizes_every_lexical_form)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	cr_assert_geq(n, 200, "only %zu cases", n);
	for (size_t i = 0; i < n; i++) {
		struct proto_sql_scan r = scan(cases[i].sql);

		cr_assert_eq(r.nstmts, 1, "[%s]: %u statements", cases[i].sql, r.nstmts);
		cr_expect_str_eq(norm(&r, 0), cases[i].norm, "[%s] -> [%s], want [%s]",
		                 cases[i].sql, norm(&r, 0), cases[i].norm);
		cr_expect_eq(r.stmt[0].norm_len, strlen(cases[i].norm), "[%s]", cases[i].sql);
		cr_expect_eq(r.stmt[0].keyword, cases[i].kw, "[%s]: keyword %s, want %s",
		             cases[i].sql, proto_sql_kw_name(r.stmt[0].keyword),
		             proto_sql_kw_name(cases[i].kw));
		cr_expect_neq(r.stmt[0].fp, 0);
		cr_expect_not(r.stmt[0].cut, "[%s]", cases[i].sql);
	}
}

Test(sqlscan, semicolons_inside_literals_and_comments_do_not_split)
{
	static const char *const one[] = {
	        "SELECT ';'",     "SELECT $$;$$", "SELECT $x$;$x$",
	        "SELECT E'\\';'", "SELECT \";\"", "SELECT 1 /* ; */",
	        "SELECT 1 -- ;",  "SELECT U&';'", "SELECT 'a'\n';'",
	};

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		struct proto_sql_scan r = scan(one[i]);

		cr_expect_eq(r.nstmts, 1, "[%s]: %u statements", one[i], r.nstmts);
		cr_expect_eq(r.stmt[0].src_len, strlen(one[i]), "[%s]", one[i]);
	}
}

Test(sqlscan, fingerprint_ignores_case_spacing_comments_and_values)
{
	static const char *const same[][4] = {
	        {"SELECT 1", "select  2", "SeLeCt\n\t'three'", "SELECT /* c */ 4 -- d"},
	        {"SELECT * FROM t WHERE a = 1", "select * from T where A=2",
	         "SELECT *FROM t WHERE a= -3", "SELECT * FROM t WHERE a = 'x'"},
	        {"SELECT * FROM t WHERE a IN (1)", "SELECT * FROM t WHERE a IN (1, 2, 3)",
	         "select * from t where a in ('x','y')", "SELECT * FROM t WHERE a IN (-1,/*c*/2)"},
	        {"SELECT * FROM t WHERE a NOT IN (1, 2)", "SELECT * FROM t WHERE a NOT IN (5)",
	         "SELECT * FROM t WHERE a NOT IN ( 7 , 8 , 9 )",
	         "SELECT * FROM t WHERE a NOT IN (1,2)"},
	        {"SELECT x - 1 FROM t", "SELECT x-1 FROM t", "SELECT x -1 FROM t",
	         "SELECT x - 2 FROM t"},
	        {"SELECT a=-b FROM t", "SELECT a = - b FROM t", "SELECT a =-b FROM t",
	         "SELECT a= -b FROM t"},
	        {"SELECT interval '1 day'", "SELECT INTERVAL '2 days'", "select interval $$3$$",
	         "SELECT interval E'4'"},
	        {"SELECT 'a'\n'b'", "SELECT 'c'", "SELECT $$d$$", "SELECT E'\\''"},
	        {"UPDATE pgbench_accounts SET abalance = abalance + 4321 WHERE aid = 12345;",
	         "update PGBENCH_ACCOUNTS set ABALANCE=ABALANCE+-1 where AID=1",
	         "UPDATE pgbench_accounts\n  SET abalance = abalance + 0\n  WHERE aid = 99",
	         "/* app */ UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 6 -- "
	         "x"},
	        {"SELECT $1", "select $1", "SELECT  $1 ", "SELECT /**/$1"},
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		for (size_t j = 1; j < 4; j++)
			cr_expect_eq(fp(same[i][0]), fp(same[i][j]), "[%s] vs [%s]", same[i][0],
			             same[i][j]);
}

Test(sqlscan, fingerprint_tells_shapes_apart)
{
	static const char *const differ[][2] = {
	        {"SELECT 1", "SELECT 1, 2"},
	        {"SELECT a FROM t", "SELECT b FROM t"},
	        {"SELECT \"A\" FROM t", "SELECT \"a\" FROM t"}, /* quoted identifiers keep case */
	        {"SELECT \"A\" FROM t", "SELECT A FROM t"},
	        {"SELECT a b FROM t", "SELECT ab FROM t"},
	        {"SELECT a FROM t WHERE b = $1",
	         "SELECT a FROM t WHERE b = 1"}, /* Param vs Const */
	        {"SELECT $1, $2", "SELECT $2, $1"},
	        {"SELECT true", "SELECT false"},
	        {"SELECT NULL", "SELECT 1"},
	        {"SELECT 1 ORDER BY 1", "SELECT 1 ORDER BY 2"},
	        {"SELECT a IN (1, 2)", "SELECT a IN (1, b)"},
	        {"SELECT a IN (1)", "SELECT a = 1"},
	        {"SELECT a IN (1, 2)", "SELECT a NOT IN (1, 2)"},
	        {"SELECT a <= b", "SELECT a < = b"},
	        {"SELECT a ~~ b", "SELECT a ~ ~b"},
	        {"SELECT 1.5", "SELECT 1 .5"},
	        {"SELECT a-1", "SELECT a - -b"},
	        {"SELECT a::int", "SELECT a::text"},
	        {"SELECT a FROM t", "SELECT a FROM t WHERE b"},
	        {"SELECT ?", "SELECT 1"},
	        {"SELECT f$$x$$", "SELECT f $$x$$"},
	        {"SELECT é FROM t", "SELECT É FROM t"}, /* only ASCII folds */
	};
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		struct proto_sql_scan a = scan(differ[i][0]);
		struct proto_sql_scan b = scan(differ[i][1]);

		cr_expect_neq(a.stmt[0].fp, b.stmt[0].fp, "[%s] vs [%s]", differ[i][0],
		              differ[i][1]);
	}
}

Test(sqlscan, a_long_statement_streams_into_the_same_fingerprint)
{
	/* longer than the scanner's canonical chunk: hashed in pieces, with
	 * the same result as if hashed at once, and case/spacing still fold */
	static char a[65536], b[65536];
	size_t na = 0, nb = 0;

	na += (size_t)sprintf(a + na, "SELECT ");
	nb += (size_t)sprintf(b + nb, "select   ");
	for (int i = 0; i < 1500; i++) {
		na += (size_t)sprintf(a + na, "%sCol_%d + %d", i ? ", " : "", i, i);
		nb += (size_t)sprintf(b + nb, "%s\n  col_%d+'%d'", i ? " ," : "", i, i * 7);
	}
	sprintf(a + na, " FROM \"Tab\"");
	nb += (size_t)sprintf(b + nb, " from \"Tab\"");
	cr_assert_eq(fp(a), fp(b));
	b[nb - 3] = 'A'; /* "Tab" -> "TAb": quoted, so a different statement */
	cr_assert_neq(fp(a), fp(b));
}

Test(sqlscan, hints)
{
	static const struct {
		const char *sql;
		uint8_t hints;
		uint32_t ttl;
	} h[] = {
	        {"SELECT 1", 0, 0},
	        {"/* sluice:cache */ SELECT 1", PROTO_SQL_HINT_CACHE, 0},
	        {"/* sluice:cache ttl=30 */ SELECT 1", PROTO_SQL_HINT_CACHE, 30},
	        {"SELECT 1 /* sluice:cache  ttl=5 */", PROTO_SQL_HINT_CACHE, 5},
	        {"SELECT 1 -- sluice:cache ttl=60", PROTO_SQL_HINT_CACHE, 60},
	        {"-- sluice:nocache\nSELECT 1", PROTO_SQL_HINT_NOCACHE, 0},
	        {"/* sluice:cache ttl=30 */ SELECT /* sluice:nocache */ 1", PROTO_SQL_HINT_NOCACHE,
	         0},
	        {"/* sluice:nocache */ SELECT /* sluice:cache ttl=30 */ 1", PROTO_SQL_HINT_NOCACHE,
	         0},
	        {"/* app=x,sluice:cache ttl=10,route=y */ SELECT 1", PROTO_SQL_HINT_CACHE, 10},
	        {"/* outer /* sluice:cache */ outer */ SELECT 1", PROTO_SQL_HINT_CACHE, 0},
	        {"/* SLUICE:CACHE TTL=7 */ SELECT 1", PROTO_SQL_HINT_CACHE, 7},
	        {"/* sluice:cached */ SELECT 1", 0, 0},
	        {"/* sluice:cachettl=3 */ SELECT 1", 0, 0},
	        {"/* sluice:cache ttl= */ SELECT 1", PROTO_SQL_HINT_CACHE, 0},
	        {"/* sluice:cache ttl=99999999999 */ SELECT 1", PROTO_SQL_HINT_CACHE, UINT32_MAX},
	        {"/* sluice: cache */ SELECT 1", 0, 0},
	        {"SELECT '/* sluice:cache */'", 0, 0},
	        {"SELECT $$ -- sluice:cache $$", 0, 0},
	        {"SELECT \"sluice:cache\"", 0, 0},
	        {"/* sluice:cache ttl=1 */ /* sluice:cache ttl=2 */ SELECT 1", PROTO_SQL_HINT_CACHE,
	         2},
	};
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
		struct proto_sql_scan r = scan(h[i].sql);

		cr_assert_eq(r.nstmts, 1, "[%s]", h[i].sql);
		cr_expect_eq(r.stmt[0].hints, h[i].hints, "[%s]: hints %u", h[i].sql,
		             r.stmt[0].hints);
		cr_expect_eq(r.stmt[0].cache_ttl, h[i].ttl, "[%s]: ttl %u", h[i].sql,
		             r.stmt[0].cache_ttl);
	}
	/* a hint belongs to its own statement; one in a comment-only tail goes
	 * to the statement before it */
	struct proto_sql_scan r = scan("/* sluice:cache */ SELECT 1; SELECT 2 /* sluice:nocache */;"
	                               "SELECT 3; /* sluice:cache ttl=9 */");
	cr_assert_eq(r.nstmts, 3);
	cr_expect_eq(r.stmt[0].hints, PROTO_SQL_HINT_CACHE);
	cr_expect_eq(r.stmt[1].hints, PROTO_SQL_HINT_NOCACHE);
	cr_expect_eq(r.stmt[2].hints, PROTO_SQL_HINT_CACHE);
	cr_expect_eq(r.stmt[2].cache_ttl, 9);
	/* hints do not change the fingerprint */
	cr_expect_eq(fp("/* sluice:cache ttl=30 */ SELECT 1"), fp("SELECT 1"));
}

Test(sqlscan, splits_at_top_level_semicolons)
{
	const char *sql = "  SELECT 1 ;\n/* c */ UPDATE t SET a = 'x;y' ; ;  ; -- only\n"
	                  "DELETE FROM t WHERE b IN (1,2)   ";
	struct proto_sql_scan r = scan(sql);

	cr_assert_eq(r.nstmts, 3);
	cr_expect_str_eq(norm(&r, 0), "SELECT $1");
	cr_expect_str_eq(norm(&r, 1), "UPDATE t SET a = $1");
	cr_expect_str_eq(norm(&r, 2), "DELETE FROM t WHERE b IN ($1)");
	/* the original text, trimmed, without ';', with its leading comment */
	cr_expect_eq(strncmp(sql + r.stmt[0].src_off, "SELECT 1", r.stmt[0].src_len), 0);
	cr_expect_eq(r.stmt[0].src_len, 8);
	cr_expect_eq(r.stmt[1].src_len, strlen("/* c */ UPDATE t SET a = 'x;y'"));
	cr_expect_eq(strncmp(sql + r.stmt[1].src_off, "/* c */ UPDATE t SET a = 'x;y'",
	                     r.stmt[1].src_len),
	             0);
	cr_expect_eq(r.stmt[2].src_len, strlen("-- only\nDELETE FROM t WHERE b IN (1,2)"));
	cr_expect_eq(strncmp(sql + r.stmt[2].src_off, "-- only\nDELETE", 14), 0);
	cr_expect_eq(r.stmt[0].keyword, PROTO_KW_SELECT);
	cr_expect_eq(r.stmt[1].keyword, PROTO_KW_UPDATE);
	cr_expect_eq(r.stmt[2].keyword, PROTO_KW_DELETE);
	/* numbering restarts with each statement, as pg_stat_statements does */
	r = scan("SELECT 1; SELECT 2");
	cr_assert_eq(r.nstmts, 2);
	cr_expect_str_eq(norm(&r, 1), "SELECT $1");
	cr_expect_eq(r.stmt[0].fp, r.stmt[1].fp);
	/* texts without a statement */
	static const char *const none[] = {"", "   ", ";", " ; ;; ", "-- c", "/* c */ ; -- d\n"};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		cr_expect_eq(scan(none[i]).nstmts, 0, "[%s]", none[i]);
	/* a NUL ends the text */
	proto_sql_scan("SELECT 1\0; SELECT 2", 19, true, buf, sizeof(buf), &r);
	cr_assert_eq(r.nstmts, 1);
	cr_expect_str_eq(norm(&r, 0), "SELECT $1");
}

Test(sqlscan, begin_atomic_bodies_stay_whole)
{
	const char *sql = "CREATE OR REPLACE PROCEDURE p(a int) LANGUAGE sql BEGIN ATOMIC\n"
	                  "  INSERT INTO t VALUES (a);\n"
	                  "  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n"
	                  "END; SELECT 3; CREATE FUNCTION f() RETURNS int RETURN 1; SELECT 4";
	struct proto_sql_scan r = scan(sql);

	cr_assert_eq(r.nstmts, 4);
	cr_expect_str_eq(norm(&r, 0),
	                 "CREATE OR REPLACE PROCEDURE p(a int) LANGUAGE sql BEGIN ATOMIC INSERT "
	                 "INTO t VALUES (a); SELECT CASE WHEN a > $1 THEN $2 ELSE $3 END; END");
	cr_expect_eq(r.stmt[0].keyword, PROTO_KW_CREATE);
	cr_expect_str_eq(norm(&r, 1), "SELECT $1");
	cr_expect_str_eq(norm(&r, 2), "CREATE FUNCTION f() RETURNS int RETURN $1");
	cr_expect_str_eq(norm(&r, 3), "SELECT $1");
	/* BEGIN of a transaction block is no body */
	r = scan("BEGIN; SELECT 1; END;");
	cr_expect_eq(r.nstmts, 3);
	r = scan("CREATE TABLE begin_t (a int); SELECT 1");
	cr_expect_eq(r.nstmts, 2);
}

Test(sqlscan, statements_past_the_limit_fold_into_the_last)
{
	static char sql[4096];
	size_t n = 0;
	struct proto_sql_scan r;

	for (int i = 0; i < PROTO_SQL_MAX_STMTS + 5; i++)
		n += (size_t)sprintf(sql + n, "SELECT %d; ", i);
	r = scan(sql);
	cr_assert_eq(r.nstmts, PROTO_SQL_MAX_STMTS);
	cr_expect_str_eq(norm(&r, 0), "SELECT $1");
	cr_expect_str_eq(norm(&r, PROTO_SQL_MAX_STMTS - 2), "SELECT $1");
	cr_expect_str_eq(norm(&r, PROTO_SQL_MAX_STMTS - 1),
	                 "SELECT $1; SELECT $2; SELECT $3; SELECT $4; SELECT $5; SELECT $6");
	cr_expect_eq(r.stmt[PROTO_SQL_MAX_STMTS - 1].nparams, 6);
	/* the last one's source runs to the end, without the final ';' */
	struct proto_sql_stmt *last = &r.stmt[PROTO_SQL_MAX_STMTS - 1];
	cr_expect_eq(last->src_off + last->src_len, n - 2);
	cr_expect_not(last->cut);
	/* exactly the limit: nothing folds */
	n = 0;
	for (int i = 0; i < PROTO_SQL_MAX_STMTS; i++)
		n += (size_t)sprintf(sql + n, "SELECT %d;", i);
	r = scan(sql);
	cr_assert_eq(r.nstmts, PROTO_SQL_MAX_STMTS);
	cr_expect_str_eq(norm(&r, PROTO_SQL_MAX_STMTS - 1), "SELECT $1");
	cr_expect_eq(r.stmt[0].fp, r.stmt[PROTO_SQL_MAX_STMTS - 1].fp);
}

Test(sqlscan, incomplete_text_cuts_the_last_statement)
{
	struct proto_sql_scan r;
	const char *sql = "SELECT 1; SELECT 'abc";

	proto_sql_scan(sql, strlen(sql), false, buf, sizeof(buf), &r);
	cr_assert_eq(r.nstmts, 2);
	cr_expect_not(r.stmt[0].cut);
	cr_expect(r.stmt[1].cut);
	proto_sql_scan(sql, strlen(sql), true, buf, sizeof(buf), &r);
	cr_expect_not(r.stmt[1].cut); /* complete: an unterminated string is its token */
	sql = "SELECT 1; ";
	proto_sql_scan(sql, strlen(sql), false, buf, sizeof(buf), &r);
	cr_assert_eq(r.nstmts, 1);
	cr_expect_not(r.stmt[0].cut); /* it ended at its ';' */
	sql = "SELECT 1 ";
	proto_sql_scan(sql, strlen(sql), false, buf, sizeof(buf), &r);
	cr_expect(r.stmt[0].cut);
}

Test(sqlscan, small_buffers_cut_the_text_not_the_fingerprint)
{
	const char *sql = "SELECT 'é', aé, 12, 345 FROM t WHERE x IN (1,2,3); SELECT 2; SELECT 3";
	struct proto_sql_scan full, r;
	static char small[256];

	proto_sql_scan(sql, strlen(sql), true, buf, sizeof(buf), &full);
	cr_assert_eq(full.nstmts, 3);
	cr_assert_str_eq(buf + full.stmt[0].norm_off,
	                 "SELECT $1, aé, $2, $3 FROM t WHERE x IN ($4)");
	for (size_t cap = 0; cap < 80; cap++) {
		memset(small, 'Z', sizeof(small));
		proto_sql_scan(sql, strlen(sql), true, small, cap, &r);
		cr_assert_eq(r.nstmts, 3);
		for (unsigned i = 0; i < 3; i++) {
			const struct proto_sql_stmt *a = &r.stmt[i], *b = &full.stmt[i];
			const char *t = small + a->norm_off;

			cr_expect_eq(a->fp, b->fp, "cap %zu stmt %u", cap, i);
			cr_expect_eq(a->src_off, b->src_off);
			cr_expect_eq(a->src_len, b->src_len);
			cr_expect_eq(a->nparams, b->nparams);
			cr_expect_eq(a->keyword, b->keyword);
			if (cap == 0) {
				cr_expect_eq(a->norm_len, 0);
				cr_expect(a->cut);
				continue;
			}
			cr_assert_lt(a->norm_off + a->norm_len, cap, "cap %zu stmt %u", cap, i);
			cr_expect_eq(t[a->norm_len], '\0');
			/* a prefix of the whole text, cut before a placeholder or a
			 * UTF-8 sequence it could not hold whole */
			cr_expect_eq(strncmp(t, buf + b->norm_off, a->norm_len), 0,
			             "cap %zu stmt %u: [%s]", cap, i, t);
			cr_expect_eq(a->cut, a->norm_len < b->norm_len, "cap %zu stmt %u", cap, i);
			if (a->norm_len && a->norm_len < b->norm_len) {
				char last = t[a->norm_len - 1],
				     next = buf[b->norm_off + a->norm_len];

				cr_expect(last != '$', "cap %zu: half a placeholder [%s]", cap, t);
				cr_expect(!(last >= '0' && last <= '9' && next >= '0' &&
				            next <= '9' && strchr(t, '$')),
				          "cap %zu: a placeholder's number cut [%s]", cap, t);
				cr_expect(((unsigned char)next & 0xc0) != 0x80,
				          "cap %zu: a UTF-8 sequence cut [%s]", cap, t);
			}
		}
	}
}

Test(sqlscan, nparams)
{
	static const struct {
		const char *sql;
		unsigned np;
	} c[] = {
	        {"SELECT a FROM t", 0},
	        {"SELECT 1", 1},
	        {"SELECT $1", 1},
	        {"SELECT $3", 3},
	        {"SELECT $2, 'x', 7", 4},
	        {"SELECT * FROM t WHERE a IN (1, 2, 3, 4)", 1},
	        {"SELECT * FROM t WHERE a IN (1, 2) AND b IN (3, 4) AND c = 5", 3},
	        {"SELECT $70000", 65535},
	        {"SELECT 'a', $$b$$, E'c', B'1', -1.5", 5},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct proto_sql_scan r = scan(c[i].sql);

		cr_expect_eq(r.stmt[0].nparams, c[i].np, "[%s]: %u", c[i].sql, r.stmt[0].nparams);
	}
}

Test(sqlscan, many_literals_are_numbered_past_the_remembered_ones)
{
	/* more literals than the scanner keeps places for, with a $n after
	 * them that moves their numbers */
	static char sql[8192], want[16384];
	size_t n = 0, m = 0;

	n += (size_t)sprintf(sql + n, "INSERT INTO t VALUES ");
	m += (size_t)sprintf(want + m, "INSERT INTO t VALUES ");
	for (int i = 0; i < 300; i++) {
		n += (size_t)sprintf(sql + n, "%s(%d, 'v%d')", i ? ", " : "", i, i);
		m += (size_t)sprintf(want + m, "%s($%d, $%d)", i ? ", " : "", 2 * i + 3, 2 * i + 4);
	}
	n += (size_t)sprintf(sql + n, " RETURNING $2");
	sprintf(want + m, " RETURNING $2");
	struct proto_sql_scan r = scan(sql);
	cr_assert_eq(r.nstmts, 1);
	cr_expect_str_eq(norm(&r, 0), want);
	cr_expect_eq(r.stmt[0].nparams, 602);
	cr_expect_eq(r.stmt[0].src_len, n);
}

Test(sqlscan, keyword_names)
{
	cr_expect_str_eq(proto_sql_kw_name(PROTO_KW_NONE), "");
	cr_expect_str_eq(proto_sql_kw_name(PROTO_KW_SELECT), "select");
	cr_expect_str_eq(proto_sql_kw_name(PROTO_KW_CHECKPOINT), "checkpoint");
	cr_expect_str_eq(proto_sql_kw_name(PROTO_KW_OTHER), "other");
	cr_expect_str_eq(proto_sql_kw_name((enum proto_sql_kw)200), "");
	for (int k = PROTO_KW_SELECT; k < PROTO_KW_OTHER; k++) {
		/* each name, as a statement's first word, names itself */
		const char *name = proto_sql_kw_name((enum proto_sql_kw)k);
		char sql[64];

		snprintf(sql, sizeof(sql), "%s x", name);
		cr_expect_eq(scan(sql).stmt[0].keyword, k, "%s", name);
	}
}

/*
 * Against libpg_query's pg_query_normalize on statements where the two
 * should agree: no comments (it keeps them, this scanner drops them), no IN
 * list of literals (it numbers each, this scanner collapses the list), no
 * TRUE/FALSE/NULL (it replaces them; pg_stat_statements and this scanner
 * keep them), a single statement each (it numbers across statements,
 * pg_stat_statements and this scanner per statement), and no utility
 * statement whose constants it leaves (CREATE TABLE, CALL, EXECUTE,
 * PREPARE). Compared after collapsing whitespace.
 */
static void collapse(char *s)
{
	char *d = s;
	bool sp = false;

	for (const char *p = s; *p; p++) {
		if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
			sp = d != s;
			continue;
		}
		if (sp)
			*d++ = ' ';
		sp = false;
		*d++ = *p;
	}
	*d = '\0';
}

Test(sqlscan, agrees_with_pg_query_normalize)
{
	static const char *const corpus[] = {
	        "SELECT 1",
	        "SELECT 'a'",
	        "SELECT * FROM t WHERE id = 42",
	        "SELECT a, b FROM t WHERE a = 'x' AND b > 3.5",
	        "SELECT -1",
	        "SELECT - 1",
	        "SELECT a -1 FROM t",
	        "SELECT 1+-1",
	        "SELECT a=-1 FROM t",
	        "SELECT a<-1, a*-1, a/-1, a%-1, a^-1, a||-1 FROM t",
	        "SELECT 'foo'\n'bar'",
	        "SELECT E'a\\'b', 'c''d'",
	        "SELECT B'101', X'1F', N'abc'",
	        "SELECT U&'d!0061t' UESCAPE '!'",
	        "SELECT U&\"d!0061t\" UESCAPE '!' FROM t",
	        "SELECT $$abc$$, $t$x$t$",
	        "SELECT $1, 5, $2",
	        "SELECT 1 FROM t WHERE a = $1 AND b = 'x'",
	        "SELECT $2 + 1, $1",
	        "SELECT interval '1 day', date '2020-01-01'",
	        "SELECT INTERVAL '1' DAY, TIMESTAMP '2020-01-01 00:00', 'a' COLLATE \"C\"",
	        "SELECT 'a'::text, CAST('1' AS int)",
	        "SELECT 1.5, .5e3, 1e10, 1.5E+3, 1.",
	        "SELECT 2147483648, 9999999999999999999999",
	        "SELECT * FROM t LIMIT -1",
	        "SELECT * FROM t OFFSET -5",
	        "SELECT * FROM t FETCH FIRST 5 ROWS ONLY",
	        "SELECT x BETWEEN -1 AND 1 FROM t",
	        "SELECT CASE WHEN a THEN -1 ELSE -2 END -1 FROM t",
	        "SELECT NOT -1",
	        "SELECT current_date -1",
	        "SELECT a = ANY('{1,2}') FROM t",
	        "SELECT ROW(1,-2), ARRAY[1,-2]",
	        "SELECT 'x' || 'y'",
	        "SELECT 1::int -1",
	        "SELECT (1) -1",
	        "SELECT a[-1], a[1:-2] FROM t",
	        "SELECT a->>'x', a->-1 FROM t",
	        "SELECT f(a => -1, b := -2)",
	        "SELECT a FROM t WHERE a LIKE 'x%' ESCAPE '!'",
	        "SELECT a FROM t WHERE a IS DISTINCT FROM -1",
	        "SELECT substring('abc' FROM -1 FOR 2)",
	        "SELECT a FROM t WHERE b = -1.5e3",
	        "SELECT 1 WHERE -1 < 0",
	        "SELECT t.a -1 FROM t",
	        "SELECT \"a\" -1 FROM t",
	        "SELECT $1 -1",
	        "SELECT 'a' -1",
	        "SELECT a[1] -1 FROM t",
	        "SELECT * FROM t WHERE a = $1 LIMIT 10",
	        "SELECT a FROM t WHERE b > ALL (SELECT -1)",
	        "SELECT +1",
	        "SELECT a FROM t ORDER BY 1, 2",
	        "SELECT a FROM t GROUP BY a, 1",
	        "SELECT a FROM t ORDER BY 1 + 1",
	        "SELECT a FROM t GROUP BY a UNION SELECT 1, 2",
	        "SELECT a FROM t ORDER BY a DESC NULLS LAST, 2",
	        "SELECT count(*) FROM t GROUP BY 1 HAVING count(*) > 1",
	        "SELECT count(*) FILTER (WHERE a > -1) FROM t",
	        "SELECT 1 FROM t WHERE (a, b) = (1, -2)",
	        "SELECT -1 FROM t UNION ALL SELECT -2",
	        "SELECT a FROM t WHERE a = 1 AND -1 = b OR -2 = c",
	        "SELECT -1, - 2 FROM t OFFSET 1",
	        "SELECT x FROM generate_series(-5, 5) x",
	        "SELECT 1 AS x, 2 y",
	        "SELECT ARRAY[-1.5]",
	        "SELECT 1 AS \"Foo\", \"a\"\"b\" FROM \"T\"",
	        "SELECT * FROM t WHERE a = 1 FOR UPDATE",
	        "INSERT INTO t (a, b) VALUES (1, 'x')",
	        "INSERT INTO t VALUES (1, 'a'), (-2, 'b') RETURNING id",
	        "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 'y' RETURNING -1",
	        "UPDATE t SET a = DEFAULT, b = -3 WHERE c = 'q'",
	        "UPDATE pgbench_accounts SET abalance = abalance + 4321 WHERE aid = 12345",
	        "UPDATE pgbench_tellers SET tbalance = tbalance + -17 WHERE tid = 3",
	        "INSERT INTO pgbench_history VALUES (1, 2, 3, -4, CURRENT_TIMESTAMP)",
	        "SELECT abalance FROM pgbench_accounts WHERE aid = 77",
	        "DELETE FROM t WHERE id = 7 RETURNING *",
	        "WITH d AS (DELETE FROM t WHERE a < 5 RETURNING *) INSERT INTO u SELECT * FROM d",
	        "SELECT * FROM t WHERE ts > now() - interval '5 minutes'",
	        "SELECT lower('ABC'), upper(name) FROM t WHERE id = 3",
	        "SELECT a FROM t WHERE b ~ '^x' AND c !~* 'y'",
	        "SELECT jsonb_build_object('k', 1) -> 'k'",
	        "SELECT * FROM t WHERE a = ANY(ARRAY[1, 2])",
	        "VALUES (1, 'a'), (-2, 'b')",
	        "EXPLAIN SELECT 1",
	        "SET search_path = 'a'",
	        "SET x TO 5",
	        "DO $$ BEGIN END $$",
	        "SELECT $tag$ it's ; $tag$ AS body",
	        "SELECT 'a\nb', E'\\n'",
	        "SELECT 1 \n\n FROM \t t",
	        "select * from T where A=2",
	};

	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		PgQueryNormalizeResult pg = pg_query_normalize(corpus[i]);
		struct proto_sql_scan r = scan(corpus[i]);
		char ours[4096];

		cr_assert_null(pg.error, "[%s]: %s", corpus[i], pg.error ? pg.error->message : "");
		cr_assert_eq(r.nstmts, 1, "[%s]", corpus[i]);
		snprintf(ours, sizeof(ours), "%s", norm(&r, 0));
		collapse(ours);
		collapse(pg.normalized_query);
		cr_expect_str_eq(ours, pg.normalized_query, "[%s]:\n ours [%s]\n   pg [%s]",
		                 corpus[i], ours, pg.normalized_query);
		pg_query_free_normalize_result(pg);
	}
}

/*
 * The cost of the scanner on the hot path: a pgbench UPDATE, scanned again
 * and again, must come out the same each time and well within budget. The
 * bound here is loose (sanitizer builds, loaded machines); the figure is
 * printed for the record.
 */
Test(sqlscan, pgbench_statement_cost)
{
	static const char sql[] =
	        "UPDATE pgbench_accounts SET abalance = abalance + 4321 WHERE aid = 12345;";
	const int rounds = 200000;
	struct proto_sql_scan r;
	struct timespec t0, t1;
	uint64_t want;
	int same = 0;

	proto_sql_scan(sql, sizeof(sql) - 1, true, buf, sizeof(buf), &r);
	want = r.stmt[0].fp;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < rounds; i++) {
		proto_sql_scan(sql, sizeof(sql) - 1, true, buf, 1024, &r);
		same += r.nstmts == 1 && r.stmt[0].fp == want;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
	            rounds;
	cr_log_info("sqlscan: %.0f ns for a %zu-byte pgbench UPDATE", ns, sizeof(sql) - 1);
	fprintf(stderr, "sqlscan: %.0f ns for a %zu-byte pgbench UPDATE\n", ns, sizeof(sql) - 1);
	cr_expect_eq(same, rounds);
	cr_expect_str_eq(buf + r.stmt[0].norm_off,
	                 "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2");
#if defined(__SANITIZE_ADDRESS__)
	cr_expect_lt(ns, 50000.0);
#else
	cr_expect_lt(ns, 5000.0);
#endif
}
