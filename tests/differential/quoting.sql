-- Statements whose session-state part hides behind quoting a scanner may
-- get wrong: a backslash at the end of a standard string, E'' escapes,
-- dollar quotes, nested comments, quoted identifiers, U&'' with UESCAPE,
-- and standard_conforming_strings off. Whatever PostgreSQL runs must be
-- what sluice judges, so in transaction mode a LISTEN or a lock made
-- behind such text still pins (the neighbours would see it otherwise),
-- and text that only looks like one pins nothing harmful.
-- sluice: transaction
SELECT 'a\' AS s \; LISTEN diff_q1 \; SELECT '\' AS t;
SELECT pg_listening_channels();
NOTIFY diff_q1, 'after a backslash string';
UNLISTEN *;
SELECT E'it\'s' AS e \; LISTEN diff_q2;
SELECT pg_listening_channels();
UNLISTEN *;
SELECT E'\\' AS e \; SELECT pg_advisory_lock(8301);
SELECT objid FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
SELECT pg_advisory_unlock_all();
SELECT $$ ; LISTEN diff_not_really; $$ AS d \; SELECT $x$ it's $$ $x$ AS d2;
SELECT pg_listening_channels();
SELECT 1 /* outer /* inner */ ; LISTEN diff_not_either; */ AS c;
SELECT pg_listening_channels();
SELECT 1 AS "a""b; LISTEN diff_nor_this" \; LISTEN diff_q3;
SELECT pg_listening_channels();
UNLISTEN *;
SELECT U&'!0041' UESCAPE '!' AS u \; LISTEN diff_q4;
SELECT pg_listening_channels();
UNLISTEN *;
SELECT 'x' -- a comment with a quote ' in it
 AS after_comment \; LISTEN diff_q5;
SELECT pg_listening_channels();
UNLISTEN *;
SET standard_conforming_strings = off;
SELECT 'a\'; LISTEN diff_inside_the_string; --' AS s;
SELECT pg_listening_channels();
SELECT 'b\\' AS s \; LISTEN diff_q6;
SELECT pg_listening_channels();
UNLISTEN *;
RESET standard_conforming_strings;
SHOW standard_conforming_strings;
SELECT 'c\' AS s \; SELECT pg_advisory_lock(8302);
SELECT objid FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory';
SELECT pg_advisory_unlock_all();
