-- Large objects: server-side functions on fixed OIDs (so no OID depends
-- on the run), descriptors inside a transaction, seeks, truncation,
-- errors, and unlink.
-- sluice: transaction
SELECT lo_unlink(917001);
SELECT lo_create(917001);
SELECT lo_create(917001);
BEGIN;
SELECT lo_open(917001, x'60000'::int) AS fd \gset
\echo fd :fd
SELECT lowrite(:fd, 'hello, large object');
SELECT lo_lseek(:fd, 7, 0);
SELECT loread(:fd, 5);
SELECT lo_tell(:fd);
SELECT lo_lseek64(:fd, 0, 2);
SELECT lo_truncate(:fd, 5);
SELECT lo_close(:fd);
SELECT lo_close(:fd);
COMMIT;
SELECT lo_get(917001);
SELECT lo_put(917001, 5, '!!');
SELECT convert_from(lo_get(917001), 'UTF8');
SELECT lo_get(917001, 1, 3);
SELECT lo_from_bytea(917002, 'second object');
SELECT convert_from(lo_get(917002), 'UTF8');
SELECT oid FROM pg_largeobject_metadata WHERE oid IN (917001, 917002) ORDER BY oid;
SELECT lo_open(917001, x'40000'::int);
SELECT lo_open(917999, x'40000'::int);
SELECT lo_get(917999);
SELECT lo_unlink(917001);
SELECT lo_unlink(917002);
SELECT lo_unlink(917002);
