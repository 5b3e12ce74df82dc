-- sluice's invalidation helper: writes made outside sluice invalidate its
-- result cache too.
--
-- Statement-level AFTER INSERT / UPDATE / DELETE / TRUNCATE triggers
-- NOTIFY the channel sluice_invalidate with the schema-qualified name of
-- the table written ("public.orders"). With [cache] invalidation = notify
-- and a notify.<database> = <libpq connection string>, sluice LISTENs on
-- that channel and bumps the table's generation in Redis exactly as a
-- write through sluice does, so every sluice instance drops its entries.
-- PostgreSQL delivers a notification only when its transaction commits,
-- and one per table per transaction however many rows or statements
-- wrote it, so a rolled-back write bumps nothing and a bulk load costs
-- one notification.
--
-- Install (as a role that may create functions and triggers on the tables):
--     psql -d mydb -f sql/sluice_notify.sql
--     SELECT sluice.watch_table('public.orders');   -- one table
--     SELECT sluice.watch_schema('public');          -- every table of a schema
--     SELECT sluice.unwatch_table('public.orders');  -- remove it again
-- Running this file again replaces the functions and keeps the triggers.
-- Tables created later need their own watch_table (or watch_schema again).
--
-- A partition notifies its own name and its partitioned root's, so reads
-- of either are invalidated by writes made to the partition directly.

CREATE SCHEMA IF NOT EXISTS sluice;

-- The trigger: NOTIFY each name it was given (by watch_table), or the
-- table it fired on when given none.
CREATE OR REPLACE FUNCTION sluice.notify_write() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    n text;
BEGIN
    IF TG_NARGS = 0 THEN
        PERFORM pg_notify('sluice_invalidate', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    ELSE
        FOREACH n IN ARRAY TG_ARGV LOOP
            PERFORM pg_notify('sluice_invalidate', n);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

-- Install (or replace) the trigger sluice_notify on <tbl>.
CREATE OR REPLACE FUNCTION sluice.watch_table(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    kind "char";
    self text;
    root regclass;
    args text;
BEGIN
    SELECT c.relkind, n.nspname || '.' || c.relname
      INTO kind, self
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'sluice.watch_table: % is not a table', tbl
            USING HINT = 'Views, sequences and foreign tables have no write trigger here; '
                         'watch the tables they read.';
    END IF;
    args := quote_literal(self);
    root := pg_partition_root(tbl);
    IF root IS NOT NULL AND root <> tbl THEN
        SELECT args || ', ' || quote_literal(n.nspname || '.' || c.relname)
          INTO args
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = root;
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS sluice_notify ON %s', tbl);
    EXECUTE format('CREATE TRIGGER sluice_notify '
                   'AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION sluice.notify_write(%s)',
                   tbl, args);
END
$$;

-- watch_table on every table of schema <sch> (partitions included);
-- returns how many.
CREATE OR REPLACE FUNCTION sluice.watch_schema(sch name) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    t regclass;
    n integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = sch) THEN
        RAISE EXCEPTION 'sluice.watch_schema: no schema %', quote_ident(sch);
    END IF;
    FOR t IN SELECT c.oid::regclass
               FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
              WHERE s.nspname = sch AND c.relkind IN ('r', 'p')
              ORDER BY c.oid
    LOOP
        PERFORM sluice.watch_table(t);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Remove the trigger from <tbl>.
CREATE OR REPLACE FUNCTION sluice.unwatch_table(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS sluice_notify ON %s', tbl);
END
$$;
