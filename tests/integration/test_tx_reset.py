"""RESET in transaction mode returns to the client's startup value (proxy/vars.c).

A direct session's RESET x, RESET ALL, SET x TO DEFAULT and DISCARD ALL
return a parameter to the value the client's startup packet gave (libpq
sends PGDATESTYLE, PGTZ, application_name, client_encoding that way). A
pooled server's RESET returns it to the server's own default instead, so
sluice sets the client's startup values back after such a RESET and tells
the client what PostgreSQL would have told it. Each test runs the same
steps against PostgreSQL directly and through sluice and compares what the
client sees: SHOW, ParameterStatus, and how values are printed.
"""
import struct
import subprocess

import psycopg2

from harness import (M_SYNC, Wire, check, m_bind, m_execute, m_parse, m_query, parse_datarow,
                     parse_fields, test)

TX = {"pool_mode": "transaction", "default_pool_size": "2", "min_pool_size": "2"}
# one server for every client: clients with other startup values share it
TX1 = {"pool_mode": "transaction", "default_pool_size": "1", "min_pool_size": "1"}
PG_STYLE = r"-c DateStyle=Postgres,\ MDY"
DAY = "SELECT '2024-03-05'::date::text"


def direct(env, **kw):
    d = dict(host="127.0.0.1", port=env.pg.port, user="app", dbname="app", password="app",
             connect_timeout=10)
    d.update(kw)
    c = psycopg2.connect(**d)
    c.autocommit = True
    return c


def one(c, sql):
    cur = c.cursor()
    cur.execute(sql)
    r = cur.fetchone()[0] if cur.description else None
    cur.close()
    return r


def steps(c, script, params=("DateStyle",)):
    """Run <script> (statements; "?x" reads SHOW x, "!" reads the
    parameter statuses, anything else runs) on <c>; returns what was read."""
    seen = []
    for sql in script:
        if sql == "!":
            seen.append(("status", tuple(c.get_parameter_status(p) for p in params)))
        elif sql.startswith("?"):
            seen.append((sql, one(c, "SHOW " + sql[1:])))
        else:
            r = one(c, sql)
            if r is not None:
                seen.append((sql, r))
    return seen


def compare(env, s, script, params=("DateStyle",), settings=None, **kw):
    """The same script directly and through sluice: what the client sees
    must be the same. Returns the direct run's observations."""
    d = direct(env, **kw)
    try:
        want = steps(d, script, params)
    finally:
        d.close()
    c = s.connect(**kw)
    try:
        got = steps(c, script, params)
    finally:
        c.close()
    for w, g in zip(want, got):
        check(w == g, f"directly {w}, through sluice {g} (script {script})")
    check(len(want) == len(got), f"directly {want}, through sluice {got}")
    return want


@test("tx_reset.datestyle_set_then_reset")
def t_datestyle(env):
    s = env.sluice(settings=TX)
    script = ["?DateStyle", "!", DAY, "SET datestyle = 'German'", "!", DAY,
              "RESET datestyle", "!", "?DateStyle", DAY,
              # back to a value the server's own default equals: then
              # PostgreSQL reports nothing on the RESET
              "SET datestyle TO iso", "!", "RESET datestyle", "!", "?DateStyle", DAY,
              "SET datestyle TO ymd", "SET datestyle TO DEFAULT", "!", "?DateStyle", DAY,
              # a RESET of another parameter leaves DateStyle alone, also
              # where it was SET to the server's own default
              "SET datestyle TO iso", "SET enable_seqscan = off", "RESET enable_seqscan", "!",
              "?DateStyle", DAY, "SET intervalstyle = 'postgres'", "RESET enable_seqscan",
              "?IntervalStyle"]
    want = compare(env, s, script, options=PG_STYLE + " -c IntervalStyle=postgres_verbose")
    # the direct run shows the test means something: the startup value won
    check(("?DateStyle", "Postgres, MDY") in want[6:], f"direct run: {want}")


