-- SHOW and current_setting(): the values a session sees of the server's
-- settings, and where each non-default one came from (a startup
-- parameter is 'client', a SET is 'session').
SHOW server_version;
SHOW server_encoding;
SHOW client_encoding;
SHOW integer_datetimes;
SHOW standard_conforming_strings;
SHOW is_superuser;
SHOW session_authorization;
SHOW transaction_isolation;
SHOW default_transaction_read_only;
SHOW lc_messages;
SHOW nonexistent_setting;
SHOW diff.placeholder;
SELECT current_setting('TimeZone'), current_setting('application_name'),
       current_setting('client_encoding'), current_setting('search_path');
SELECT current_setting('diff.nope', true) IS NULL AS missing_ok;
SELECT current_setting('diff.nope');
SELECT name, setting, source FROM pg_settings
 WHERE source NOT IN ('default', 'override', 'configuration file')
 ORDER BY name;
SHOW ALL;
SET work_mem = '8MB';
SELECT name, setting, unit, source FROM pg_settings WHERE name = 'work_mem';
RESET work_mem;
SELECT name, source FROM pg_settings WHERE name = 'work_mem';
