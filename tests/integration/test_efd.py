"""extra_float_digits follows its client in transaction mode (proxy/vars.c, pin_hooks.c).

PostgreSQL does not report extra_float_digits (no ParameterStatus), and
PgJDBC sends `SET extra_float_digits = 3` right after connecting: were that
SET a pin like any other, every JDBC client would keep its server for life.
Sluice reads the value from the text of an autocommit SET that succeeded and
sets it on whichever server the client lands on next, resetting it for
clients that never set it. A SET inside a transaction block, which a
ROLLBACK may undo, still pins, and nothing of it reaches other clients.
"""
import os
import select
import shutil
import subprocess
import time

from harness import (M_SYNC, check, m_bind, m_execute, m_parse, m_query, parse_fields, test,
                     wait_until)
from test_pinning import pins

TX = {"pool_mode": "transaction", "default_pool_size": "2", "min_pool_size": "2"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JDBC_JAR = "/usr/share/java/postgresql.jar"
PROBE = "SELECT pg_backend_pid(), current_setting('extra_float_digits')"


def set_pins(s):
    return pins(s).get("set", (0, 0))


def probe_psycopg(c):
    cur = c.cursor()
    cur.execute(PROBE)
    pid, efd = cur.fetchone()
    cur.close()
    return int(pid), efd


def probe_wire(w):
    rows = w.query(PROBE)
    return int(rows[0][0]), rows[0][1]


def tour(s, probe_setter, rounds=2):
    """The setter (<probe_setter>() runs PROBE in a transaction of its own)
    and two clients that never set anything take turns on the two servers
    of the pool, the latter holding one server in an open transaction so
    that the setter gets the other. Returns what each saw: ({pid: {efd}}
    of the setter, {pid: {efd}} of the others)."""
    mine, theirs = {}, {}
    h1, h2 = s.connect(autocommit=False), s.connect(autocommit=False)

    def held(c):
        pid, efd = probe_psycopg(c)
        theirs.setdefault(pid, set()).add(efd)

    def setter():
        pid, efd = probe_setter()
        mine.setdefault(pid, set()).add(efd)

    try:
        for _ in range(rounds):
            held(h1)          # h1 holds A
            held(h2)          # h2 holds B
            h1.rollback()
            setter()          # on A
            held(h1)          # A again, right after the setter
            h2.rollback()
            setter()          # on B
            held(h2)          # B again
            h1.rollback()
            h2.rollback()
    finally:
        h1.close()
        h2.close()
    return mine, theirs


def check_follows(s, probe_setter, want):
    # a pinned setter would leave the holders one server: they would wait
    check(set_pins(s)[0] == 0, f"pinned before the tour for {want}: SHOW PINS {pins(s)}")
    mine, theirs = tour(s, probe_setter)
    check(len(mine) == 2, f"the setter used servers {sorted(mine)} only: it is pinned, or the "
          "test proves nothing")
    check(all(v == {want} for v in mine.values()),
          f"the setter saw extra_float_digits {mine}, want {want} on every server")
    check(len(theirs) == 2, f"the other client used servers {sorted(theirs)} only")
    check(all(v == {"1"} for v in theirs.values()),
          f"a client that never set extra_float_digits saw {theirs}, want the default 1")


def after_setter_left(s):
    """No server keeps a value for the next client."""
    c = s.connect()
    try:
        check_follows(s, lambda: probe_psycopg(c), "1")
    finally:
        c.close()


def no_set_pin(s, before, what):
    got = set_pins(s)
    check(got == (0, before[1]), f"{what} pinned its client: SHOW PINS set {got} "
          f"(before {before})")


@test("efd.simple_query")
def t_simple(env):
    s = env.sluice(settings=TX)
    before = set_pins(s)
    a = s.connect()
    try:
        a.cursor().execute("SET extra_float_digits = 3")
        no_set_pin(s, before, "SET extra_float_digits = 3")
        check_follows(s, lambda: probe_psycopg(a), "3")
        # the same shape with another literal: the value comes from each text
        a.cursor().execute("SET SESSION extra_float_digits TO '0'")
        check_follows(s, lambda: probe_psycopg(a), "0")
        a.cursor().execute("RESET extra_float_digits")
        check_follows(s, lambda: probe_psycopg(a), "1")
        a.cursor().execute("SET extra_float_digits = 2")
        a.cursor().execute("SET extra_float_digits TO DEFAULT")
        check_follows(s, lambda: probe_psycopg(a), "1")
        no_set_pin(s, before, "RESET extra_float_digits")
        # the forms that set back every parameter set it back too
        for reset in ("RESET ALL", "DISCARD ALL"):
            a.cursor().execute("SET extra_float_digits = 3")
            check_follows(s, lambda: probe_psycopg(a), "3")
            a.cursor().execute(reset)
            check_follows(s, lambda: probe_psycopg(a), "1")
        no_set_pin(s, before, "RESET ALL")
    finally:
        a.close()
    after_setter_left(s)


@test("efd.extended_protocol")
def t_extended(env):
    s = env.sluice(settings=TX)
    before = set_pins(s)
    w = s.wire()
    try:
        # the unnamed statement, as PgJDBC sends it right after login
        w.send(m_parse("", "SET extra_float_digits = 3") + m_bind("", "") + m_execute()
               + M_SYNC)
        msgs = w.collect()
        check([t for t, _ in msgs] == [b"1", b"2", b"C", b"Z"], f"SET: {msgs}")
        no_set_pin(s, before, "an extended-protocol SET")
        check_follows(s, lambda: probe_wire(w), "3")
        # a named statement, executed later (perhaps on another server)
        w.send(m_parse("efd2", "SET extra_float_digits = 2") + M_SYNC)
        w.collect()
        check_follows(s, lambda: probe_wire(w), "3")
        w.send(m_bind("", "efd2") + m_execute() + M_SYNC)
        msgs = w.collect()
        check(not [p for t, p in msgs if t == b"E"], f"Bind efd2: {msgs}")
        no_set_pin(s, before, "a named SET statement")
        check_follows(s, lambda: probe_wire(w), "2")
    finally:
        w.close()
    after_setter_left(s)


@test("efd.rollback_and_errors_leave_nothing")
def t_rollback(env):
    s = env.sluice(settings=TX)
    before = set_pins(s)
    a = s.connect()
    try:
        cur = a.cursor()
        cur.execute("SET extra_float_digits = 2")
        check_follows(s, lambda: probe_psycopg(a), "2")
        # inside a transaction block: PostgreSQL undoes it on ROLLBACK, and
        # sluice pins as for any SET rather than follow it
        cur.execute("BEGIN")
        cur.execute("SET extra_float_digits = 3")
        cur.execute("ROLLBACK")
        got = set_pins(s)
        check(got == (1, before[1] + 1), f"SET in a transaction block: SHOW PINS set {got}")
        check(probe_psycopg(a)[1] == "2", "the rolled-back SET is still in force")
        cur.execute("DISCARD ALL")
        check(set_pins(s) == (0, before[1] + 1), "DISCARD ALL did not unpin")
        check_follows(s, lambda: probe_psycopg(a), "1")
    finally:
        a.close()
    w = s.wire()
    try:
        # a SET refused by the server changes nothing
        w.send(m_query("SET extra_float_digits = '3x'"))
        msgs = w.collect()
        check([parse_fields(p).get("C") for t, p in msgs if t == b"E"] == ["22023"],
              f"a bad value: {msgs}")
        # a SET that ran, in an implicit transaction an error then rolled back
        w.send(m_parse("", "SET extra_float_digits = 3") + m_bind("", "") + m_execute()
               + m_parse("", "SELECT 1/0") + m_bind("", "") + m_execute() + M_SYNC)
        msgs = w.collect()
        check([parse_fields(p).get("C") for t, p in msgs if t == b"E"] == ["22012"],
              f"SET then an error: {msgs}")
        check(probe_wire(w)[1] == "1", "a rolled-back SET is in force")
        w.send(m_query("DISCARD ALL"))
        w.collect()
        check(wait_until(lambda: set_pins(s)[0] == 0, 5), "still pinned after DISCARD ALL")
        check_follows(s, lambda: probe_wire(w), "1")
    finally:
        w.close()
    after_setter_left(s)


def readline(p, timeout=60):
    """A line of the Java program's, or a failure with what it printed."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    check(r, f"no answer from the JDBC program in {timeout}s")
    line = p.stdout.readline()
    check(line, "the JDBC program ended")
    return line.strip()


@test("efd.jdbc", timeout=180)
def t_jdbc(env):
    """PgJDBC without assumeMinServerVersion sends the SET itself."""
    java = shutil.which("java")
    check(java is not None, "java is not installed (make test installs it)")
    check(os.path.exists(JDBC_JAR), f"{JDBC_JAR} missing (Debian libpostgresql-jdbc-java)")
    s = env.sluice(settings=TX)
    before = set_pins(s)
    p = subprocess.Popen([java, "-cp", JDBC_JAR, os.path.join(REPO, "tests/drivers/jdbc/Efd.java")],
                         env=s.pgenv(), cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        line = readline(p)
        check(line.startswith("connected "), f"JDBC: {line}")
        check(line.split()[1] == "3", f"JDBC sees extra_float_digits {line}, want 3")
        no_set_pin(s, before, "PgJDBC's connection setup")
        deadline = time.time() + 60
        mine = {}
        while len(mine) < 2 and time.time() < deadline:
            # one server held by another client, then the other: JDBC's
            # next transactions land on both
            pid, efd = None, None
            other = s.connect(autocommit=False)
            try:
                probe_psycopg(other)
                p.stdin.write("probe\n")
                p.stdin.flush()
                pid, efd = readline(p).split()
            finally:
                other.rollback()
                other.close()
            mine.setdefault(pid, set()).add(efd)
            p.stdin.write("probe\n")
            p.stdin.flush()
            pid, efd = readline(p).split()
            mine.setdefault(pid, set()).add(efd)
        check(len(mine) == 2, f"the JDBC client used servers {sorted(mine)} only")
        check(all(v == {"3"} for v in mine.values()), f"JDBC saw {mine}, want 3 everywhere")
        after_setter_left(s)
    finally:
        try:
            p.stdin.close()
            p.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
