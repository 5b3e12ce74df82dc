"""Transaction-mode tests (pool_mode=transaction, default_pool_size=5)."""
import io
import struct
import os
import shutil
import subprocess
import threading
import time

import psycopg2

from harness import (M_SYNC, BackendSampler, Skip, TestFailure, cancel_reaches_own_query,
                     check, killed_client_releases_locks, m_bind, m_close, m_describe,
                     m_execute, m_parse, parse_datarow, parse_fields, pgbench, pgbench_stats,
                     run_threads, test)

TX = {"pool_mode": "transaction", "default_pool_size": "5"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tx_sluice(env):
    return env.sluice(settings=TX)


@test("tx.pgbench_modes", timeout=150)
def t_pgbench_modes(env):
    env.ensure_pgbench()
    s = tx_sluice(env)
    problems = []
    with BackendSampler(env) as smp:
        for mode in ("simple", "extended", "prepared"):
            for script in ("-S", "tpcb"):
                args = ["-n", "-c", "10", "-j", "2", "-T", "3", "-M", mode]
                if script == "-S":
                    args.append("-S")
                what = f"-M {mode} {script}"
                try:
                    r = pgbench(s, *args, timeout=25)
                except TestFailure as e:
                    problems.append(f"{what}: {str(e).splitlines()[0]}")
                    if not s.alive():
                        break
                    continue
                tps, failed = pgbench_stats(r.stdout)
                if r.returncode != 0:
                    problems.append(f"{what}: exit {r.returncode}: {r.stdout[-600:]}")
                elif failed != 0 or tps <= 0:
                    problems.append(f"{what}: {failed} failed transactions, tps {tps}")
    row = env.pg.query("SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                       "(SELECT sum(tbalance) FROM pgbench_tellers), "
                       "(SELECT sum(bbalance) FROM pgbench_branches), "
                       "(SELECT sum(delta) FROM pgbench_history), "
                       "(SELECT count(*) FROM pgbench_history)", dbname="app")[0]
    if smp.max > 5:
        problems.append(f"{smp.max} server connections with default_pool_size=5")
    if row[4] == 0:
        problems.append("no TPC-B transaction reached PostgreSQL")
    if not row[0] == row[1] == row[2] == row[3]:
        problems.append(f"inconsistent sums accounts/tellers/branches/history: {row[:4]}")
    check(not problems, "; ".join(problems))


def pipeline_1000(s, base):
    w = s.wire()
    data = m_parse("", "SELECT $1::int")
    for i in range(1000):
        data += m_bind("", "", [str(base + i)]) + m_execute()
    data += M_SYNC
    sender = threading.Thread(target=w.send, args=(data,), daemon=True)
    sender.start()
    msgs = w.collect()
    sender.join(10)
    counts = {}
    values = []
    for t, p in msgs:
        counts[t] = counts.get(t, 0) + 1
        if t == b"D":
            values.append(int(parse_datarow(p)[0]))
        if t == b"E":
            raise TestFailure(f"error in pipeline: {parse_fields(p)}")
    check(counts.get(b"1") == 1, f"ParseComplete x{counts.get(b'1')}")
    check(counts.get(b"2") == 1000, f"BindComplete x{counts.get(b'2')}")
    check(counts.get(b"D") == 1000, f"DataRow x{counts.get(b'D')}")
    check(counts.get(b"C") == 1000, f"CommandComplete x{counts.get(b'C')}")
    check(counts.get(b"Z") == 1, f"ReadyForQuery x{counts.get(b'Z')}")
    check(values == list(range(base, base + 1000)), "rows out of order or wrong")
    check(w.query("SELECT 'after'") == [["after"]], "connection unusable after pipeline")
    w.close()


@test("tx.pipeline_1000_executes")
def t_pipeline(env):
    s = tx_sluice(env)
    errors = run_threads(3, lambda i: pipeline_1000(s, i * 10000))
    check(not errors, "; ".join(errors))


@test("tx.copy")
def t_copy(env):
    s = tx_sluice(env)
    c = s.connect()
    cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS copy_it; CREATE TABLE copy_it (a int, b text)")
    d = os.path.join(env.root, "copy")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(d, "in.csv")
    dst = os.path.join(d, "out.csv")
    with open(src, "w") as f:
        for i in range(5000):
            f.write(f"{i},row {i}\n")
    r = s.psql("-c", f"\\copy copy_it FROM '{src}' CSV")
    check(r.returncode == 0, f"\\copy from: {r.stderr.strip()}")
    check("COPY 5000" in r.stdout, f"\\copy from said {r.stdout.strip()!r}")
    cur.execute("SELECT count(*), sum(a) FROM copy_it")
    check(cur.fetchone() == (5000, 4999 * 5000 // 2), "rows after \\copy from")
    r = s.psql("-c", f"\\copy (SELECT * FROM copy_it ORDER BY a) TO '{dst}' CSV")
    check(r.returncode == 0 and "COPY 5000" in r.stdout, f"\\copy to: {r.stdout} {r.stderr}")
    with open(src) as f1, open(dst) as f2:
        check(f1.read() == f2.read(), "\\copy to wrote different data")

    data = "".join(f"{i}\tpy {i}\n" for i in range(5000, 8000))
    cur.copy_expert("COPY copy_it FROM STDIN", io.StringIO(data))
    check(cur.rowcount == 3000, f"copy_expert from: rowcount {cur.rowcount}")
    out = io.StringIO()
    cur.copy_expert("COPY (SELECT a, b FROM copy_it WHERE a >= 5000 ORDER BY a) TO STDOUT", out)
    check(out.getvalue() == data, "copy_expert to: different data")
    # a failing COPY leaves the connection usable
    try:
        cur.copy_expert("COPY copy_it FROM STDIN", io.StringIO("1\tok\nnot-a-number\tx\n"))
        raise TestFailure("bad COPY data accepted")
    except psycopg2.Error as e:
        check(e.pgcode == "22P02", f"bad COPY data: SQLSTATE {e.pgcode}")
    cur.execute("SELECT count(*) FROM copy_it")
    check(cur.fetchone()[0] == 8000, "row count after the failed COPY")
    cur.execute("DROP TABLE copy_it")
    c.close()


@test("tx.named_prepared_across_transactions")
def t_named_prepared(env):
    s = tx_sluice(env)
    w = s.wire()
    w.send(m_parse("s1", "SELECT $1::int * 2") + M_SYNC)
    types = [t for t, _ in w.collect()]
    check(types == [b"1", b"Z"], f"Parse s1: {types}")
    pids = set()
    for r in range(10):
        holders = []
        for _ in range(r % 5):
            h = s.connect(autocommit=False)
            h.cursor().execute("SELECT pg_backend_pid()")
            holders.append(h)
        w.send(m_bind("", "s1", [str(r)]) + m_execute()
               + m_parse("", "SELECT pg_backend_pid()") + m_bind("", "") + m_execute() + M_SYNC)
        msgs = w.collect()
        errs = [parse_fields(p) for t, p in msgs if t == b"E"]
        check(not errs, f"round {r}: {errs}")
        rows = [parse_datarow(p)[0] for t, p in msgs if t == b"D"]
        check(len(rows) == 2 and rows[0] == str(2 * r), f"round {r}: rows {rows}")
        pids.add(rows[1])
        for h in holders:
            h.rollback()
            h.close()
    check(len(pids) >= 2, f"s1 always ran on the same server {pids}; test proves nothing")
    w.send(m_describe(b"S", "s1") + M_SYNC)
    types = [t for t, _ in w.collect()]
    check(types == [b"t", b"T", b"Z"], f"Describe s1: {types}")
    w.send(m_close(b"S", "s1") + M_SYNC)
    types = [t for t, _ in w.collect()]
    check(types == [b"3", b"Z"], f"Close s1: {types}")
    w.send(m_bind("", "s1", ["1"]) + m_execute() + M_SYNC)
    msgs = w.collect()
    codes = [parse_fields(p).get("C") for t, p in msgs if t == b"E"]
    check(codes == ["26000"], f"Bind of a closed statement: {codes}")
    check(w.query("SELECT 1") == [["1"]], "connection unusable")
    w.close()


@test("tx.session_params_follow_client")
def t_params(env):
    s = tx_sluice(env)
    default_tz = env.pg.query("SHOW TimeZone")[0][0]
    check(default_tz != "Asia/Tokyo", "server default TimeZone is already the test value")
    a = s.connect()
    cur = a.cursor()
    cur.execute("SET DateStyle = 'SQL, DMY'")
    cur.execute("SET TimeZone = 'Asia/Tokyo'")
    stop = threading.Event()
    bad = []

    def hammer(i):
        c = s.connect()
        hc = c.cursor()
        while not stop.is_set():
            hc.execute("SELECT current_setting('DateStyle'), current_setting('TimeZone')")
            v = hc.fetchone()
            if v != ("ISO, MDY", default_tz):
                bad.append(v)
        c.close()

    ts = [threading.Thread(target=lambda i=i: run_threads(1, hammer), daemon=True)
          for i in range(6)]
    for t in ts:
        t.start()
    pids = set()
    seen = []
    try:
        for i in range(80):
            cur.execute("SELECT current_setting('DateStyle'), current_setting('TimeZone'), "
                        "pg_backend_pid()")
            ds, tz, pid = cur.fetchone()
            seen.append((ds, tz))
            pids.add(pid)
            check((ds, tz) == ("SQL, DMY", "Asia/Tokyo"),
                  f"iteration {i} on server {pid}: DateStyle {ds!r}, TimeZone {tz!r}")
            if len(pids) >= 3 and i >= 30:
                break
            time.sleep(0.01)
    finally:
        stop.set()
        for t in ts:
            t.join(10)
    check(not bad, f"other clients saw this client's settings: {bad[:3]}")
    check(len(pids) >= 2, "the client never changed server; test proves nothing")
    a.close()


@test("tx.listen_refused")
def t_listen(env):
    # with pins (the default) LISTEN works, see test_pinning.py
    s = env.sluice(settings=dict(TX, pin_session_state="off"))
    c = s.connect()
    try:
        c.cursor().execute("LISTEN it_channel")
        raise TestFailure("LISTEN accepted in transaction mode")
    except psycopg2.Error as e:
        check("session" in str(e).lower(), f"message does not mention session mode: {e}")
    cur = c.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "connection unusable after LISTEN was refused")
    c.close()


def run_driver(s, cmd, timeout=240):
    r = subprocess.run(cmd, env=s.pgenv(), cwd=REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if r.returncode != 0:
        fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL")]
        raise TestFailure(f"exit {r.returncode}: " + ("; ".join(fails)[:1500] or r.stdout[-1500:]))
    check("ok " in r.stdout, f"no check ran: {r.stdout[-500:]}")


@test("tx.driver_psycopg2", timeout=300)
def t_driver_psycopg2(env):
    s = tx_sluice(env)
    run_driver(s, ["/usr/bin/python3", os.path.join(REPO, "tests/drivers/psycopg2_test.py")])


@test("tx.driver_node", timeout=400)
def t_driver_node(env):
    node = shutil.which("node")
    if node is None:
        raise Skip("node is not installed")
    ndir = os.path.join(REPO, "tests/drivers/node")
    if not os.path.isdir(os.path.join(ndir, "node_modules")):
        npm = shutil.which("npm")
        check(npm is not None, "node_modules missing and npm not installed")
        r = subprocess.run([npm, "ci", "--prefix", ndir, "--no-audit", "--no-fund"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        check(r.returncode == 0, f"npm ci failed: {r.stdout[-1000:]}")
    s = tx_sluice(env)
    run_driver(s, [node, os.path.join(ndir, "test.js")])


JDBC_JAR = "/usr/share/java/postgresql.jar"


@test("tx.driver_jdbc", timeout=300)
def t_driver_jdbc(env):
    java = shutil.which("java")
    check(java is not None, "java is not installed (make test installs it)")
    check(os.path.exists(JDBC_JAR), f"{JDBC_JAR} missing (Debian libpostgresql-jdbc-java)")
    s = tx_sluice(env)
    run_driver(s, [java, "-cp", JDBC_JAR, os.path.join(REPO, "tests/drivers/jdbc/JdbcTest.java")])


@test("tx.client_killed_mid_transaction")
def t_killed(env):
    s = tx_sluice(env)
    killed_client_releases_locks(env, s, "it-kill-tx")


@test("tx.cancel")
def t_cancel(env):
    s = tx_sluice(env)
    cancel_reaches_own_query(env, s)
    # a cancel sent while the client is idle hits nobody else
    a = s.connect()
    cur = a.cursor()
    cur.execute("SELECT pg_backend_pid()")
    others = []
    res = {}

    def other(i):
        c = s.connect()
        oc = c.cursor()
        oc.execute("SELECT pg_sleep(1.0), 'done'")
        res[i] = oc.fetchone()[1]
        c.close()

    t = threading.Thread(target=lambda: others.extend(run_threads(5, other)), daemon=True)
    t.start()
    time.sleep(0.4)
    a.cancel()
    time.sleep(0.1)
    a.cancel()
    t.join(20)
    check(not others, f"an idle client's cancel hit another client: {others[:2]}")
    check(len(res) == 5, f"only {len(res)} of 5 clients finished")
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "client unusable")
    a.close()


@test("tx.prepare_while_others_hold_every_server", timeout=90)
def t_prepare_without_server(env):
    """pgbench -M prepared with one thread prepares synchronously; with more
    clients than servers, the other clients of that thread hold every
    server in a transaction meanwhile. Preparing a statement a server has
    already accepted must not need a server, or the run deadlocks."""
    env.ensure_pgbench()
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                             "min_pool_size": "1"}, fresh=True)
    for _ in range(2):  # the second run meets statements known from the first
        r = pgbench(s, "-n", "-c", "4", "-j", "1", "-T", "2", "-M", "prepared", timeout=30)
        check(r.returncode == 0, f"exit {r.returncode}:\n{r.stdout[-1500:]}")
        tps, failed = pgbench_stats(r.stdout)
        check(failed == 0 and tps > 0, f"tps {tps}, {failed} failed")
    env.drop_sluice()


@test("tx.pipeline_error_skips_to_sync_and_portal_row_limits")
def t_pipeline_error_and_portals(env):
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "2"})
    w = s.wire()
    # a named statement, then an error in the middle of a pipeline
    data = (m_parse("div", "SELECT 10 / $1::int") +
            m_bind("", "div", ["5"]) + m_execute() +
            m_bind("", "div", ["0"]) + m_execute() +      # division by zero
            m_bind("", "div", ["2"]) + m_execute() +      # skipped by the server
            M_SYNC)
    w.send(data)
    msgs = w.collect()
    types = b"".join(t for t, _ in msgs)
    check(types == b"12DCE" + b"Z", f"pipeline replies {types!r}")
    err = parse_fields(msgs[4][1])
    check(err.get("C") == "22012", f"expected division_by_zero, got {err}")
    check(w.status == b"I", f"status after the failed pipeline {w.status!r}")
    # the statement is still usable, on whatever server comes next
    w.send(m_bind("", "div", ["2"]) + m_execute() + M_SYNC)
    rows = [parse_datarow(p) for t, p in w.collect() if t == b"D"]
    check(rows == [["5"]], f"after the error: {rows}")
    # a portal with a row limit inside a transaction: PortalSuspended, then the rest
    w.query("BEGIN")
    w.send(m_parse("", "SELECT g FROM generate_series(1, 5) g") + m_bind("p1", "") +
           m_execute("p1", 2) + M_SYNC)
    msgs = w.collect()
    check([t for t, _ in msgs] == [b"1", b"2", b"D", b"D", b"s", b"Z"],
          f"first batch {[t for t, _ in msgs]}")
    check(w.status == b"T", "transaction should still be open")
    w.send(m_execute("p1", 2) + M_SYNC)
    msgs = w.collect()
    check([parse_datarow(p)[0] for t, p in msgs if t == b"D"] == ["3", "4"],
          "second batch of the portal")
    check(any(t == b"s" for t, _ in msgs), "no PortalSuspended for the second batch")
    w.send(m_execute("p1", 0) + M_SYNC)
    msgs = w.collect()
    check([parse_datarow(p)[0] for t, p in msgs if t == b"D"] == ["5"], "rest of the portal")
    check(any(t == b"C" for t, _ in msgs), "no CommandComplete at the end of the portal")
    w.query("COMMIT")
    check(w.status == b"I", "status after COMMIT")
    w.close()


