-- RESET client_encoding and RESET ALL return a client that asked for
-- LATIN1 at connect time to LATIN1, and PostgreSQL tells it so
-- (ParameterStatus), so text keeps arriving in LATIN1.
-- Session mode only: in transaction mode RESET goes to the shared
-- server's own default (UTF8 here) and the client is told UTF8 (README).
-- sluice: env PGCLIENTENCODING=LATIN1
SET client_encoding = 'UTF8';
SELECT U&'caf\00E9' AS t;
RESET client_encoding;
SHOW client_encoding;
\echo :ENCODING
SELECT U&'caf\00E9' AS t;
SET client_encoding = 'WIN1252';
RESET ALL;
SHOW client_encoding;
\echo :ENCODING
