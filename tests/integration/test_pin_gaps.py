"""Transaction mode, the session-state gaps pins left (issue 12 item 3).

- currval() / lastval() never read another client's sequence values: a
  client that lands on a server where someone else advanced a sequence
  gets PostgreSQL's own 55000 "not yet defined in this session", as a
  fresh session would, while nextval() pins nothing (pin_hooks.c sends a
  hidden DISCARD SEQUENCES before such a client's first read there).
- UNLISTEN x, pg_advisory_unlock[_shared](k) and DROP of temporary objects
  end a pin once nothing of its kind is left: sluice asks the server (one
  hidden query) after such a statement, and the client sees nothing of it.

Each is compared with what a direct connection to PostgreSQL says.
"""
import threading

import psycopg2

from harness import (M_SYNC, Closed, TestFailure, check, m_bind, m_execute, m_parse,
                     m_query, parse_fields, run_threads, test, wait_until)
from test_pinning import after_unpin, one, pins

ONE = {"pool_mode": "transaction", "default_pool_size": "1", "min_pool_size": "1"}
FIVE = {"pool_mode": "transaction", "default_pool_size": "5", "min_pool_size": "5"}


def error_of(conn, sql):
    """(SQLSTATE, message) of <sql>, which must fail."""
    try:
        one(conn, sql)
    except psycopg2.Error as e:
        return e.pgcode, e.diag.message_primary
    raise TestFailure(f"{sql} did not fail")


def direct(env):
    c = env.pg.connect(dbname="app")
    return c


def pinned_now(s):
    return sum(v[0] for v in pins(s).values())


# ---- 1. currval() / lastval() ----

@test("pin_gaps.currval_of_another_client", timeout=60)
def t_currval_other(env):
    """One server: A's nextval() and serial insert must not show in B's
    currval() / lastval(), which fail as in a fresh direct session."""
    s = env.sluice(settings=ONE)
    a, b = s.connect(), s.connect()
    d = direct(env)
    try:
        one(a, "CREATE SEQUENCE IF NOT EXISTS gap_seq")
        one(a, "CREATE TABLE IF NOT EXISTS gap_serial (id serial, v text)")
        want_cur = error_of(d, "SELECT currval('gap_seq')")
        want_last = error_of(d, "SELECT lastval()")
        check(want_cur[0] == "55000" and want_last[0] == "55000",
              f"PostgreSQL itself: {want_cur} {want_last}")

        pid = one(a, "SELECT pg_backend_pid()")[0]
        v = one(a, "SELECT nextval('gap_seq')")[0]
        # A keeps its own value in its next transaction on the same server
        check(one(a, "SELECT currval('gap_seq')")[0] == v, "A lost its own currval")
        check(one(b, "SELECT pg_backend_pid()")[0] == pid, "one server for both")
        got = error_of(b, "SELECT currval('gap_seq')")
        check(got == want_cur, f"B's currval after A's nextval: {got}, directly {want_cur}")
        got = error_of(b, "SELECT lastval()")
        check(got == want_last, f"B's lastval after A's nextval: {got}, directly {want_last}")

        one(a, "INSERT INTO gap_serial (v) VALUES ('a')")
        got = error_of(b, "SELECT lastval()")
        check(got == want_last, f"B's lastval after A's insert: {got}")
        one(a, "INSERT INTO gap_serial (v) VALUES ('b')")
        got = error_of(b, "SELECT currval(pg_get_serial_sequence('gap_serial', 'id'))")
        check(got[0] == "55000", f"B's currval of A's serial: {got}")
    finally:
        for c in (a, b, d):
            c.close()
    # and none of it pinned anyone
    check(pinned_now(s) == 0, f"nextval pinned: {pins(s)}")