@test("statement_mode_refuses_transaction_blocks")
def t_statement_mode(env):
    s = env.sluice(settings={"pool_mode": "statement", "default_pool_size": "2"}, fresh=True)
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone()[0] == 1, "single statement in statement mode")
    try:
        cur.execute("BEGIN")
        cur.execute("SELECT 2")
        check(False, "a transaction block was allowed in statement mode")
    except psycopg2.Error as e:
        check("statement pooling mode" in str(e), f"unclear error: {e}")
    # the session goes on: the block was rolled back, not left open
    cur.execute("SELECT 2")
    check(cur.fetchone()[0] == 2, "session unusable after the refused block")
    c.close()
    n = env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
                     "AND state LIKE 'idle in transaction%'")[0][0]
    check(n == 0, f"{n} servers left idle in transaction")
    c = s.connect()
    c.cursor().execute("SELECT 3")
    c.close()
    env.drop_sluice()


def shape_exchange(w, data):
    """Send <data> ending in Sync; returns (field counts of RowDescriptions,
    rows, SQLSTATEs and messages of errors, last ReadyForQuery status)."""
    w.send(data)
    msgs = w.collect()
    fields = [struct.unpack("!H", p[:2])[0] for t, p in msgs if t == b"T"]
    rows = [parse_datarow(p) for t, p in msgs if t == b"D"]
    errors = [(parse_fields(p).get("C"), parse_fields(p).get("M")) for t, p in msgs if t == b"E"]
    return fields, rows, errors, msgs[-1][1]


