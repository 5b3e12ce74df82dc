-- Transaction blocks and savepoints with errors inside: aborted blocks,
-- ROLLBACK TO, RELEASE, COMMIT of a failed block, isolation levels, and
-- what psql's ERROR and SQLSTATE variables say after each.
-- sluice: transaction
CREATE TABLE diff_tx (id int PRIMARY KEY, v text);
BEGIN;
INSERT INTO diff_tx VALUES (1, 'kept');
SAVEPOINT a;
INSERT INTO diff_tx VALUES (1, 'duplicate');
\echo error :ERROR sqlstate :SQLSTATE
SELECT * FROM diff_tx;
\echo error :ERROR sqlstate :SQLSTATE
ROLLBACK TO SAVEPOINT a;
INSERT INTO diff_tx VALUES (2, 'after rollback to');
SAVEPOINT b;
INSERT INTO diff_tx VALUES (3, 'released');
RELEASE SAVEPOINT b;
SAVEPOINT c;
SAVEPOINT d;
INSERT INTO diff_tx VALUES (4, 'in d');
ROLLBACK TO c;
RELEASE d;
ROLLBACK TO nosuch;
ROLLBACK TO c;
COMMIT;
SELECT * FROM diff_tx ORDER BY id;
BEGIN;
SELECT 1 / 0;
SELECT 1;
COMMIT;
\echo error :ERROR sqlstate :SQLSTATE
SELECT count(*) FROM diff_tx;
COMMIT;
ROLLBACK;
SAVEPOINT outside;
RELEASE outside;
BEGIN;
BEGIN;
SHOW transaction_isolation;
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SHOW transaction_isolation;
SHOW transaction_read_only;
INSERT INTO diff_tx VALUES (9, 'read only');
ROLLBACK;
START TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SELECT current_setting('transaction_isolation');
SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
SELECT 1;
SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
COMMIT;
BEGIN;
UPDATE diff_tx SET v = 'updated' WHERE id = 2 RETURNING *;
SAVEPOINT s1;
DELETE FROM diff_tx RETURNING id;
ROLLBACK TO s1;
SELECT count(*) FROM diff_tx;
END;
SELECT * FROM diff_tx ORDER BY id;
COMMIT AND CHAIN;
BEGIN;
INSERT INTO diff_tx VALUES (20, 'chain');
COMMIT AND CHAIN;
SHOW transaction_isolation;
INSERT INTO diff_tx VALUES (21, 'chained');
ROLLBACK AND CHAIN;
SELECT count(*) FROM diff_tx WHERE id >= 20;
COMMIT;
BEGIN;
SELECT txid_current_if_assigned() IS NULL AS no_xid_yet;
INSERT INTO diff_tx VALUES (30, 'x');
SELECT txid_current_if_assigned() IS NOT NULL AS has_xid;
ROLLBACK;
DROP TABLE diff_tx;