@test("tx_reset.pgdatestyle_psql")
def t_psql(env):
    """pg_regress's way: PGDATESTYLE and PGTZ in the environment, psql."""
    s = env.sluice(settings=TX)
    sql = ("SET datestyle TO iso;\nSET timezone = 'UTC';\n"
           "RESET datestyle;\nRESET timezone;\nSHOW datestyle;\nSHOW timezone;\n"
           "SELECT '2024-03-05 12:00+00'::timestamptz;\n")
    outs = []
    for port in (env.pg.port, s.port):
        e = s.pgenv()
        e.update(PGPORT=str(port), PGDATESTYLE="Postgres, MDY", PGTZ="America/New_York")
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1"], env=e, input=sql,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        check(r.returncode == 0, f"psql on {port}: {r.stderr}")
        outs.append(r.stdout)
    check("Postgres, MDY" in outs[0] and "America/New_York" in outs[0], f"direct: {outs[0]}")
    check(outs[0] == outs[1], f"directly:\n{outs[0]}\nthrough sluice:\n{outs[1]}")


@test("tx_reset.reset_all_and_discard_all")
def t_reset_all(env):
    s = env.sluice(settings=TX)
    params = ("DateStyle", "TimeZone", "IntervalStyle", "application_name")
    opts = PG_STYLE + " -c TimeZone=Asia/Tokyo -c IntervalStyle=sql_standard"
    for reset in ("RESET ALL", "DISCARD ALL"):
        script = ["!", "SET datestyle = 'SQL, DMY'", "SET timezone = 'UTC'",
                  "SET intervalstyle = 'iso_8601'", "SET application_name = 'other'", "!",
                  reset, "!", "?DateStyle", "?TimeZone", "?IntervalStyle",
                  "?application_name", DAY, "SELECT '1 day 2 hours'::interval::text",
                  "SELECT '2024-03-05 12:00+00'::timestamptz::text"]
        want = compare(env, s, script, params, options=opts, application_name="myapp")
        check(("?TimeZone", "Asia/Tokyo") in want and ("?application_name", "myapp") in want,
              f"direct run: {want}")


@test("tx_reset.application_name_psql")
def t_appname(env):
    """psql names itself at startup; RESET ALL gives that name back."""
    s = env.sluice(settings=TX)
    sql = "SET application_name = 'x';\nRESET ALL;\nSHOW application_name;\n"
    outs = []
    for port in (env.pg.port, s.port):
        e = s.pgenv()
        e["PGPORT"] = str(port)
        r = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1"], env=e, input=sql,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        check(r.returncode == 0, f"psql on {port}: {r.stderr}")
        outs.append(r.stdout)
    check(outs[0].strip() == "psql", f"direct: {outs[0]!r}")
    check(outs[0] == outs[1], f"directly {outs[0]!r}, through sluice {outs[1]!r}")


def wire_run(w, sql):
    """A Query on the raw connection: (ParameterStatus pairs, rows as bytes)."""
    w.send(m_query(sql))
    statuses, rows = [], []
    for t, p in w.collect():
        if t == b"S":
            k, v, _ = p.split(b"\0", 2)
            statuses.append((k.decode(), v.decode()))
        elif t == b"D":
            n = struct.unpack("!H", p[:2])[0]
            off, row = 2, []
            for _ in range(n):
                ln = struct.unpack("!i", p[off:off + 4])[0]
                off += 4
                row.append(p[off:off + ln] if ln >= 0 else None)
                off += max(ln, 0)
            rows.append(row)
        elif t == b"E":
            raise AssertionError(f"{sql}: {parse_fields(p)}")
    return statuses, rows


