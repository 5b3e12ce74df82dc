"""psycopg2 through sluice in transaction mode.

Parameterized queries, transactions spread over several servers, errors,
notices, COPY both ways and a 100 MB result. Connection from the
environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE). Prints
"ok NAME" or "FAIL NAME: why" per check; exit status 1 if any failed.
"""
import io
import sys
import threading
import time
import traceback

import psycopg2

failed = 0


def check(name):
    def wrap(fn):
        global failed
        t0 = time.time()
        try:
            fn()
            print(f"ok {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {name}: {traceback.format_exc()}", flush=True)
        return fn
    return wrap


def connect():
    c = psycopg2.connect("")
    c.autocommit = True
    return c


@check("parameterized")
def _():
    c = connect()
    cur = c.cursor()
    cur.execute("SELECT %s::int + %s::int, %s::text", (2, 40, "héllo"))
    assert cur.fetchone() == (42, "héllo")
    c.close()


@check("transactions over several servers")
def _():
    pids = set()
    errors = []

    def worker(n):
        try:
            c = psycopg2.connect("")
            cur = c.cursor()
            for i in range(30):
                cur.execute("SELECT pg_backend_pid(), %s::int * 2", (i,))
                pid, v = cur.fetchone()
                assert v == 2 * i
                pids.add(pid)
                c.commit()
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(pids) >= 2, f"expected several servers, saw {pids}"


@check("errors keep the session usable")
def _():
    c = connect()
    cur = c.cursor()
    try:
        cur.execute("SELECT 1/0")
        raise AssertionError("no error")
    except psycopg2.Error as e:
        assert e.pgcode == "22012", e.pgcode
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.autocommit = False
    try:
        cur.execute("SELECT * FROM no_such_table_xyz")
    except psycopg2.Error as e:
        assert e.pgcode == "42P01", e.pgcode
    c.rollback()
    cur.execute("SELECT 2")
    assert cur.fetchone() == (2,)
    c.rollback()
    c.close()


@check("notices")
def _():
    c = connect()
    cur = c.cursor()
    cur.execute("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$")
    assert any("hello from plpgsql" in n for n in c.notices), c.notices
    c.close()


@check("copy in and out")
def _():
    c = connect()
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS py_copy; CREATE TABLE py_copy (id int, name text)")
    data = "".join(f"{i}\tname {i}\n" for i in range(5000))
    cur.copy_expert("COPY py_copy FROM STDIN", io.StringIO(data))
    cur.execute("SELECT count(*), sum(id) FROM py_copy")
    assert cur.fetchone() == (5000, 4999 * 5000 // 2)
    out = io.StringIO()
    cur.copy_expert("COPY py_copy TO STDOUT", out)
    assert out.getvalue() == data
    cur.execute("DROP TABLE py_copy")
    c.close()


@check("100 MB result")
def _():
    c = connect()
    cur = c.cursor()
    cur.execute("SELECT repeat('x', 1000) FROM generate_series(1, 100000)")
    total = 0
    rows = 0
    for (v,) in cur:
        total += len(v)
        rows += 1
    assert rows == 100000 and total == 100_000_000, (rows, total)
    c.close()


print(f"psycopg2 checks: {failed} failed", flush=True)
sys.exit(1 if failed else 0)
