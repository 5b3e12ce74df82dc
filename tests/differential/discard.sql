-- DISCARD PLANS, SEQUENCES, TEMP and ALL: what each forgets, and that
-- DISCARD ALL refuses to run inside a transaction block.
-- sluice: transaction
CREATE TEMP TABLE diff_dt (x int);
CREATE SEQUENCE diff_dseq;
SELECT nextval('diff_dseq');
PREPARE diff_dp AS SELECT 42;
SET DateStyle = 'German';
LISTEN diff_dchan;
SELECT pg_advisory_lock(31337);
DISCARD PLANS;
EXECUTE diff_dp;
SELECT currval('diff_dseq');
DISCARD SEQUENCES;
SELECT currval('diff_dseq');
SELECT lastval();
DISCARD TEMP;
SELECT * FROM diff_dt;
BEGIN;
DISCARD ALL;
ROLLBACK;
DISCARD ALL;
EXECUTE diff_dp;
SHOW DateStyle;
SELECT pg_listening_channels();
SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
DISCARD nonsense;
DROP SEQUENCE diff_dseq;
