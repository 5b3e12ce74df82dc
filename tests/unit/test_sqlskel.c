/*
 * The scanner's fast path (protocol/sqlskel.c): texts that differ only in
 * literal values share a skeleton key and scan alike; texts that scan
 * apart never share one; the forms it does not follow get no key; a text
 * without literals is keyed by its raw bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "protocol/proto.h"
#include "tests/fuzz/skel_mutate.h"

static char buf[65536];

static uint64_t key(const char *sql)
{
	return proto_sql_skeleton(sql, strlen(sql));
}

static struct proto_sql_scan scan(const char *sql)
{
	struct proto_sql_scan r;

	proto_sql_scan(sql, strlen(sql), true, buf, sizeof(buf), &r);
	return r;
}

/* Statements applications send with literals, as the fast path sees them. */
static const char *const followed[] = {
        "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
        "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 5;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + 17 WHERE tid = 3;",
        "INSERT INTO pgbench_history (tid, aid, delta, mtime) VALUES (1, 3, -4, now());",
        "select * from t where name = 'bob' and age > 30",
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
        "SELECT x FROM t WHERE a = 1.5e3 AND b = .25 AND c = 7.",
        "SELECT 'it''s' || 'x'",
        "SELECT \"Col x\", t1.c2 FROM \"T\" t1 WHERE t1.c3 = 42",
        "/* sluice:cache ttl=30 */ SELECT v FROM kv WHERE k = 'a'",
        "SELECT v FROM kv WHERE k = 9 -- sluice:nocache\n",
        "SELECT a - 1, b + - 2, c * -3 FROM t LIMIT 10 OFFSET 20",
        "SELECT 'a'\n'b' FROM t",
        "SELECT arr[1:2], x::int, y::text FROM t WHERE z <> 0",
        "SELECT now() - interval '1 day'",
};

Test(sqlskel, literal_values_do_not_change_the_key_nor_the_scan)
{
	char mut[4096];

	for (size_t i = 0; i < sizeof(followed) / sizeof(followed[0]); i++) {
		const char *sql = followed[i];
		uint64_t k = key(sql);
		struct proto_sql_scan a = scan(sql);

		cr_assert_neq(k, 0, "no key for %s", sql);
		for (unsigned v = 0; v < 6; v++) {
			size_t n = skel_mutate(sql, strlen(sql), v, mut);
			struct proto_sql_scan b;

			cr_assert_eq(proto_sql_skeleton(mut, n), k, "%s and %s", sql, mut);
			proto_sql_scan(mut, n, true, buf, sizeof(buf), &b);
			cr_assert_eq(b.nstmts, a.nstmts);
			for (unsigned j = 0; j < a.nstmts; j++) {
				cr_assert_eq(b.stmt[j].fp, a.stmt[j].fp, "%s and %s", sql, mut);
				cr_assert_eq(b.stmt[j].keyword, a.stmt[j].keyword);
				cr_assert_eq(b.stmt[j].hints, a.stmt[j].hints);
				cr_assert_eq(b.stmt[j].cache_ttl, a.stmt[j].cache_ttl);
				cr_assert_eq(b.stmt[j].nparams, a.stmt[j].nparams);
			}
		}
	}
}

/* Pairs with one shape of literals whose scans differ: their keys must. */
Test(sqlskel, texts_that_scan_apart_have_other_keys)
{
	static const char *const pairs[][2] = {
	        /* the sign folds into a number, not into a string */
	        {"SELECT a = - 1", "SELECT a = - 'x'"},
	        {"SELECT 1", "SELECT 'x'"},
	        {"SELECT x FROM t WHERE a = 1", "SELECT x FROM t WHERE a = 1 AND b = 2"},
	        {"SELECT x FROM t", "SELECT y FROM t"},
	        {"SELECT x FROM t WHERE a IN (1, 2)", "SELECT x FROM t WHERE a IN (1, b)"},
	        {"select 1", "SELECT 1"}, /* one shape, but other bytes: other keys */
	        {"SELECT /* sluice:cache */ 1", "SELECT /* sluice:nocache */ 1"},
	};

	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		uint64_t a = key(pairs[i][0]), b = key(pairs[i][1]);

		cr_assert_neq(a, 0, "%s", pairs[i][0]);
		cr_assert_neq(b, 0, "%s", pairs[i][1]);
		cr_assert_neq(a, b, "%s and %s", pairs[i][0], pairs[i][1]);
	}
	/* and the first pair does scan apart */
	cr_assert_neq(scan(pairs[0][0]).stmt[0].fp, scan(pairs[0][1]).stmt[0].fp);
}

