-- Two-phase commit: PREPARE TRANSACTION, pg_prepared_xacts, COMMIT and
-- ROLLBACK PREPARED, a duplicate gid, and the refusal to prepare a
-- transaction that touched temporary objects.
-- sluice: transaction
-- sluice: needs max_prepared_transactions
CREATE TABLE diff_2pc (x int);
BEGIN;
INSERT INTO diff_2pc VALUES (1);
PREPARE TRANSACTION 'diff_gid_1';
SELECT gid, database FROM pg_prepared_xacts WHERE gid LIKE 'diff_%' ORDER BY gid;
SELECT count(*) FROM diff_2pc;
COMMIT PREPARED 'diff_gid_1';
SELECT count(*) FROM diff_2pc;
BEGIN;
INSERT INTO diff_2pc VALUES (2);
PREPARE TRANSACTION 'diff_gid_2';
BEGIN;
PREPARE TRANSACTION 'diff_gid_2';
ROLLBACK PREPARED 'diff_gid_2';
SELECT count(*) FROM diff_2pc;
COMMIT PREPARED 'diff_gid_2';
ROLLBACK PREPARED 'diff_gid_nosuch';
BEGIN;
COMMIT PREPARED 'diff_gid_1';
ROLLBACK;
CREATE TEMP TABLE diff_2pc_temp (x int);
BEGIN;
INSERT INTO diff_2pc_temp VALUES (1);
PREPARE TRANSACTION 'diff_gid_temp';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'diff_%';
BEGIN;
SELECT pg_advisory_lock(77);
PREPARE TRANSACTION 'diff_gid_lock';
SELECT pg_advisory_unlock_all();
BEGIN;
LISTEN diff_2pc_chan;
PREPARE TRANSACTION 'diff_gid_listen';
PREPARE TRANSACTION 'diff_gid_outside';
SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'diff_%';
DISCARD TEMP;
DROP TABLE diff_2pc;
