/* The session state a DO block's text may make (stats/code_session.c),
 * and that the classifier marks DO so the relay reads each text. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

#define SET_ (STATS_SS_SET | STATS_SS_SET_UNNAMED)

struct want {
	const char *sql;
	uint32_t ss;
};

static const struct want corpus[] = {
        /* no state */
        {"DO $$ BEGIN PERFORM 1; END $$", 0},
        {"DO $$ DECLARE r record; BEGIN UPDATE t SET a = 1; END $$", 0},
        {"DO $$ BEGIN INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2; END $$", 0},
        {"DO $$ BEGIN SET LOCAL work_mem = '1MB'; END $$", 0},
        {"DO $$ BEGIN SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; END $$", 0},
        {"DO $$ BEGIN PERFORM pg_advisory_xact_lock(1); END $$", 0},
        {"DO $$ BEGIN ALTER TABLE t ALTER COLUMN a SET DEFAULT 1; END $$", 0},
        {"DO $$ BEGIN -- SET x = 1\n PERFORM 1; /* LISTEN c; */ END $$", 0},
        /* a SET in the body, as PostgreSQL's brin test has it */
        {"DO $x$\nDECLARE r record;\nBEGIN\n FOR r IN SELECT 1 LOOP\n  IF true THEN NULL; END IF;\n"
         "  -- the brin index\n  SET enable_seqscan = 0;\n END LOOP;\nEND;\n$x$",
         SET_},
        {"do language plpgsql 'begin set search_path = x; end'", SET_},
        {"DO $$ BEGIN IF true THEN SET work_mem = '2MB'; ELSE SET work_mem = '3MB'; END IF; END $$",
         SET_},
        {"DO $$ BEGIN EXECUTE 'SET statement_timeout = 5'; END $$", SET_},
        {"DO $$ BEGIN PERFORM set_config('a.b', 'c', false); END $$", SET_},
        {"DO $$ BEGIN SET SESSION work_mem = '1MB'; END $$", SET_},
        {"DO $$ BEGIN SET ROLE alice; END $$", STATS_SS_ROLE},
        {"DO $$ BEGIN SET SESSION AUTHORIZATION alice; END $$", STATS_SS_AUTH},
        /* the other kinds */
        {"DO $$ BEGIN CREATE TEMP TABLE x (a int); END $$", STATS_SS_TEMP},
        {"DO $$ BEGIN CREATE TEMPORARY VIEW v AS SELECT 1; END $$", STATS_SS_TEMP},
        {"DO $$ BEGIN CREATE FUNCTION pg_temp.f() RETURNS int AS 'select 1' LANGUAGE sql; END $$",
         STATS_SS_TEMP},
        {"DO $$ BEGIN PERFORM pg_advisory_lock(7); END $$", STATS_SS_ADVISORY},
        {"DO $$ BEGIN PERFORM pg_try_advisory_lock_shared(7); END $$", STATS_SS_ADVISORY},
        {"DO $$ BEGIN LISTEN chan; END $$", STATS_SS_LISTEN},
        {"DO $$ BEGIN EXECUTE 'LISTEN chan'; END $$", STATS_SS_LISTEN},
        {"DO $$ BEGIN EXECUTE 'PREPARE p AS SELECT 1'; END $$", STATS_SS_PREPARE},
        {"DO $$ BEGIN EXECUTE 'PREPARE TRANSACTION ''x'''; END $$", 0},
        {"DO $$ BEGIN EXECUTE 'DECLARE c CURSOR WITH HOLD FOR SELECT 1'; END $$", STATS_SS_CURSOR},
        {"DO $$ BEGIN EXECUTE 'LOAD ''auto_explain'''; END $$", STATS_SS_LOAD},
        /* what pin_hooks.c follows besides: sequence memory, partial ends */
        {"DO $$ BEGIN RAISE NOTICE '%', currval('s'); END $$", STATS_SS_SEQ_READ},
        {"DO $$ BEGIN PERFORM pg_advisory_unlock(7); UNLISTEN c; DROP TABLE t; END $$",
         STATS_SS_MAY_END},
        {"DO $$ BEGIN SET a = 1; LISTEN c; CREATE TEMP TABLE t (); END $$",
         SET_ | STATS_SS_LISTEN | STATS_SS_TEMP},
};

Test(code_session, corpus)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		const struct want *w = &corpus[i];
		uint32_t got = stats_code_session(w->sql, strlen(w->sql));

		cr_expect_eq(got, w->ss, "%s: got %#x, want %#x", w->sql, got, w->ss);
	}
}

/* Text cut anywhere: never reads past its end (ASan), whatever it finds. */
Test(code_session, cut_anywhere)
{
	const char *sql =
	        "DO $$ BEGIN SET SESSION AUTHORIZATION a; /* x */ -- y\n LISTEN c; END $$";
	size_t n = strlen(sql);

	for (size_t i = 0; i <= n; i++) {
		char *buf = malloc(i ? i : 1);
		memcpy(buf, sql, i);
		(void)stats_code_session(buf, i);
		free(buf);
	}
}

/* The classifier marks DO blocks, parsed or not, so that the relay reads
 * each one's text: their shapes are one. */
Test(code_session, classifier_marks_do)
{
	const char *texts[] = {"DO $$ BEGIN PERFORM 1; END $$", "DO $$ BEGIN SET a = 1; END $$",
	                       "DO $$ BEGIN oops"};

	for (size_t i = 0; i < 3; i++) {
		struct stats_shape_info si;

		memset(&si, 0, sizeof(si));
		(void)stats_classify(texts[i], strlen(texts[i]), 0, &si);
		cr_expect(si.session & STATS_SS_CODE, "%s: not marked", texts[i]);
		cr_expect(!(si.session & STATS_SS_SET), "%s: the shape's own bits hold the body's",
		          texts[i]);
		stats_shape_info_free(&si);
	}
}
