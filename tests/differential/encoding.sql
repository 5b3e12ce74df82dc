-- client_encoding: changes with SET and \encoding, text converted both
-- ways, a character the client encoding cannot hold, and RESET.
-- sluice: transaction
SHOW client_encoding;
SELECT U&'caf\00E9 \20AC' AS t, length(U&'caf\00E9 \20AC') AS chars, octet_length(U&'caf\00E9 \20AC') AS bytes;
SET client_encoding = 'LATIN1';
SHOW client_encoding;
SELECT U&'caf\00E9' AS t, octet_length(U&'caf\00E9') AS bytes;
SELECT U&'\20AC' AS euro;
SELECT convert_to(U&'caf\00E9', 'LATIN1');
\encoding UTF8
SHOW client_encoding;
\echo :ENCODING
SET client_encoding = 'SQL_ASCII';
SELECT U&'caf\00E9' AS t;
SET client_encoding = 'nonsense';
SET NAMES 'WIN1252';
SHOW client_encoding;
SELECT U&'\20AC' AS euro;
BEGIN;
SET LOCAL client_encoding = 'LATIN9';
SHOW client_encoding;
SELECT U&'\20AC' AS euro;
COMMIT;
SHOW client_encoding;
RESET client_encoding;
SHOW client_encoding;
\echo :ENCODING
SELECT U&'caf\00E9 \20AC' AS t;
