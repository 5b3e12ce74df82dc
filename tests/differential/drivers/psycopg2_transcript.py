"""psycopg2 (libpq) transcript for the differential check.

Runs a fixed series of behaviours and prints, one line each, what the
driver observed: rows with their Python types, every diagnostic field of
each error, notices, notifications, parameter statuses, transaction
status, large objects through libpq's fast-path calls, COPY both ways.
test_differential.py runs it straight against PostgreSQL and through
sluice with the same environment and compares the two transcripts; so it
prints nothing that differs between two sessions on its own (a pid only as
whether it equals another). Connection from PG* variables;
DIFF_MODE=transaction leaves out what transaction mode does not promise
(the pid of BackendKeyData is sluice's own there).
"""
import io
import os
import sys

import psycopg2
import psycopg2.extensions

MODE = os.environ.get("DIFF_MODE", "session")
DIAG = ["severity", "severity_nonlocalized", "sqlstate", "message_primary", "message_detail",
        "message_hint", "statement_position", "internal_position", "internal_query", "context",
        "schema_name", "table_name", "column_name", "datatype_name", "constraint_name",
        "source_function"]


def out(*parts):
    print(" | ".join(str(p) for p in parts), flush=True)


def typed(rows):
    """Each value with its Python type (a bytea's memoryview as its bytes)."""
    return [tuple((type(v).__name__, bytes(v) if isinstance(v, memoryview) else v) for v in r)
            for r in rows]


def run(cur, sql, args=None):
    """Execute and print the outcome: rows, status, or the error's fields."""
    conn = cur.connection
    try:
        cur.execute(sql, args)
        res = typed(cur.fetchall()) if cur.description else None
        cols = [(d.name, d.type_code) for d in cur.description] if cur.description else None
        out("ok", sql[:60], cur.statusmessage, cur.rowcount, cols, res)
    except psycopg2.Error as e:
        d = e.diag
        out("error", sql[:60], type(e).__name__, e.pgcode,
            {k: getattr(d, k) for k in DIAG if getattr(d, k) is not None})
        if not conn.autocommit and conn.info.transaction_status == \
                psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            out("in failed transaction")
    while conn.notices:
        out("notice", conn.notices.pop(0).rstrip())
    conn.poll()
    while conn.notifies:
        n = conn.notifies.pop(0)
        out("notify", n.channel, n.payload, pid_note(n.pid, conn))
    out("status", conn.info.transaction_status)


_pids = {}


def pid_note(pid, conn):
    """Whether a notification came from <conn>'s backend. Not asked in
    transaction mode, where <conn> moves between servers once unpinned."""
    if MODE != "session":
        return "pid not compared"
    return "from its pid" if pid == own_pid(conn) else "from another pid"


def own_pid(conn):
    if id(conn) not in _pids:
        c = conn.cursor()
        c.execute("SELECT pg_backend_pid()")
        _pids[id(conn)] = c.fetchone()[0]
    return _pids[id(conn)]


