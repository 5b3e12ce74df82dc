-- Settings given at connect time (libpq sends PGOPTIONS as "options", and
-- PGDATESTYLE and PGTZ as settings of their own): what SHOW says, where
-- pg_settings says each came from, and that RESET returns to them.
-- Session mode only: in transaction mode an options setting sluice does
-- not track is refused at login, and RESET goes to the server's default
-- (README).
-- sluice: env PGOPTIONS=-c search_path=diff_nowhere,public -c statement_timeout=4321 -c intervalstyle=postgres_verbose -c work_mem=3MB
-- sluice: env PGDATESTYLE=SQL, DMY
-- sluice: env PGTZ=Europe/Lisbon
SHOW search_path;
SHOW statement_timeout;
SHOW IntervalStyle;
SHOW work_mem;
SHOW DateStyle;
SHOW TimeZone;
SELECT name, setting, source FROM pg_settings
 WHERE source NOT IN ('default', 'override', 'configuration file') ORDER BY name;
SELECT interval '1 day 2 hours', date '2024-03-10', timestamptz '2024-07-01 12:00+00';
SET IntervalStyle = iso_8601;
SET work_mem = '9MB';
SET search_path = public;
SET DateStyle = ISO;
SET TimeZone = 'UTC';
RESET IntervalStyle;
RESET work_mem;
SHOW IntervalStyle;
SHOW work_mem;
RESET ALL;
SHOW search_path;
SHOW statement_timeout;
SHOW DateStyle;
SHOW TimeZone;
SELECT interval '1 day 2 hours', date '2024-03-10', timestamptz '2024-07-01 12:00+00';
BEGIN;
SET LOCAL statement_timeout = 0;
SHOW statement_timeout;
COMMIT;
SHOW statement_timeout;
