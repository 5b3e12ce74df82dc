-- Advisory locks, session and transaction level, shared and exclusive,
-- try variants, unlock of a lock not held, unlock all, and what
-- pg_locks shows of them for this session.
-- sluice: transaction
SELECT pg_advisory_lock(4242);
SELECT pg_advisory_lock(4242);
SELECT pg_try_advisory_lock(4243);
SELECT pg_advisory_lock_shared(1, 2);
SELECT pg_try_advisory_lock_shared(7);
SELECT locktype, classid, objid, objsubid, mode, granted
  FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
 ORDER BY classid, objid, mode;
SELECT pg_advisory_unlock(4242);
SELECT pg_advisory_unlock(4242);
SELECT pg_advisory_unlock(4242);
SELECT pg_advisory_unlock_shared(4243);
SELECT pg_advisory_unlock(99999);
BEGIN;
SELECT pg_advisory_xact_lock(5555);
SELECT pg_try_advisory_xact_lock(5556);
SELECT pg_advisory_xact_lock_shared(5557);
SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
SELECT pg_advisory_unlock(5555);
COMMIT;
SELECT objid, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
 ORDER BY objid;
BEGIN;
SELECT pg_advisory_lock(6666);
ROLLBACK;
SELECT objid FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
 ORDER BY objid;
SELECT pg_advisory_unlock_all();
SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
SELECT pg_advisory_xact_lock(1);
SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