@test("tx_reset.latin1_client_encoding")
def t_latin1(env):
    """A client that logged in with LATIN1 keeps getting LATIN1 text after
    RESET ALL, and is told nothing changed (UTF8 text read as LATIN1 is
    garbage)."""
    s = env.sluice(settings=TX)
    seen = []
    for port in (env.pg.port, s.port):
        w = Wire("127.0.0.1", port)
        w.user_for_md5 = "app"
        w.login("app", "app", "app", extra={"client_encoding": "LATIN1"})
        try:
            run = [w.params.get("client_encoding")]
            run.append(wire_run(w, "SET client_encoding = 'UTF8'"))
            run.append(wire_run(w, "RESET ALL"))
            run.append(wire_run(w, "SELECT chr(233) || 't' || chr(233)"))
            run.append(wire_run(w, "SHOW client_encoding"))
            run.append(wire_run(w, "SET client_encoding TO DEFAULT"))
            run.append(wire_run(w, "SELECT chr(233)"))
        finally:
            w.close()
        seen.append(run)
    check(seen[0][3][1] == [[b"\xe9t\xe9"]], f"direct: {seen[0]}")
    check(seen[0] == seen[1], f"directly {seen[0]}, through sluice {seen[1]}")


@test("tx_reset.two_clients_one_server")
def t_two(env):
    """Two clients with other startup values take turns on one server."""
    s = env.sluice(settings=TX1)
    a = s.connect(options=PG_STYLE)
    b = s.connect(options=r"-c DateStyle=SQL,\ DMY")
    try:
        check(one(a, "SELECT pg_backend_pid()") == one(b, "SELECT pg_backend_pid()"),
              "the two clients should share the pool's one server")
        one(a, "SET datestyle = 'German'")
        one(b, "SET datestyle = 'ISO'")
        one(a, "RESET datestyle")
        check(one(b, "SHOW datestyle") == "ISO, DMY", "b lost its SET")
        check(one(a, "SHOW datestyle") == "Postgres, MDY", "a after its RESET")
        one(b, "RESET datestyle")
        check(one(a, "SHOW datestyle") == "Postgres, MDY", "a after b's RESET")
        check(one(b, "SHOW datestyle") == "SQL, DMY", "b after its RESET")
        check(one(b, DAY) == "05/03/2024", "b prints dates in its startup style")
        check(one(a, DAY) == "03-05-2024", "a prints dates in its startup style")
        one(a, "RESET ALL")
        one(b, "DISCARD ALL")
        check(one(a, "SHOW datestyle") == "Postgres, MDY", "a after RESET ALL")
        check(one(b, "SHOW datestyle") == "SQL, DMY", "b after DISCARD ALL")
        check(a.get_parameter_status("DateStyle") == "Postgres, MDY", "a told")
        check(b.get_parameter_status("DateStyle") == "SQL, DMY", "b told")
    finally:
        a.close()
        b.close()
    # a client that gave nothing still gets the server's own default
    c = s.connect()
    try:
        check(one(c, "SHOW datestyle") == "ISO, MDY", "a third client got another's value")
    finally:
        c.close()


@test("tx_reset.transaction_blocks")
def t_blocks(env):
    s = env.sluice(settings=TX)
    script = [
        "SET datestyle = 'German'",
        # undone: back to the value before the block
        "BEGIN", "RESET datestyle", "!", "?DateStyle", "ROLLBACK", "!", "?DateStyle",
        # kept
        "BEGIN", "SET datestyle = 'SQL'", "RESET datestyle", "!", "COMMIT", "!", "?DateStyle"]
    want = compare(env, s, script, options=PG_STYLE)
    check(("?DateStyle", "German, DMY") in want, f"direct run: {want}")
    # a RESET before a savepoint stays when its ROLLBACK TO undoes what
    # failed after it, and goes with a ROLLBACK; in one text each
    script = ["SET datestyle = 'German'",
              "BEGIN; RESET datestyle; SAVEPOINT a", "!", "?DateStyle",
              "SELECT 1", "ROLLBACK TO a", "!", "?DateStyle", "COMMIT", "!", "?DateStyle",
              "SET datestyle = 'German'", "BEGIN; RESET datestyle; ROLLBACK", "!",
              "?DateStyle"]
    compare(env, s, script, options=PG_STYLE)


