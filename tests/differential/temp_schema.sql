-- The temporary schema: a new session has none until its first temporary
-- object, gets one named pg_temp_<n>, and keeps it (empty) after DISCARD
-- TEMP or DISCARD ALL, for the rest of the session.
-- Session mode only: in transaction mode a client unpinned by DISCARD
-- TEMP may land on another server, with or without a temporary schema of
-- an earlier client's; README lists it among what still differs.
SELECT pg_my_temp_schema() = 0 AS no_temp_schema_yet;
SELECT count(*) AS temp_schemas_of_mine FROM pg_namespace WHERE oid = pg_my_temp_schema();
SELECT has_schema_privilege('pg_temp', 'USAGE');
CREATE TEMP TABLE diff_ts (x int);
SELECT pg_my_temp_schema() <> 0 AS has_temp_schema;
SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema();
SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema() \gset
\echo :nspname
SELECT current_schemas(true);
SELECT pg_is_other_temp_schema(pg_my_temp_schema());
DISCARD TEMP;
SELECT pg_my_temp_schema() <> 0 AS temp_schema_stays_after_discard;
SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema();
DISCARD ALL;
SELECT pg_my_temp_schema() <> 0 AS temp_schema_stays_after_discard_all;
SELECT current_schemas(true);
