-- A client that asks for LATIN1 at connect time (libpq sends
-- PGCLIENTENCODING as client_encoding): what it is told, text converted
-- both ways, a character LATIN1 cannot hold, and a change to UTF8.
-- (RESET back to the startup LATIN1 is startup_reset_latin1.sql's.)
-- sluice: transaction
-- sluice: env PGCLIENTENCODING=LATIN1
SHOW client_encoding;
\echo :ENCODING
SELECT U&'caf\00E9' AS t, octet_length(U&'caf\00E9') AS server_bytes;
SELECT U&'\20AC' AS euro;
SELECT convert_to(U&'caf\00E9', 'LATIN1') AS latin1_bytes;
SET client_encoding = 'UTF8';
SELECT U&'caf\00E9 \20AC' AS t;