def main():
    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    out("server_version", conn.server_version, conn.protocol_version)
    for p in ("server_version", "server_encoding", "client_encoding", "application_name",
              "is_superuser", "session_authorization", "DateStyle", "IntervalStyle",
              "TimeZone", "integer_datetimes", "standard_conforming_strings",
              "default_transaction_read_only", "in_hot_standby"):
        out("parameter", p, conn.get_parameter_status(p))
    if MODE == "session":
        # BackendKeyData's pid is the server's own in session mode
        c = conn.cursor()
        c.execute("SELECT pg_backend_pid()")
        out("backend pid is BackendKeyData's", c.fetchone()[0] == conn.get_backend_pid())
    for sql, args in [
        ("SELECT %s::int + %s::int, %s::text, %s::numeric, %s::date, %s::bytea",
         (2, 40, "h\u00e9llo", "1.50", "2024-03-10", b"\x00\x01")),
        ("SELECT 1 +", None),
        ("SELECT nosuch FROM (SELECT 1 AS such) s", None),
        ("SELECT 1 / 0", None),
        ("", None),
        ("-- only a comment", None),
        ("SELECT 1; SELECT 2, 3", None),
        ("SELECT 1; SELECT 1/0; SELECT 3", None),
        ("CREATE TEMP TABLE diff_p (id int PRIMARY KEY, n int CHECK (n > 0))", None),
        ("INSERT INTO diff_p VALUES (1, 1), (2, 2)", None),
        ("INSERT INTO diff_p VALUES (1, 5)", None),
        ("INSERT INTO diff_p VALUES (3, -1)", None),
        ("UPDATE diff_p SET n = n + 1 RETURNING id, n", None),
        ("DO $$ BEGIN RAISE NOTICE 'n %', 1; RAISE WARNING 'w' USING HINT = 'h'; END $$", None),
        ("DO $$ BEGIN RAISE EXCEPTION 'e' USING ERRCODE = 'P0042', DETAIL = 'd', HINT = 'h',"
         " SCHEMA = 's', TABLE = 't', COLUMN = 'c', CONSTRAINT = 'k', DATATYPE = 'dt'; END $$",
         None),
        ("SELECT (SELECT 1 FROM diff_p) AS one", None),
        ("SELECT 'abc'::int", None),
        ("SET DateStyle = 'German'", None),
        ("SELECT date '2024-03-10'::text, now() IS NOT NULL", None),
        ("RESET DateStyle", None),
        ("SET TimeZone = 'Asia/Tokyo'", None),
        ("SELECT timestamptz '2024-03-10 12:00:00+00'", None),
        ("RESET TimeZone", None),
        ("LISTEN diff_chan", None),
        ("NOTIFY diff_chan, 'payload'", None),
        ("SELECT pg_notify('diff_chan', 'by function')", None),
        ("UNLISTEN *", None),
        ("SELECT pg_sleep(0.3)", None),
    ]:
        if sql == "SELECT pg_sleep(0.3)":
            cur.execute("SET statement_timeout = '50ms'")
            run(cur, sql)
            cur.execute("RESET statement_timeout")
            continue
        run(cur, sql, args)
    for p in ("DateStyle", "TimeZone", "application_name"):
        out("parameter after", p, conn.get_parameter_status(p))

    # a cancel request (PQcancel with the key of BackendKeyData) stops the
    # running statement and nothing else
    import threading
    timer = threading.Timer(0.3, conn.cancel)
    timer.start()
    run(cur, "SELECT pg_sleep(10)")
    timer.join()
    run(cur, "SELECT 'usable after the cancel'")

    # transactions, savepoints and errors inside, as psycopg2 runs them
    conn.autocommit = False
    run(cur, "INSERT INTO diff_p VALUES (10, 10)")
    run(cur, "SAVEPOINT a")
    run(cur, "INSERT INTO diff_p VALUES (10, 10)")
    run(cur, "SELECT 1")
    run(cur, "ROLLBACK TO SAVEPOINT a")
    run(cur, "SELECT count(*) FROM diff_p")
    conn.commit()
    out("status after commit", conn.info.transaction_status)
    run(cur, "SELECT 1 / 0")
    conn.rollback()
    run(cur, "SELECT count(*) FROM diff_p")
    conn.rollback()
    conn.autocommit = True

    # COPY both ways
    cur.copy_expert("COPY diff_p FROM STDIN WITH (FORMAT csv)", io.StringIO("20,20\n21,21\n"))
    out("copy in", cur.rowcount)
    buf = io.StringIO()
    cur.copy_expert("COPY (SELECT * FROM diff_p ORDER BY id) TO STDOUT WITH (FORMAT csv)", buf)
    out("copy out", cur.rowcount, buf.getvalue().splitlines())
    try:
        cur.copy_expert("COPY diff_p FROM STDIN WITH (FORMAT csv)", io.StringIO("30,x\n"))
    except psycopg2.Error as e:
        out("copy error", e.pgcode, e.diag.message_primary, e.diag.context)

    # large objects: libpq's lo_* calls use the fast-path FunctionCall message
    conn.autocommit = False
    try:
        lo = conn.lobject(0, "wb", 917101)
        out("lo write", lo.write(b"large object data"), lo.oid)
        lo.seek(6)
        out("lo tell", lo.tell())
        lo.close()
        lo = conn.lobject(917101, "rb")
        out("lo read", lo.read())
        lo.close()
        conn.lobject(917101).unlink()
        conn.commit()
        try:
            conn.lobject(917101, "rb")
        except psycopg2.Error as e:
            out("lo error", type(e).__name__, e.pgcode, str(e).strip())
        conn.rollback()
    except psycopg2.Error as e:
        out("lo failed", e.pgcode, e.diag.message_primary)
    finally:
        conn.rollback()
        conn.autocommit = True

    # a second connection: notifications between two sessions
    other = psycopg2.connect("")
    other.autocommit = True
    run(cur, "LISTEN diff_two")
    oc = other.cursor()
    oc.execute("NOTIFY diff_two, 'from the other'")
    conn.poll()
    import select
    if not conn.notifies:
        select.select([conn], [], [], 5)
        conn.poll()
    for n in conn.notifies:
        out("notify", n.channel, n.payload, pid_note(n.pid, other))
    del conn.notifies[:]
    run(cur, "UNLISTEN *")
    other.close()
    run(cur, "DISCARD ALL")
    conn.close()
    out("done")


if __name__ == "__main__":
    sys.exit(main())
