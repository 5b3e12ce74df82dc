-- SQL-level PREPARE, EXECUTE, DEALLOCATE and DEALLOCATE ALL, and the
-- pg_prepared_statements view.
-- sluice: transaction
SELECT count(*) AS prepared_at_start FROM pg_prepared_statements;
PREPARE diff_add (int, int) AS SELECT $1 + $2 AS sum;
EXECUTE diff_add (40, 2);
EXECUTE diff_add ('a', 2);
EXECUTE diff_add (1);
PREPARE diff_add (int) AS SELECT $1;
PREPARE diff_txt AS SELECT upper($1::text) AS up, length($1::text) AS len;
EXECUTE diff_txt ('héllo');
SELECT name, statement, parameter_types, from_sql FROM pg_prepared_statements ORDER BY name;
EXECUTE diff_missing;
DEALLOCATE diff_add;
EXECUTE diff_add (1, 2);
DEALLOCATE diff_add;
DEALLOCATE PREPARE diff_txt;
SELECT count(*) FROM pg_prepared_statements;
PREPARE diff_a AS SELECT 1;
PREPARE diff_b AS SELECT 2;
CREATE TEMP TABLE diff_pt (x int);
PREPARE diff_ins (int) AS INSERT INTO diff_pt VALUES ($1) RETURNING x * 10;
EXECUTE diff_ins (7);
EXECUTE diff_ins (8);
CREATE TEMP TABLE diff_pt_as AS EXECUTE diff_b;
SELECT * FROM diff_pt_as;
EXPLAIN (COSTS OFF) EXECUTE diff_ins (9);
BEGIN;
PREPARE diff_in_tx AS SELECT 'tx';
EXECUTE diff_in_tx;
ROLLBACK;
EXECUTE diff_in_tx;
SELECT name FROM pg_prepared_statements ORDER BY name;
DEALLOCATE ALL;
SELECT count(*) FROM pg_prepared_statements;
EXECUTE diff_a;
DISCARD TEMP;