@test("pin_gaps.currval_own_values", timeout=60)
def t_currval_own(env):
    """What a client advanced itself stays readable: in the transaction
    that advanced it, in a later one (INSERT, then SELECT lastval() as PHP's
    lastInsertId does), and in one Query with both."""
    s = env.sluice(settings=ONE)
    a, b = s.connect(), s.connect()
    try:
        one(a, "CREATE SEQUENCE IF NOT EXISTS gap_seq2")
        one(a, "CREATE TABLE IF NOT EXISTS gap_serial2 (id serial, v text)")
        one(b, "SELECT nextval('gap_seq2')")  # the server was another's first
        a.autocommit = False
        v = one(a, "SELECT nextval('gap_seq2')")[0]
        check(one(a, "SELECT currval('gap_seq2')")[0] == v, "in its own transaction")
        a.commit()
        a.autocommit = True
        check(one(a, "SELECT lastval()")[0] == v, "in its next transaction")
        one(a, "INSERT INTO gap_serial2 (v) VALUES ('x')")
        n = one(a, "SELECT lastval()")[0]
        check(n == one(a, "SELECT max(id) FROM gap_serial2")[0], "lastval after an insert")
        cur = a.cursor()
        cur.execute("INSERT INTO gap_serial2 (v) VALUES ('y'); SELECT lastval()")
        check(cur.fetchone()[0] == n + 1, "insert and lastval in one Query")
        one(b, "SELECT nextval('gap_seq2')")
        # B used the server in between: in one transaction, the insert's
        # value is there for the currval after it
        a.autocommit = False
        one(a, "INSERT INTO gap_serial2 (v) VALUES ('z')")
        check(one(a, "SELECT currval(pg_get_serial_sequence('gap_serial2', 'id'))")[0]
              == n + 2, "currval after an insert in one transaction")
        a.commit()
    finally:
        a.close()
        b.close()


@test("pin_gaps.currval_never_leaks_concurrently", timeout=120)
def t_currval_hammer(env):
    """20 clients on 5 servers, each advancing one shared sequence and
    reading currval() / lastval() in its next transaction: each either
    gets its own latest value or 55000, never another client's."""
    s = env.sluice(settings=FIVE)
    c0 = s.connect()
    one(c0, "CREATE SEQUENCE IF NOT EXISTS gap_hseq")
    c0.close()
    lock = threading.Lock()
    tally = {"own": 0, "undefined": 0}

    def body(i):
        c = s.connect()
        mine = None
        try:
            for r in range(30):
                if r % 3 == 0:
                    mine = one(c, "SELECT nextval('gap_hseq')")[0]
                    continue
                sql = "SELECT currval('gap_hseq')" if r % 2 else "SELECT lastval()"
                try:
                    got = one(c, sql)[0]
                except psycopg2.Error as e:
                    if e.pgcode != "55000":
                        raise
                    with lock:
                        tally["undefined"] += 1
                    continue
                if got != mine:
                    raise TestFailure(f"client {i}: {sql} gave {got}, its own is {mine}")
                with lock:
                    tally["own"] += 1
        finally:
            c.close()

    errors = run_threads(20, body)
    check(not errors, "; ".join(errors[:3]))
    check(tally["own"] > 0, f"no client ever read its own value: {tally}")
    check(pinned_now(s) == 0, f"pinned: {pins(s)}")


@test("pin_gaps.currval_extended_protocol", timeout=60)
def t_currval_extended(env):
    """The same through Parse/Bind/Execute, with a named statement
    prepared before the other client advanced the sequence (its Bind is
    then the first message of the batch)."""
    s = env.sluice(settings=ONE)
    a = s.connect()
    w = s.wire()
    try:
        one(a, "CREATE SEQUENCE IF NOT EXISTS gap_xseq")
        one(a, "SELECT nextval('gap_xseq')")  # so that currval is defined for A only
        w.send(m_parse("gap_cur", "SELECT currval('gap_xseq')") + M_SYNC)
        w.collect()
        for first in (m_parse("", "SELECT lastval()") + m_bind("", ""),
                      m_bind("", "gap_cur")):
            one(a, "SELECT nextval('gap_xseq')")
            w.send(first + m_execute() + M_SYNC)
            msgs = w.collect()
            errs = [parse_fields(p) for t, p in msgs if t == b"E"]
            rows = [p for t, p in msgs if t == b"D"]
            check(not rows and errs and errs[0].get("C") == "55000",
                  f"B's extended {first[:1]!r}: rows {rows}, errors {errs}")
    finally:
        a.close()
        w.close()


# ---- 2. partial ends ----

