"""Statement statistics: sluice's figures against pg_stat_statements.

A known mix of statements runs through sluice in each pool mode; PostgreSQL
has pg_stat_statements loaded (harness.py), so the calls and rows sluice
counts per normalized statement are compared with PostgreSQL's own, and
sluice's mean time must be at least PostgreSQL's (sluice sees the network
too). The slow-query log and the N+1 detector must flag exactly the
statements meant to be flagged, and wait time must show only when the pool
is saturated.
"""
import re
import threading
import time

from harness import (admin_rows, check, test, m_parse, m_bind, m_execute, msg, pgbench)

SETUP = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DROP TABLE IF EXISTS stat_t;
CREATE TABLE stat_t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO stat_t SELECT g, 0 FROM generate_series(1, 100) g;
GRANT ALL ON stat_t TO app;
"""


def canon(text):
    """Compare texts as both tools print them: spacing and case aside."""
    return re.sub(r"\s+", " ", text.strip()).lower()


def reset_both(env, s):
    env.pg.query(SETUP, dbname="app")
    env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
    c = s.connect(user="admin", dbname="sluice")
    try:
        c.cursor().execute("RESET STATS")
    finally:
        c.close()


def pipeline(s, mode):
    """An extended-protocol pipeline: three Executes, one Sync."""
    w = s.wire()
    try:
        sql = "SELECT $1::int + 1"
        out = m_parse("", sql, (23,))
        for i in range(3):
            out += m_bind("", "", (str(i).encode(),)) + m_execute()
        out += msg(b"S")
        w.send(out)
        seen = []
        while True:
            t, _ = w.read_msg()
            seen.append(t)
            check(t != b"E", f"pipeline error in {mode}")
            if t == b"Z":
                break
        check(seen.count(b"C") == 3, f"3 CommandCompletes expected, got {seen}")
    finally:
        w.close()


def run_mix(s, mode):
    c = s.connect()
    cur = c.cursor()
    for i in range(9):  # below the N+1 threshold
        cur.execute("SELECT v FROM stat_t WHERE id = %s", (i + 1,))
    for i in range(10):
        cur.execute("UPDATE stat_t SET v = v + 1 WHERE id = %s", (i + 1,))
    for _ in range(3):
        cur.execute("SELECT pg_sleep(0.2)")
    if mode != "statement":
        cur.execute("BEGIN")
    cur.execute("SELECT id FROM stat_t ORDER BY id LIMIT 50")
    for i in range(50):
        cur.execute("SELECT v, id FROM stat_t WHERE id = %s", (i + 1,))
    if mode != "statement":
        cur.execute("COMMIT")
    # one simple Query of three statements (not two that differ only in a
    # column alias: pg_stat_statements counts those as one)
    cur.execute("SELECT 1 AS a; SELECT count(*) FROM stat_t; UPDATE stat_t SET v = v WHERE id < 6")
    for _ in range(2):
        try:
            cur.execute("SELECT 1 / (v - v) FROM stat_t WHERE id = 1")
            check(False, "division by zero expected")
        except Exception as e:  # noqa: BLE001 - psycopg2.DataError
            check("division by zero" in str(e), str(e))
    c.close()
    pipeline(s, mode)


EXPECTED = {
    # normalized text: (calls, rows)
    "SELECT v FROM stat_t WHERE id = $1": (9, 9),
    "UPDATE stat_t SET v = v + $1 WHERE id = $2": (10, 10),
    "SELECT pg_sleep($1)": (3, 3),
    "SELECT id FROM stat_t ORDER BY id LIMIT $1": (1, 50),
    "SELECT v, id FROM stat_t WHERE id = $1": (50, 50),
    "SELECT $1 AS a": (1, 1),
    "SELECT count(*) FROM stat_t": (1, 1),
    "UPDATE stat_t SET v = v WHERE id < $1": (1, 5),
    "SELECT $1::int + $2": (3, 3),
}


def check_against_pgss(env, s, mode):
    ours = {canon(r["query"]): r for r in admin_rows(s, "SHOW QUERIES")
            if r["database"] == "app" and r["user"] == "app"}
    pgss = {}
    for q, calls, rows, mean in env.pg.query(
            "SELECT query, calls, rows, mean_exec_time FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'app'", dbname="app"):
        k = canon(q)
        if k in pgss:  # the same text under two query ids: add them up
            c0, r0, m0 = pgss[k]
            pgss[k] = (c0 + calls, r0 + rows, max(m0, mean))
        else:
            pgss[k] = (calls, rows, mean)
    for text, (calls, rows) in EXPECTED.items():
        k = canon(text)
        check(k in ours, f"{mode}: sluice has no row for {text!r}; it has {sorted(ours)}")
        check(k in pgss, f"{mode}: pg_stat_statements has no row for {text!r}: {sorted(pgss)}")
        r = ours[k]
        check((r["calls"], r["rows"]) == (calls, rows),
              f"{mode}: sluice counts {text!r} as calls/rows {r['calls']}/{r['rows']}, "
              f"expected {calls}/{rows}")
        check(pgss[k][:2] == (calls, rows),
              f"{mode}: pg_stat_statements counts {text!r} as {pgss[k][:2]}")
        check(r["mean_ms"] >= pgss[k][2],
              f"{mode}: sluice's mean {r['mean_ms']} ms < PostgreSQL's {pgss[k][2]} ms "
              f"for {text!r}")
        check(isinstance(r["calls"], int) and isinstance(r["mean_ms"], float),
              f"typed columns expected, got {type(r['calls'])} / {type(r['mean_ms'])}")
        check(r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"] * 1.03,
              f"{mode}: percentiles out of order for {text!r}: {r}")
        check(r["wait_ms"] < 50, f"{mode}: wait time without a saturated pool: {r}")
    # the failing statement: two errors of class 22, no successful call
    bad = [r for k, r in ours.items() if "/ (v - v)" in k]
    check(len(bad) == 1, f"{mode}: one row for the failing statement expected: {bad}")
    check(bad[0]["errors"] == 2 and bad[0]["calls"] == 0 and "22:2" in bad[0]["error_classes"],
          f"{mode}: errors of the failing statement: {bad[0]}")
    check(bad[0]["class"] == "select", f"{mode}: class {bad[0]['class']}")
    upd = ours[canon("UPDATE stat_t SET v = v + $1 WHERE id = $2")]
    check(upd["class"] == "update", f"{mode}: class of the UPDATE: {upd['class']}")


def check_slow_and_nplus1(s, mode):
    slow = [r for r in admin_rows(s, "SHOW SLOW") if r["database"] == "app"]
    check(len(slow) == 3, f"{mode}: three slow statements expected, got {slow}")
    for r in slow:
        check(canon(r["query"]) == canon("SELECT pg_sleep($1)"), f"{mode}: slow entry {r}")
        check(r["exec_ms"] >= 200, f"{mode}: slow entry faster than the sleep: {r}")
        check(r["user"] == "app" and r["server_pid"] > 0, f"{mode}: slow entry context {r}")
    n1 = [r for r in admin_rows(s, "SHOW NPLUSONE") if r["database"] == "app"]
    check(len(n1) == 1, f"{mode}: one N+1 shape expected, got {n1}")
    r = n1[0]
    check(canon(r["query"]) == canon("SELECT v, id FROM stat_t WHERE id = $1"),
          f"{mode}: N+1 shape {r}")
    check(r["bursts"] == 1 and r["largest_burst"] == 50, f"{mode}: N+1 counts {r}")
    check(canon(r["preceding_query"] or "") ==
          canon("SELECT id FROM stat_t ORDER BY id LIMIT $1"),
          f"{mode}: the statement before the loop: {r}")
    classes = {r["class"]: r for r in admin_rows(s, "SHOW CLASSES")}
    check(classes["select"]["calls"] >= 9 + 3 + 1 + 50 + 2 + 3,
          f"{mode}: select class counts {classes.get('select')}")
    check(classes["update"]["calls"] == 11, f"{mode}: update class {classes.get('update')}")


def mix_test(env, mode):
    s = env.sluice({"pool_mode": mode, "slow_query_ms": "100"}, fresh=True)
    reset_both(env, s)
    run_mix(s, mode)
    check_against_pgss(env, s, mode)
    check_slow_and_nplus1(s, mode)


@test("stats.mix_matches_pg_stat_statements_session", timeout=120)
def t_mix_session(env):
    mix_test(env, "session")


@test("stats.mix_matches_pg_stat_statements_transaction", timeout=120)
def t_mix_tx(env):
    mix_test(env, "transaction")


@test("stats.mix_matches_pg_stat_statements_statement", timeout=120)
def t_mix_statement(env):
    mix_test(env, "statement")


@test("stats.wait_time_only_when_pool_saturated", timeout=60)
def t_wait(env):
    s = env.sluice({"pool_mode": "transaction", "default_pool_size": "1",
                    "min_pool_size": "0"}, fresh=True)
    reset_both(env, s)
    holder = s.connect()
    hc = holder.cursor()
    hc.execute("BEGIN")
    hc.execute("SELECT 42 AS held")
    done = {}

    def waiter():
        c = s.connect()
        c.cursor().execute("SELECT 7 AS waited")
        done["at"] = time.monotonic()
        c.close()

    t = threading.Thread(target=waiter)
    started = time.monotonic()
    t.start()
    time.sleep(0.5)
    hc.execute("COMMIT")
    t.join(10)
    holder.close()
    check("at" in done, "the waiting client never ran")
    check(done["at"] - started >= 0.4, "the waiting client did not wait")
    rows = {canon(r["query"]): r for r in admin_rows(s, "SHOW QUERIES")}
    waited = rows.get(canon("SELECT $1 AS waited"))
    held = rows.get(canon("SELECT $1 AS held"))
    check(waited is not None and held is not None, f"rows: {sorted(rows)}")
    check(waited["wait_ms"] >= 300, f"queued statement shows no wait: {waited}")
    check(held["wait_ms"] < 50, f"statement on a free pool shows wait: {held}")


@test("stats.track_statements_off_records_nothing", timeout=60)
def t_off(env):
    s = env.sluice({"track_statements": "off"}, fresh=True)
    c = s.connect()
    for i in range(20):
        c.cursor().execute("SELECT %s AS n", (i,))
    c.close()
    check(admin_rows(s, "SHOW QUERIES") == [], "rows recorded with track_statements = off")


@test("stats.show_queries_order_and_limit", timeout=60)
def t_order(env):
    s = env.sluice({"pool_mode": "session"}, fresh=True)
    c = s.connect()
    cur = c.cursor()
    for i in range(5):
        cur.execute("SELECT %s AS few", (i,))
    for i in range(12):
        cur.execute("SELECT %s AS many", (i,))
    cur.execute("SELECT pg_sleep(0.05)")
    c.close()
    top = admin_rows(s, "SHOW QUERIES ORDER BY calls LIMIT 1")
    check(len(top) == 1 and canon(top[0]["query"]) == canon("SELECT $1 AS many"),
          f"ORDER BY calls LIMIT 1: {top}")
    by_total = admin_rows(s, "show queries;")
    check(canon(by_total[0]["query"]) == canon("SELECT pg_sleep($1)"),
          f"default order is total time: {[r['query'] for r in by_total]}")
    w = s.wire(user="admin", dbname="sluice")
    try:
        w.send(msg(b"Q", b"SHOW QUERIES ORDER BY nonsense\0"))
        t, payload = w.read_msg()
        check(t == b"E" and b"42601" in payload, f"bad ORDER BY: {t} {payload!r}")
        t, _ = w.read_msg()
        check(t == b"Z", "the console stays usable after a bad command")
    finally:
        w.close()


def pgss_counts(env):
    out = {}
    for q, calls, rows in env.pg.query(
            "SELECT query, calls, rows FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'app'", dbname="app"):
        k = canon(q).rstrip(";").strip()
        c0, r0 = out.get(k, (0, 0))
        out[k] = (c0 + calls, r0 + rows)
    return out


@test("stats.prepared_statements_match_pg_stat_statements", timeout=150)
def t_prepared(env):
    """pgbench's TPC-B script with -M extended (unnamed statements) and
    -M prepared (named ones, parsed once per connection, then only Bind and
    Execute) in session and transaction mode: every statement's calls and
    rows as pg_stat_statements has them."""
    env.ensure_pgbench()
    clients, txns = 3, 100
    for mode in ("session", "transaction"):
        for proto in ("extended", "prepared"):
            s = env.sluice({"pool_mode": mode}, fresh=True)
            env.pg.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname="app")
            env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
            r = pgbench(s, "-n", "-M", proto, "-c", str(clients), "-t", str(txns), "app")
            check(r.returncode == 0, f"pgbench {mode} {proto}: {r.stdout[-800:]}")
            ours = {canon(x["query"]): x for x in admin_rows(s, "SHOW QUERIES")
                    if x["database"] == "app"}
            theirs = pgss_counts(env)
            n = clients * txns
            for text, cls in (
                    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
                     "update"),
                    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", "select"),
                    ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
                     "update"),
                    ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                     "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", "insert")):
                k = canon(text)
                check(k in ours, f"{mode} {proto}: no row for {text!r}: {sorted(ours)}")
                check(theirs.get(k) == (n, n),
                      f"{mode} {proto}: pg_stat_statements has {theirs.get(k)} for {text!r}")
                check((ours[k]["calls"], ours[k]["rows"]) == (n, n),
                      f"{mode} {proto}: sluice counts {ours[k]['calls']}/{ours[k]['rows']} "
                      f"for {text!r}, expected {n}/{n}")
                check(ours[k]["class"] == cls, f"{mode} {proto}: class of {text!r}: "
                      f"{ours[k]['class']}")
            # BEGIN and END are statements too, of class tcl
            tcl = [x for x in ours.values() if x["class"] == "tcl"]
            check(sum(x["calls"] for x in tcl) == 2 * n,
                  f"{mode} {proto}: BEGIN/END calls {[(x['query'], x['calls']) for x in tcl]}")


@test("stats.literals_only_with_track_literals", timeout=60)
def t_literals(env):
    for on in (False, True):
        s = env.sluice({"track_literals": "on" if on else "off"}, fresh=True)
        c = s.connect()
        c.cursor().execute("SELECT 'secret-4711' AS lit")
        c.close()
        rows = [r for r in admin_rows(s, "SHOW QUERIES") if "AS lit" in r["query"]]
        check(len(rows) == 1, f"one row expected: {rows}")
        r = rows[0]
        check("secret-4711" not in r["query"], f"literal in the normalized text: {r}")
        if on:
            check(r["example"] == "SELECT 'secret-4711' AS lit", f"example: {r}")
        else:
            check(r["example"] is None, f"an example without track_literals: {r}")
            check("secret-4711" not in open(s.log).read(), "literal in the log")