@test("tx_reset.failed_transaction")
def t_failed(env):
    """A RESET, then an error: nothing runs until ROLLBACK [TO] says which
    value stands (a RESET before the savepoint stays, one after it goes)."""
    s = env.sluice(settings=TX)
    seen = []
    for c in (direct(env, options=PG_STYLE), s.connect(options=PG_STYLE)):
        try:
            run = []
            for before in (False, True):
                one(c, "SET datestyle = 'German'")
                one(c, "BEGIN")
                if before:
                    one(c, "RESET datestyle")
                one(c, "SAVEPOINT a")
                if not before:
                    one(c, "RESET datestyle")
                try:
                    one(c, "SELECT 1/0")
                except psycopg2.Error as e:
                    run.append(e.pgcode)
                try:
                    one(c, "RESET datestyle")  # refused: the transaction failed
                except psycopg2.Error as e:
                    run.append(e.pgcode)
                one(c, "ROLLBACK TO a")
                run.append(one(c, "SHOW datestyle"))
                run.append(c.get_parameter_status("DateStyle"))
                run.append(one(c, DAY))
                one(c, "COMMIT")
                run.append(one(c, "SHOW datestyle"))
                run.append(c.get_parameter_status("DateStyle"))
                run.append(one(c, DAY))
        finally:
            c.close()
        seen.append(run)
    check(seen[0][2] == "German, DMY" and seen[0][10] == "Postgres, MDY", f"direct: {seen[0]}")
    check(seen[0] == seen[1], f"directly {seen[0]}, through sluice {seen[1]}")


@test("tx_reset.extended_protocol")
def t_extended(env):
    s = env.sluice(settings=TX)
    seen = []
    for port in (env.pg.port, s.port):
        w = Wire("127.0.0.1", port)
        w.user_for_md5 = "app"
        w.login("app", "app", "app", extra={"DateStyle": "Postgres, MDY"})
        try:
            run = [wire_run(w, "SET datestyle = 'SQL'")[0]]
            w.send(m_parse("", "RESET datestyle") + m_bind("", "") + m_execute() + M_SYNC)
            run.append([(t, p) for t, p in w.collect() if t in (b"S", b"E", b"C", b"Z")])
            # the unnamed statement the client made survives what sluice
            # sends after a RESET
            w.send(m_parse("", "SELECT $1::date::text") + m_bind("", "", ["2024-03-05"])
                   + m_execute() + M_SYNC)
            run.append([parse_datarow(p) for t, p in w.collect() if t == b"D"])
            w.send(m_bind("", "", ["2024-03-06"]) + m_execute() + M_SYNC)
            run.append([parse_datarow(p) for t, p in w.collect() if t == b"D"])
        finally:
            w.close()
        seen.append(run)
    check(seen[0][2] == [["03-05-2024"]], f"direct: {seen[0]}")
    check(seen[0] == seen[1], f"directly {seen[0]}, through sluice {seen[1]}")


@test("tx_reset.multi_statement_text")
def t_multi(env):
    """RESET ALL and a statement after it in one Query: that statement runs
    with the server's default (see README); what follows the Query has the
    startup value again, and the client is told so."""
    s = env.sluice(settings=TX)
    script = ["SET datestyle = 'German'", "RESET ALL; SELECT 1", "!", "?DateStyle", DAY]
    compare(env, s, script, options=PG_STYLE)


@test("tx_reset.track_extra_parameters")
def t_extra(env):
    """A tracked parameter PostgreSQL does not report (search_path)."""
    s = env.sluice(settings=dict(TX, track_extra_parameters="search_path"))
    opts = r"-c search_path=pg_catalog,\ public"
    script = ["?search_path", "SET search_path = 'x'", "RESET search_path", "?search_path",
              "SET search_path = 'y'", "RESET ALL", "?search_path",
              "RESET search_path; SET search_path = 'z'", "?search_path", "RESET ALL",
              "?search_path"]
    want = compare(env, s, script, (), options=opts)
    check(("?search_path", "pg_catalog, public") in want[1:], f"direct run: {want}")
