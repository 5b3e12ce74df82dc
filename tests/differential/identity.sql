-- Who this session is: pg_backend_pid() stays the same for the whole
-- session and is the pid pg_stat_activity lists with our own query,
-- session_user, current_user, SET ROLE refused, inet_server_port().
SELECT pg_backend_pid() AS first_pid \gset
\echo pid :first_pid
SELECT pg_backend_pid() = :first_pid AS same_pid;
BEGIN;
SELECT pg_backend_pid() = :first_pid AS same_pid_in_block;
COMMIT;
SELECT count(*) FROM pg_stat_activity
 WHERE pid = :first_pid AND query LIKE 'SELECT count(*) FROM pg_stat_activity%';
SELECT usename, datname, application_name, state, backend_type
  FROM pg_stat_activity WHERE pid = pg_backend_pid();
SELECT session_user, current_user, current_database(), current_schema();
SET ROLE postgres;
SET SESSION AUTHORIZATION postgres;
SELECT pg_backend_pid() AS later_pid \gset
\echo pid :later_pid
SELECT pg_cancel_backend(pg_backend_pid() + 1000000);
SELECT inet_server_port() = current_setting('port')::int AS server_port_is_postgres;