/* Forms whose scan a literal's value can change, or that this pass does
 * not follow: no key, so they are scanned in full. */
Test(sqlskel, forms_it_does_not_follow_have_no_key)
{
	static const char *const refused[] = {
	        "SELECT a FROM t ORDER BY 1",   /* a column position */
	        "SELECT a FROM t GROUP BY 2",   /* likewise */
	        "SELECT $1",                    /* parameters */
	        "SELECT $$x$$",                 /* dollar quotes */
	        "SELECT E'a\\'b'",              /* escapes */
	        "SELECT B'101', X'1F'",         /* bit strings */
	        "SELECT U&'d\\0061t\\+000061'", /* Unicode escapes */
	        "SELECT N'x'",                  /* national strings */
	        "SELECT 1; SELECT 2",           /* two statements */
	};

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_assert_eq(key(refused[i]), 0, "a key for %s", refused[i]);
	cr_assert_eq(proto_sql_skeleton("x", PROTO_SQL_SKEL_MAX + 1), 0);
	/* a NUL ends the text for the full scanner: "a" then "n" must not
	 * read as the mark of a number ("a5") */
	cr_assert_eq(proto_sql_skeleton("SELECT a\0n", 10), 0);
}

Test(sqlskel, a_text_without_literals_is_keyed_by_its_bytes)
{
	static const char sql[] = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
	static const char plain[] = "SELECT a FROM t WHERE b = c;  ";

	/* a $n has no key; a text with no literal is its own skeleton */
	cr_assert_eq(key(sql), 0);
	cr_assert_eq(key(plain), XXH3_64bits(plain, strlen(plain)) | 1);
	cr_assert_neq(key("SELECT a FROM t WHERE b = 1"),
	              XXH3_64bits("SELECT a FROM t WHERE b = 1", 27) | 1);
}

/* The block scan reads 16 bytes at a time and the text's last 16 as one
 * block: a byte that matters is found wherever it falls in a block. */
Test(sqlskel, every_alignment_of_a_stop_is_found)
{
	char sql[256], mut[1024];

	for (unsigned pad = 0; pad < 40; pad++) {
		for (unsigned tail = 0; tail < 20; tail++) {
			int n = snprintf(sql, sizeof(sql), "SELECT a%*s= 12%*s", (int)pad, "",
			                 (int)tail, "");
			uint64_t k = proto_sql_skeleton(sql, (size_t)n);
			size_t mn = skel_mutate(sql, (size_t)n, 0, mut);

			cr_assert_neq(k, 0, "no key for '%s'", sql);
			cr_assert_eq(proto_sql_skeleton(mut, mn), k, "'%s' and '%s'", sql, mut);
			/* the literal is seen: another count of its spaces is another key */
			cr_assert_neq(k, XXH3_64bits(sql, (size_t)n) | 1, "'%s'", sql);
			n = snprintf(sql, sizeof(sql), "SELECT a%*sFROM t ORDER BY 1%*s", (int)pad,
			             "", (int)tail, "");
			cr_assert_eq(proto_sql_skeleton(sql, (size_t)n), 0, "a key for '%s'", sql);
			n = snprintf(sql, sizeof(sql), "SELECT a%*sFROM t; SELECT 2%*s", (int)pad,
			             "", (int)tail, "");
			cr_assert_eq(proto_sql_skeleton(sql, (size_t)n), 0, "a key for '%s'", sql);
		}
	}
}

/* A NUL ends the text for the full scanner wherever it is: between tokens,
 * in a string, a quoted identifier or a comment, at any alignment. */
Test(sqlskel, a_nul_anywhere_means_no_key)
{
	static const char *const texts[] = {
	        "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
	        "SELECT * FROM t WHERE name = 'a string long enough' AND b = 1",
	        "SELECT \"a quoted identifier, long\" FROM t WHERE b = 2",
	        "SELECT a /* a comment, long enough to span */ FROM t WHERE b = 3",
	        "SELECT a -- a comment to the end of the line\nFROM t WHERE b = 4",
	};
	char sql[256];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		size_t n = strlen(texts[i]);

		cr_assert_neq(key(texts[i]), 0, "no key for %s", texts[i]);
		for (size_t at = 0; at < n; at++) {
			memcpy(sql, texts[i], n);
			sql[at] = '\0';
			cr_assert_eq(proto_sql_skeleton(sql, n), 0, "a key with a NUL at %zu of %s",
			             at, texts[i]);
		}
	}
}

/* #, % and : stop the block scan without mattering: a text holding them
 * keys as one without, literal values aside. */