STALE = ("0A000", "cached plan must not change result type")


@test("tx.prepared_statement_changes_shape")
def t_statement_shape(env):
    """A client that described a named statement never gets rows of another
    shape after DDL: it gets PostgreSQL's "cached plan must not change
    result type", as on a direct connection, until it prepares again."""
    s = env.sluice(settings=TX)
    d = s.wire()
    d.query("DROP TABLE IF EXISTS shape_t, shape_log")
    d.query("CREATE TABLE shape_t (a int); INSERT INTO shape_t VALUES (1); "
            "CREATE TABLE shape_log (x int)")
    prepare = m_parse("s1", "SELECT * FROM shape_t") + m_describe(b"S", "s1") + M_SYNC
    run = m_bind("", "s1") + m_execute() + M_SYNC
    a, b = s.wire(), s.wire()
    for w in (a, b):
        fields, _, errors, _ = shape_exchange(w, prepare)
        check(fields == [1] and not errors, f"prepare: {fields} {errors}")
        _, rows, errors, _ = shape_exchange(w, run)
        check(rows == [["1"]] and not errors, f"before DDL: {rows} {errors}")

    d.query("ALTER TABLE shape_t ADD COLUMN b text DEFAULT 'new'")
    # a: the statement fails inside a pipeline, and the pipeline's insert goes too
    _, rows, errors, status = shape_exchange(
        a, m_parse("", "INSERT INTO shape_log VALUES (1)") + m_bind("", "") + m_execute()
        + run[:-len(M_SYNC)] + M_SYNC)
    check(not rows and errors == [STALE], f"after DDL: rows {rows}, errors {errors}")
    check(status == b"I", f"ReadyForQuery status {status!r} after the error")
    n = env.pg.query("SELECT count(*) FROM shape_log", dbname="app")[0][0]
    check(n == 0, "the insert before the failed statement was committed")
    # and keeps failing, for b too, while nobody prepares again
    for w, who in ((a, "a again"), (b, "b")):
        _, rows, errors, _ = shape_exchange(w, run)
        check(not rows and errors == [STALE], f"{who}: rows {rows}, errors {errors}")
    # Describe of it fails the same way
    _, _, errors, _ = shape_exchange(b, m_describe(b"S", "s1") + M_SYNC)
    check(errors == [STALE], f"Describe after DDL: {errors}")
    # preparing again heals it
    for w in (a, b):
        fields, _, errors, _ = shape_exchange(w, m_close(b"S", "s1") + prepare)
        check(fields == [2] and not errors, f"prepare again: {fields} {errors}")
        _, rows, errors, _ = shape_exchange(w, run)
        check(rows == [["1", "new"]] and not errors, f"after preparing again: {rows} {errors}")

    # DDL that does not pass through sluice: PostgreSQL or sluice says so,
    # whichever server the statement runs on, and preparing again heals it
    env.pg.query("ALTER TABLE shape_t ALTER COLUMN b DROP DEFAULT, ALTER COLUMN b TYPE int USING 7", dbname="app")
    _, rows, errors, _ = shape_exchange(a, run)
    check(not rows and errors == [STALE], f"after direct DDL: rows {rows}, errors {errors}")
    for _ in range(3):  # whichever server comes next
        fields, _, errors, _ = shape_exchange(a, m_close(b"S", "s1") + prepare)
        check(fields == [2] and not errors, f"prepare after direct DDL: {fields} {errors}")
        _, rows, errors, _ = shape_exchange(a, run)
        check(rows == [["1", "7"]] and not errors, f"after direct DDL: {rows} {errors}")

    # a portal Describe also tells the shape (PgJDBC's way)
    c = s.wire()
    fields, rows, errors, _ = shape_exchange(
        c, m_parse("s2", "SELECT a FROM shape_t") + m_bind("", "s2") + m_describe(b"P", "")
        + m_execute() + M_SYNC)
    check(fields == [1] and rows == [["1"]] and not errors, f"portal describe: {rows} {errors}")
    # and a statement on another table, described too
    d.query("INSERT INTO shape_log VALUES (5)")
    fields, _, errors, _ = shape_exchange(
        b, m_parse("s3", "SELECT x FROM shape_log") + m_describe(b"S", "s3") + M_SYNC)
    check(fields == [1] and not errors, f"prepare s3: {fields} {errors}")
    d.query("ALTER TABLE shape_t ALTER COLUMN a TYPE text")
    _, rows, errors, _ = shape_exchange(c, m_bind("", "s2") + m_execute() + M_SYNC)
    check(not rows and errors == [STALE], f"portal-described after DDL: {rows} {errors}")
    # a statement whose shape did not change goes on working
    for _ in range(3):
        _, rows, errors, _ = shape_exchange(b, m_bind("", "s3") + m_execute() + M_SYNC)
        check(rows == [["5"]] and not errors, f"unchanged shape after DDL: {rows} {errors}")
    d.query("DROP TABLE shape_t, shape_log")
    for w in (a, b, c, d):
        w.close()
