-- NOTICE, WARNING, INFO, LOG and DEBUG from RAISE, what client_min_messages
-- lets through, and notices interleaved with rows and errors.
-- sluice: transaction
DO $$ BEGIN RAISE NOTICE 'a notice %', 1; END $$;
DO $$ BEGIN RAISE WARNING 'a warning' USING DETAIL = 'warn detail', HINT = 'warn hint'; END $$;
DO $$ BEGIN RAISE INFO 'an info'; END $$;
DO $$ BEGIN RAISE LOG 'a log line'; END $$;
DO $$ BEGIN RAISE DEBUG 'a debug line'; END $$;
CREATE FUNCTION pg_temp.diff_noisy(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'row %', n;
  RETURN n * 2;
END $$;
SELECT pg_temp.diff_noisy(g) FROM generate_series(1, 3) g;
SET client_min_messages = warning;
SELECT pg_temp.diff_noisy(4);
DO $$ BEGIN RAISE WARNING 'still shown'; END $$;
SET client_min_messages = debug1;
DO $$ BEGIN RAISE DEBUG 'now shown'; END $$;
SET client_min_messages = error;
DO $$ BEGIN RAISE WARNING 'hidden'; RAISE INFO 'info always goes to the client'; END $$;
RESET client_min_messages;
DROP TABLE IF EXISTS diff_never_existed;
DROP TABLE IF EXISTS diff_never_existed, diff_never_either;
CREATE TABLE IF NOT EXISTS diff_notice_t (x int);
CREATE TABLE IF NOT EXISTS diff_notice_t (x int);
DROP TABLE diff_notice_t;
SELECT pg_temp.diff_noisy(5) AS first, 1 / 0 AS second;
BEGIN;
DO $$ BEGIN RAISE NOTICE 'in a block'; END $$;
COMMIT;
COMMIT;
SET lc_messages = 'C';
