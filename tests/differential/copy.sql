-- COPY TO STDOUT and FROM STDIN in text and CSV, with a bad row, with
-- column lists and a query, and COPY inside a transaction that fails.
-- sluice: transaction
CREATE TABLE diff_copy (id int PRIMARY KEY, name text, price numeric(8,2), tags text[]);
COPY diff_copy FROM STDIN;
1	apple	1.20	{red,green}
2	banana	0.50	{yellow}
3	\N	9.99	{}
\.
COPY diff_copy (id, name) FROM STDIN WITH (FORMAT csv, HEADER true);
id,name
4,"cherry, dark"
5,"quote "" inside"
\.
COPY diff_copy TO STDOUT;
COPY diff_copy TO STDOUT WITH (FORMAT csv, HEADER true, FORCE_QUOTE (name));
COPY (SELECT id, upper(name) FROM diff_copy WHERE id > 2 ORDER BY id) TO STDOUT WITH (FORMAT csv);
COPY diff_copy FROM STDIN;
6	fig	2.00	{}
7	grape	notanumber	{}
\.
COPY diff_copy FROM STDIN;
1	duplicate	0	{}
\.
COPY diff_copy (nosuch) FROM STDIN;
\.
SELECT count(*) FROM diff_copy;
BEGIN;
COPY diff_copy FROM STDIN;
8	kiwi	3.00	{}
\.
SELECT count(*) FROM diff_copy;
COPY diff_copy FROM STDIN;
9	lemon	x	{}
\.
SELECT count(*) FROM diff_copy;
ROLLBACK;
SELECT count(*) FROM diff_copy;
COPY diff_copy TO STDOUT WITH (FORMAT text, DELIMITER '|', NULL 'NULL');
COPY diff_copy FROM STDOUT;
COPY diff_copy TO STDIN;
DROP TABLE diff_copy;
