-- idle_in_transaction_session_timeout: a transaction left idle past it
-- makes PostgreSQL end the session with a FATAL, which the client must
-- get before its connection closes.
SET idle_in_transaction_session_timeout = '200ms';
BEGIN;
SELECT 'in the transaction' AS step;
\! sleep 1
SELECT 'after the timeout' AS step;
SELECT 'never' AS step;
