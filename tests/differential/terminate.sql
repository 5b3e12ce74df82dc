-- A session that PostgreSQL ends: pg_terminate_backend of its own pid.
-- The client must get PostgreSQL's FATAL and then see its connection
-- closed, as psql reports it, and nothing after it runs.
SELECT 'before' AS step;
SELECT pg_terminate_backend(pg_backend_pid());
SELECT 'after' AS step;
