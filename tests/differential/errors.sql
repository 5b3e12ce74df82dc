-- Errors as a client sees them: positions, hints, details, contexts,
-- SQLSTATEs, constraint names, and psql's verbose and sqlstate views.
-- sluice: transaction
SELECT 1 +;
SELECT * FROM diff_no_such_table;
SELECT nosuchcol FROM (SELECT 1 AS nosuchcolumn) s;
SELECT 1 / 0;
SELECT 'abc'::int;
SELECT repeat('x', -1) || chr(0);
SELECT lower(1, 2);
CREATE TABLE diff_err (id int PRIMARY KEY, n int CHECK (n > 0), ref int REFERENCES diff_err(id));
INSERT INTO diff_err VALUES (1, 1, NULL);
INSERT INTO diff_err VALUES (1, 1, NULL);
INSERT INTO diff_err VALUES (2, -1, NULL);
INSERT INTO diff_err VALUES (3, 1, 99);
INSERT INTO diff_err VALUES (NULL, 1, NULL);
\set VERBOSITY verbose
INSERT INTO diff_err VALUES (1, 1, NULL);
SELECT 1 +;
\set VERBOSITY sqlstate
SELECT 1 / 0;
\set VERBOSITY terse
SELECT 1 / 0;
\set VERBOSITY default
\set SHOW_CONTEXT always
DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 42 USING ERRCODE = 'P0042', DETAIL = 'the detail', HINT = 'the hint'; END $$;
DO $$ BEGIN PERFORM 1 / 0; END $$;
DO $$ BEGIN RAISE 'plain raise' USING ERRCODE = 'unique_violation', SCHEMA = 's', TABLE = 't', COLUMN = 'c', CONSTRAINT = 'k', DATATYPE = 'd'; END $$;
\set VERBOSITY verbose
DO $$ BEGIN RAISE 'fields' USING SCHEMA = 's', TABLE = 't', COLUMN = 'c', CONSTRAINT = 'k', DATATYPE = 'd'; END $$;
\errverbose
\set VERBOSITY default
\set SHOW_CONTEXT errors
SELECT "unterminated;
SELECT 'ok' AS after_errors;
SELECT $q$dollar$q$ AS a, E'esc\tape' AS b, U&'\0041' AS c;
SELECT * FROM generate_series(1, 3) g WHERE g = 'x';
SELECT pg_terminate_backend(0);
SELECT 1 FROM diff_err FOR UPDATE OF nosuch;
DROP TABLE diff_err;
