-- Results bigger than any buffer: many rows of growing width, a wide
-- row, an error after thousands of rows were already sent, and a large
-- COPY TO STDOUT. Unaligned output keeps the text a few megabytes.
-- sluice: transaction
\pset format unaligned
SELECT g, repeat(chr(65 + g % 26), g % 1500) AS filler FROM generate_series(1, 4000) g;
SELECT length(repeat('y', 3000000)) AS len, md5(repeat('y', 3000000)) AS sum;
SELECT repeat('z', 1000000) AS one_wide_value;
SELECT g, 1 / (g - 3000) AS boom FROM generate_series(1, 5000) g;
SELECT 'after the error' AS still;
COPY (SELECT g, md5(g::text), repeat('c', g % 700) FROM generate_series(1, 6000) g) TO STDOUT;
SELECT string_agg(md5(g::text), '') AS joined FROM generate_series(1, 20000) g;
\pset format aligned
SELECT count(*) FROM generate_series(1, 300000);
