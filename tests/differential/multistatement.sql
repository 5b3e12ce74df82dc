-- Several statements in one Query message (psql's \;), errors in the
-- middle of such a batch, its implicit transaction, and empty queries.
-- sluice: transaction
SELECT 1 AS a \; SELECT 2 AS b \; SELECT 3 AS c;
CREATE TABLE diff_multi (x int) \; INSERT INTO diff_multi VALUES (1) \; SELECT count(*) FROM diff_multi;
INSERT INTO diff_multi VALUES (2) \; SELECT 1 / 0 \; INSERT INTO diff_multi VALUES (3);
SELECT x FROM diff_multi ORDER BY x;
BEGIN \; INSERT INTO diff_multi VALUES (4) \; COMMIT \; INSERT INTO diff_multi VALUES (5) \; SELECT 1 / 0;
SELECT x FROM diff_multi ORDER BY x;
BEGIN \; INSERT INTO diff_multi VALUES (6);
SELECT count(*) FROM diff_multi;
ROLLBACK;
SELECT 'a' \; SELECT 'b' \gset v_
\echo :v_
SET DateStyle = 'German' \; SELECT date '2024-03-10' \; RESET DateStyle \; SELECT date '2024-03-10';
SELECT 1 \; ;
;
   ;
-- a comment alone
;
/* block comment */ ;
\set QUIET on
SELECT '' \gexec
\set QUIET off
SELECT 'SELECT ' || g FROM generate_series(1, 2) g \gexec
VACUUM diff_multi \; SELECT 1;
SAVEPOINT sp \; SELECT 1;
DROP TABLE diff_multi;