Test(sqlskel, operators_the_block_scan_stops_at)
{
	const char *sql = "SELECT a % 2, b::int, c # 3, d:e FROM t WHERE x = 'y'";
	char mut[256];
	size_t n = skel_mutate(sql, strlen(sql), 1, mut);
	uint64_t k = key(sql);

	cr_assert_neq(k, 0);
	cr_assert_eq(proto_sql_skeleton(mut, n), k, "%s and %s", sql, mut);
	cr_assert_neq(key("SELECT a % 2"), key("SELECT a # 2"));
}

/* proto_sql_again: a text that is another's but for its one integer has
 * that text's key (and scan), known by a comparison. */
Test(sqlskel, the_same_text_with_another_integer)
{
	static const char *const one_int[] = {
	        "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
	        "SELECT * FROM t WHERE id = 7",
	        "SELECT a FROM t LIMIT 10 -- sluice:nocache\n",
	        "UPDATE t SET x = x + 1 WHERE k = \"c1\"",
	        "SELECT x FROM t WHERE a = - 5 AND b = 'x'", /* a string too: other */
	        "SELECT 1.5",                                /* not an integer */
	        "SELECT now()",                              /* none */
	};
	static const char *const others[] = {"0", "9", "42", "1234567890123", "00017"};
	char sql[256], mut[1024];

	for (size_t i = 0; i < sizeof(one_int) / sizeof(one_int[0]); i++) {
		const char *old = one_int[i];
		size_t n = strlen(old);
		struct proto_sql_lits l;
		uint64_t k = proto_sql_skeleton_lits(old, n, &l);

		cr_assert_neq(k, 0, "%s", old);
		cr_assert_eq(k, key(old), "%s", old);
		cr_assert(proto_sql_again(old, n, old, n, &l) == (l.kind != PROTO_SQL_LITS_OTHER),
		          "%s", old);
		if (i == 4 || i == 5) {
			cr_assert_eq(l.kind, PROTO_SQL_LITS_OTHER, "%s", old);
			continue;
		}
		if (i == 6) {
			cr_assert_eq(l.kind, PROTO_SQL_LITS_NONE);
			cr_assert_not(proto_sql_again("SELECT now() ", 13, old, n, &l));
			cr_assert_not(proto_sql_again("SELECT noW()", 12, old, n, &l));
			continue;
		}
		cr_assert_eq(l.kind, PROTO_SQL_LITS_INT, "%s", old);
		for (size_t j = 0; j < sizeof(others) / sizeof(others[0]); j++) {
			int m = snprintf(sql, sizeof(sql), "%.*s%s%s", (int)l.off, old, others[j],
			                 old + l.off + l.len);

			cr_assert(proto_sql_again(sql, (size_t)m, old, n, &l), "%s", sql);
			cr_assert_eq(key(sql), k, "%s and %s", sql, old);
			cr_assert_eq(scan(sql).stmt[0].fp, scan(old).stmt[0].fp, "%s", sql);
		}
		/* what is not another integer there */
		static const char *const nots[] = {"",   "1.5", "1e3", "12a",
		                                   "-3", "'x'", "1 ",  "$1"};

		for (size_t j = 0; j < sizeof(nots) / sizeof(nots[0]); j++) {
			int m = snprintf(sql, sizeof(sql), "%.*s%s%s", (int)l.off, old, nots[j],
			                 old + l.off + l.len);

			cr_assert_not(proto_sql_again(sql, (size_t)m, old, n, &l), "%s", sql);
		}
		/* a byte changed outside the integer */
		for (size_t at = 0; at < n; at++) {
			if (at >= l.off && at < l.off + l.len)
				continue;
			memcpy(mut, old, n);
			mut[at] = mut[at] == 'x' ? 'y' : 'x';
			cr_assert_not(proto_sql_again(mut, n, old, n, &l), "%.*s", (int)n, mut);
		}
	}
}

/* U& and "by" after a number: "0U&" is 0 then a U& identifier (whose
 * UESCAPE character is a string the scan keeps), "0by" is 0 then the word
 * by. The word before them holds a digit, so they are taken for a start
 * and refused; words that merely end in u or b are not. */
Test(sqlskel, u_amp_and_by_after_a_number)
{
	cr_assert_eq(key("SELECT \"a\",0U&\"d\\0061t\" UESCAPE '#' FROM t"), 0);
	cr_assert_eq(key("SELECT a FROM t ORDER 0by 1"), 0);
	cr_assert_eq(key("SELECT a FROM t GROUP x1by 2"), 0);
	cr_assert_neq(key("SELECT hobby FROM t WHERE lobby = 1"), 0);
	cr_assert_neq(key("SELECT menu&1 FROM t WHERE a = 'x'"), 0);
}