def partial_scenario(env, reason, make, partial, rest, probe_sql):
    """<make> pins for <reason>; each of <partial> leaves some of it (still
    pinned; <probe_sql> counts what is left, as directly), then <rest>
    ends the last of it: unpinned."""
    s = env.sluice(settings=dict(FIVE, default_pool_size="2", min_pool_size="2"))
    a = s.connect()
    try:
        for sql in make:
            one(a, sql)
        check(pins(s).get(reason, (0, 0))[0] == 1, f"{make}: not pinned ({pins(s)})")
        pid = one(a, "SELECT pg_backend_pid()")[0]
        for sql in partial:
            one(a, sql)
            check(pins(s).get(reason, (0, 0))[0] == 1,
                  f"after {sql}: unpinned with state left ({pins(s)})")
            check(one(a, probe_sql)[0] > 0, f"after {sql}: nothing left?")
            check(one(a, "SELECT pg_backend_pid()")[0] == pid, "moved while pinned")
        for sql in rest:
            one(a, sql)
        check(one(a, probe_sql)[0] == 0, f"after {rest}: state left")
        check(wait_until(lambda: pins(s).get(reason, (0, 0))[0] == 0, 5),
              f"after {rest}: still pinned ({pins(s)})")
        after_unpin(env, s, pid, reason, a)
    finally:
        a.close()


@test("pin_gaps.unlisten_one", timeout=60)
def t_unlisten(env):
    partial_scenario(env, "listen", ["LISTEN gap_a", "LISTEN gap_b"], ["UNLISTEN gap_a"],
                     ["UNLISTEN gap_b"], "SELECT count(*) FROM pg_listening_channels()")


@test("pin_gaps.advisory_unlock", timeout=60)
def t_unlock(env):
    q = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
         "AND pid = pg_backend_pid()")
    partial_scenario(env, "advisory_lock",
                     ["SELECT pg_advisory_lock(9101)", "SELECT pg_advisory_lock(9101)",
                      "SELECT pg_advisory_lock_shared(9102)"],
                     ["SELECT pg_advisory_unlock(9101)", "SELECT pg_advisory_unlock(9101)"],
                     ["SELECT pg_advisory_unlock_shared(9102)"], q)


@test("pin_gaps.drop_temp", timeout=60)
def t_drop_temp(env):
    q = ("SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())"
         " + (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema())")
    partial_scenario(env, "temp",
                     ["CREATE TEMP TABLE gap_t1 (x int)", "CREATE TEMP TABLE gap_t2 (x int)",
                      "CREATE FUNCTION pg_temp.gap_f() RETURNS int LANGUAGE sql AS 'select 1'"],
                     ["DROP TABLE gap_t1", "DROP TABLE gap_t2"],
                     ["DROP FUNCTION pg_temp.gap_f()"], q)


@test("pin_gaps.question_is_hidden", timeout=60)
def t_hidden(env):
    """The client sees nothing of the question: after UNLISTEN x its
    replies are exactly those of a direct connection, in the simple and
    the extended protocol, and SHOW QUERIES lists nothing of sluice's."""
    s = env.sluice(settings=dict(FIVE, default_pool_size="2", min_pool_size="2"))
    w = s.wire()
    try:
        for sql, want in (("LISTEN gap_h1", b"LISTEN"), ("LISTEN gap_h2", b"LISTEN"),
                          ("UNLISTEN gap_h1", b"UNLISTEN"), ("SELECT 42", None),
                          ("UNLISTEN gap_h2", b"UNLISTEN"), ("SELECT 43", None)):
            w.send(m_query(sql))
            got = [t for t, _ in w.collect()]
            check(got == ([b"C", b"Z"] if want else [b"T", b"D", b"C", b"Z"]),
                  f"{sql}: messages {got}")
        w.settimeout(0.5)
        try:
            extra = w.read_msg()
            raise TestFailure(f"an extra message after the last reply: {extra}")
        except (TimeoutError, OSError, Closed):
            pass
        w.settimeout(10)
        check(w.status == b"I", f"status {w.status}")
        check(wait_until(lambda: pins(s).get("listen", (0, 0))[0] == 0, 5),
              f"still pinned: {pins(s)}")
    finally:
        w.close()
    a = s.connect(user="admin", dbname="sluice")
    try:
        cur = a.cursor()
        cur.execute("SHOW QUERIES")
        cols = [d[0] for d in cur.description]
        qi = cols.index("query")
        texts = [r[qi] for r in cur.fetchall()]
        check(not [t for t in texts if "pg_catalog.pg_listening_channels" in t],
              f"the question shows in SHOW QUERIES: {texts}")
    finally:
        a.close()
