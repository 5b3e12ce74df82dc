-- Procedures and DO blocks that end transactions themselves (COMMIT and
-- ROLLBACK inside CALL), INOUT arguments, CALL inside a transaction
-- block, and errors raised after a COMMIT inside a procedure.
-- sluice: transaction
CREATE TABLE diff_proc_t (x int);
CREATE PROCEDURE diff_proc(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP
    INSERT INTO diff_proc_t VALUES (i);
    IF i % 2 = 0 THEN COMMIT; ELSE ROLLBACK; END IF;
  END LOOP;
END $$;
CALL diff_proc(6);
SELECT x FROM diff_proc_t ORDER BY x;
BEGIN;
CALL diff_proc(2);
ROLLBACK;
CREATE PROCEDURE diff_inout(INOUT a int, INOUT b text) LANGUAGE plpgsql AS $$
BEGIN a := a * 2; b := b || '!'; END $$;
CALL diff_inout(21, 'hi');
CREATE PROCEDURE diff_fail() LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO diff_proc_t VALUES (100);
  COMMIT;
  INSERT INTO diff_proc_t VALUES (101);
  RAISE EXCEPTION 'after a commit' USING ERRCODE = 'P0001';
END $$;
CALL diff_fail();
SELECT x FROM diff_proc_t WHERE x >= 100 ORDER BY x;
DO $$ BEGIN INSERT INTO diff_proc_t VALUES (200); COMMIT; INSERT INTO diff_proc_t VALUES (201); ROLLBACK; END $$;
SELECT x FROM diff_proc_t WHERE x >= 200 ORDER BY x;
CALL diff_nosuch();
CALL diff_inout(1);
DROP PROCEDURE diff_proc(int);
DROP PROCEDURE diff_inout(int, text);
DROP PROCEDURE diff_fail();
DROP TABLE diff_proc_t;
LOCK TABLE pg_class;
BEGIN;
LOCK TABLE pg_namespace IN ACCESS SHARE MODE NOWAIT;
SELECT mode, granted FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'pg_namespace'::regclass;
COMMIT;
