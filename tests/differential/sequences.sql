-- Sequences: currval and lastval before and after nextval in this
-- session, setval, cycling and limits, and sequences of identity columns.
-- Session mode only: currval() and lastval() answer from the backend's
-- own memory of its last nextval(), which is session state that does not
-- pin in transaction mode (pinning on nextval would pin every client that
-- inserts into a serial column), so there a later transaction on another
-- server says "not yet defined in this session", or gives the value of
-- whichever client used that server last. README lists it among what
-- still differs; tx_sequences.sql checks what does hold there.
CREATE SEQUENCE diff_seq START 100 INCREMENT 5 MAXVALUE 120 CYCLE;
SELECT currval('diff_seq');
SELECT lastval();
SELECT nextval('diff_seq');
SELECT currval('diff_seq'), lastval();
SELECT nextval('diff_seq'), nextval('diff_seq'), nextval('diff_seq'), nextval('diff_seq'), nextval('diff_seq');
SELECT setval('diff_seq', 110);
SELECT nextval('diff_seq');
SELECT setval('diff_seq', 105, false);
SELECT nextval('diff_seq');
CREATE SEQUENCE diff_seq2 MAXVALUE 2;
SELECT nextval('diff_seq2'), nextval('diff_seq2');
SELECT nextval('diff_seq2');
SELECT lastval();
CREATE TABLE diff_ident (id int GENERATED ALWAYS AS IDENTITY, v text);
INSERT INTO diff_ident (v) VALUES ('a'), ('b') RETURNING id;
SELECT lastval();
INSERT INTO diff_ident (id, v) VALUES (9, 'c');
SELECT currval(pg_get_serial_sequence('diff_ident', 'id'));
BEGIN;
SELECT nextval('diff_seq');
ROLLBACK;
SELECT currval('diff_seq');
DROP SEQUENCE diff_seq;
SELECT lastval();
SELECT currval('diff_seq');
DROP SEQUENCE diff_seq2;
DROP TABLE diff_ident;
SELECT nextval('diff_nosuch');
