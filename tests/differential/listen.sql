-- LISTEN, NOTIFY (to itself, with payloads, inside transactions),
-- UNLISTEN, pg_notify() and pg_listening_channels(). psql prints each
-- notification with the pid of the backend that sent it: here that is
-- this session's own pid, which must be the one pg_backend_pid() gives
-- (in transaction mode while LISTEN pins the client; after UNLISTEN * it
-- may move to another server, so the script asks for its pid only while
-- listening).
-- sluice: transaction
SELECT pg_listening_channels();
LISTEN diff_a;
LISTEN "Diff Quoted";
SELECT pg_listening_channels() ORDER BY 1;
SELECT pg_backend_pid() AS me \gset
\echo pid :me
NOTIFY diff_a;
NOTIFY diff_a, 'with payload';
NOTIFY "Diff Quoted", 'quoted';
NOTIFY diff_unheard, 'nobody';
SELECT pg_notify('diff_a', 'from pg_notify');
BEGIN;
NOTIFY diff_a, 'at commit';
NOTIFY diff_a, 'at commit';
NOTIFY diff_a, 'second';
SELECT 'before commit' AS step;
COMMIT;
BEGIN;
NOTIFY diff_a, 'rolled back';
ROLLBACK;
SELECT 'after rollback' AS step;
UNLISTEN diff_a;
NOTIFY diff_a, 'not heard';
NOTIFY "Diff Quoted", 'still heard';
SELECT pg_listening_channels();
UNLISTEN *;
NOTIFY "Diff Quoted", 'not heard either';
SELECT pg_listening_channels();
NOTIFY diff_a, repeat('x', 8000);
SELECT pg_notify('diff_a', repeat('x', 8000));
SELECT pg_notify('', 'empty channel');
