-- SET ROLE and RESET ROLE to a role the login role is a member of
-- (diff_member, made by the test), what current_user, session_user and
-- privileges then say, SET ROLE inside a transaction that rolls back, and
-- SET SESSION AUTHORIZATION, which only a superuser may run.
-- sluice: transaction
SELECT current_user, session_user;
SET ROLE diff_member;
SELECT current_user, session_user;
SHOW role;
CREATE TEMP TABLE diff_owned (x int);
SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'diff_owned';
DROP TABLE diff_owned;
RESET ROLE;
SELECT current_user;
BEGIN;
SET ROLE diff_member;
SELECT current_user;
ROLLBACK;
SELECT current_user;
BEGIN;
SET LOCAL ROLE diff_member;
SELECT current_user;
COMMIT;
SELECT current_user;
SET ROLE diff_nosuch_role;
SET ROLE postgres;
SET SESSION AUTHORIZATION diff_member;
SET ROLE NONE;
SELECT current_user, session_user;
