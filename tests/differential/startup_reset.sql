-- RESET and RESET ALL return to the values the client gave at startup
-- (psql sends application_name and client_encoding), not to the server's
-- defaults, and SET / RESET of them report the change back.
-- Session mode only: in transaction mode a server is shared, so RESET
-- goes back to that server's own default (application_name becomes empty
-- here); README lists it among what still differs.
SHOW application_name;
SET application_name = 'diff changed';
SHOW application_name;
RESET application_name;
SHOW application_name;
SET client_encoding = 'LATIN1';
SET application_name = 'diff again';
RESET ALL;
SHOW application_name;
SHOW client_encoding;
\echo :ENCODING
BEGIN;
SET LOCAL application_name = 'diff local';
SHOW application_name;
RESET application_name;
SHOW application_name;
COMMIT;
SHOW application_name;
SELECT name, setting, source FROM pg_settings
 WHERE name IN ('application_name', 'client_encoding') ORDER BY name;
