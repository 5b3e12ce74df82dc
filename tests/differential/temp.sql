-- Temporary tables, views and sequences, ON COMMIT, objects made in
-- pg_temp explicitly, DISCARD TEMP. (The temporary schema itself, which
-- outlives DISCARD TEMP, is temp_schema.sql's.)
-- sluice: transaction
SELECT count(*) AS temp_objects FROM pg_class WHERE relnamespace = pg_my_temp_schema();
CREATE TEMP TABLE diff_t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO diff_t VALUES (1, 'one'), (2, 'two'), (3, 'three');
SELECT * FROM diff_t ORDER BY id;
SELECT pg_my_temp_schema() <> 0 AS has_temp_schema;
SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema();
SELECT relname, relpersistence FROM pg_class
 WHERE relnamespace = pg_my_temp_schema() ORDER BY relname;
\d diff_t
CREATE TEMP TABLE diff_t (x int);
INSERT INTO diff_t VALUES (1, 'dup');
CREATE TEMP VIEW diff_v AS SELECT count(*) AS n FROM diff_t;
SELECT * FROM diff_v;
CREATE TEMP SEQUENCE diff_s START 10;
SELECT nextval('diff_s'), nextval('diff_s'), currval('diff_s');
CREATE TEMP TABLE diff_del (x int) ON COMMIT DELETE ROWS;
BEGIN;
INSERT INTO diff_del VALUES (1), (2);
SELECT count(*) FROM diff_del;
COMMIT;
SELECT count(*) FROM diff_del;
BEGIN;
CREATE TEMP TABLE diff_drop (x int) ON COMMIT DROP;
INSERT INTO diff_drop VALUES (1);
SELECT * FROM diff_drop;
COMMIT;
SELECT * FROM diff_drop;
CREATE TABLE pg_temp.diff_explicit (y int);
SELECT * FROM pg_temp.diff_explicit;
SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r';
CREATE TEMP TABLE diff_as AS SELECT g AS n FROM generate_series(1, 5) g;
SELECT sum(n) FROM diff_as;
SELECT * INTO TEMP diff_into FROM diff_as WHERE n > 3;
SELECT * FROM diff_into ORDER BY n;
DISCARD TEMP;
SELECT * FROM diff_t;
SELECT * FROM diff_v;
SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema();
