-- \connect in the middle of a script: the new session starts fresh,
-- without the temporary tables, listens, settings, advisory locks,
-- prepared statements and cursors of the one before, and with the same
-- startup values.
CREATE TEMP TABLE diff_rc (x int);
LISTEN diff_rc_chan;
SET DateStyle = 'German';
SET work_mem = '7MB';
SET application_name = 'diff before reconnect';
SELECT pg_advisory_lock(8201);
PREPARE diff_rc_p AS SELECT 1;
DECLARE diff_rc_c CURSOR WITH HOLD FOR SELECT 1;
SELECT pg_backend_pid() AS before_pid \gset
\connect
SELECT pg_backend_pid() <> :before_pid AS new_backend;
SELECT * FROM diff_rc;
SELECT pg_my_temp_schema() = 0 AS no_temp_schema;
SELECT pg_listening_channels();
SHOW DateStyle;
SHOW work_mem;
SHOW application_name;
SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
SELECT count(*) FROM pg_prepared_statements;
SELECT count(*) FROM pg_cursors;
SELECT name, setting, source FROM pg_settings
 WHERE source NOT IN ('default', 'override', 'configuration file') ORDER BY name;
\connect - - - -
SELECT pg_my_temp_schema() = 0 AS no_temp_schema;
