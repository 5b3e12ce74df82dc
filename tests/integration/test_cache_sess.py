"""The result cache for named statements in session mode, against real
PostgreSQL and Redis.

In session mode the client's own server holds its named statements, so a
Bind of one is answered from the cache only while sluice knows for sure
what the name means at that server: a statement PostgreSQL accepted (its
ParseComplete came back) and described. pgbench -M prepared and a
raw-protocol client hit (pg_stat_statements calls do not rise); after a
Close, an SQL DEALLOCATE (each form), DISCARD ALL, a Parse that failed or
was skipped after an error, the next Bind gets PostgreSQL's own answer
(26000), never cached rows; a name parsed again with another text or
shape never returns the old rows; PgJDBC past prepareThreshold hits and
survives an ALTER under its statement; a cancel of a Bind group waiting
on another client's miss answers the whole group.
"""
import os

from harness import M_SYNC, check, m_bind, m_close, m_describe, m_execute, m_parse, \
    m_query, pgbench, test
from test_cache import cache_row, calls, setup, start
from test_cache_ext import READ, group, jdbc_reads, run, vals


def prepare(w, name, sql, oids=(), want=b"1tTZ"):
    """Parse <name> and describe it (the shape sluice keys the entry on)."""
    types, _, errs = run(w, m_parse(name, sql, oids) + m_describe(b"S", name) + M_SYNC)
    check(types == want and not errs, f"Parse {name}: {types} {errs}")


def bind(w, name, params, describe=True):
    return run(w, group("", params, name=name, describe=describe, parse=False))


def served(env, w, name, marker, value="7"):
    """Bind <name> twice: the second is a hit (no new call at PostgreSQL)."""
    seen = []
    for i in range(2):
        types, rows, errs = bind(w, name, [value])
        check(types == b"2TDCZ" and vals(rows) == [value] and not errs,
              f"Bind {name} #{i}: {types} {vals(rows)} {errs}")
        seen.append(calls(env, marker))
    check(seen[1] == seen[0], f"Bind {name}: the second ran at PostgreSQL too, not a hit")


def gone(w, name, what):
    """A Bind of <name> gets PostgreSQL's error: the statement does not exist."""
    types, rows, errs = bind(w, name, ["7"])
    check(rows == [] and len(errs) == 1 and b"C26000" in errs[0],
          f"after {what}: Bind {name} answered {types} rows {vals(rows)} errors {errs}, "
          "want PostgreSQL's 26000")


@test("cache sess: pgbench -M prepared in session mode hits", timeout=120)
def t_pgbench(env):
    # fails without named statements followed in session mode: every read
    # ran at PostgreSQL
    setup(env)
    # pgbench takes ":cache" of a comment hint for a variable: a [cache]
    # table rule marks the read instead
    s = start(env, mode="session", **{"table.cache_t": "60"})
    script = os.path.join(env.root, "sess_bench.sql")
    with open(script, "w") as fh:
        fh.write("\\set id random(1, 20)\n"
                 "SELECT v AS sess_bench FROM cache_t WHERE id = :id;\n")
    before = cache_row(s)
    r = pgbench(s, "-n", "-M", "prepared", "-c", "2", "-t", "100", "-f", script, "app")
    check(r.returncode == 0, f"pgbench -M prepared: {r.stdout[-500:]}")
    n = calls(env, "sess_bench")
    # 200 reads of 20 keys: each client's first (its Describe teaches the
    # shape) and each key's first miss run at PostgreSQL
    check(n <= 30, f"pgbench: {n} of 200 reads ran at PostgreSQL")
    after = cache_row(s)
    check(after["hits"] - before["hits"] >= 170, f"pgbench: {before} -> {after}")


@test("cache sess: a named statement hits; after Close S a Bind S gets 26000")
def t_close(env):
    # fails without the change at the first served(): no hit in session mode
    setup(env)
    s = start(env, mode="session")
    m = "sess_close"
    q = READ.format(m=m)
    w = s.wire()
    prepare(w, "s1", q)
    served(env, w, "s1", m)
    # without a Describe: its own entry, keyed on the shape described
    for i in range(2):
        types, rows, errs = bind(w, "s1", ["7"], describe=False)
        check(types == b"2DCZ" and vals(rows) == ["7"] and not errs,
              f"no Describe #{i}: {types} {errs}")
    types, _, errs = run(w, m_close(b"S", "s1") + M_SYNC)
    check(types == b"3Z" and not errs, f"Close: {types} {errs}")
    gone(w, "s1", "Close")
    # a Close pipelined ahead of the Bind, in one batch
    prepare(w, "s2", q)
    served(env, w, "s2", m)
    w.send(m_close(b"S", "s2") + m_bind("", "s2", ["7"]) + m_describe(b"P", "")
           + m_execute("", 0) + M_SYNC)
    msgs = w.collect(until_ready=1)
    errs = [p for t, p in msgs if t == b"E"]
    check(not [p for t, p in msgs if t == b"D"] and errs and b"C26000" in errs[0],
          f"Close+Bind in one batch: {msgs}")
    w.close()


@test("cache sess: after DEALLOCATE (each form) and DISCARD ALL a Bind S gets 26000")
def t_deallocate(env):
    # fails without the change at the first served(): no hit in session mode
    setup(env)
    s = start(env, mode="session")
    m = "sess_dealloc"
    q = READ.format(m=m)
    w = s.wire()
    for how in ("DEALLOCATE s1", "DEALLOCATE PREPARE s1", "deallocate all", "DISCARD ALL"):
        prepare(w, "s1", q)
        served(env, w, "s1", m)
        w.query(how)
        gone(w, "s1", how)
    # DEALLOCATE through the extended protocol (an unnamed statement)
    prepare(w, "s1", q)
    served(env, w, "s1", m)
    types, _, errs = run(w, m_parse("", "DEALLOCATE s1") + m_bind("", "", [])
                         + m_execute("", 0) + M_SYNC)
    check(not errs, f"extended DEALLOCATE: {types} {errs}")
    gone(w, "s1", "an extended DEALLOCATE")
    # and through a named statement, bound twice: the second run deallocates
    # the s1 parsed again after the first
    prepare(w, "d", "DEALLOCATE s1", want=b"1tnZ")
    prepare(w, "s1", q)
    served(env, w, "s1", m)
    types, _, errs = run(w, m_bind("", "d", []) + m_execute("", 0) + M_SYNC)
    check(not errs, f"named DEALLOCATE: {types} {errs}")
    gone(w, "s1", "a named DEALLOCATE statement")
    # dynamic SQL in a function of the user's, and in DO: sluice sees the
    # call, not what it runs
    w.query("CREATE OR REPLACE FUNCTION sess_dealloc(n text) RETURNS int LANGUAGE plpgsql"
            " AS $$ BEGIN EXECUTE 'DEALLOCATE ' || n; RETURN 1; END $$")
    for how in ("SELECT sess_dealloc('s1')",
                "DO $$ BEGIN EXECUTE 'DEALLOCATE s1'; END $$"):
        prepare(w, "s1", q)
        served(env, w, "s1", m)
        w.query(how)
        # the call bumps the database (it may write): another client
        # stores the rows again, so only sluice's forgetting s1 stands
        # between a Bind of s1 and those rows
        w2 = s.wire()
        prepare(w2, "s1", q)
        served(env, w2, "s1", m)
        w2.close()
        gone(w, "s1", how)
    w.close()


@test("cache sess: a Parse that failed or was skipped after an error names nothing")
def t_failed_parse(env):
    # the cache holds rows for s1's text and shape (served() first, which
    # fails without the change); a Parse of s1 that PostgreSQL refused or
    # skipped must not make a later Bind s1 a hit
    setup(env)
    s = start(env, mode="session")
    m = "sess_fail"
    q = READ.format(m=m)
    w = s.wire()
    prepare(w, "s1", q)
    served(env, w, "s1", m)
    run(w, m_close(b"S", "s1") + M_SYNC)
    # a syntax error
    types, _, errs = run(w, m_parse("s1", "SELEC /* sluice:cache */ v AS " + m)
                         + m_describe(b"S", "s1") + M_SYNC)
    check(errs and b"C42601" in errs[0], f"syntax error expected: {types} {errs}")
    gone(w, "s1", "a Parse with a syntax error")
    # the right text, skipped after an earlier error in its batch
    types, _, errs = run(w, m_parse("bad", "SELEC 1") + m_parse("s1", q)
                         + m_describe(b"S", "s1") + M_SYNC)
    check(types == b"EZ" and b"C42601" in errs[0], f"skipped Parse: {types} {errs}")
    gone(w, "s1", "a Parse skipped after an error")
    # pipelined: a failing batch, then one that prepares s1, in one write;
    # the second's replies are matched to its own requests
    w.send(m_parse("bad", "SELEC 1") + m_parse("s1", q) + M_SYNC
           + m_parse("s1", q) + m_describe(b"S", "s1") + M_SYNC)
    msgs = w.collect(until_ready=2)
    types = b"".join(t for t, _ in msgs)
    check(types == b"EZ1tTZ", f"pipelined batches: {types}")
    served(env, w, "s1", m)
    run(w, m_close(b"S", "s1") + M_SYNC)
    # a Parse of a name that exists fails (42P05): s1 stays what it was at
    # the server. Texts A and B have one shape; were B taken for s1's text,
    # A's rows would be stored under B's key, and another client's real B
    # would get them
    a = "SELECT /* sluice:cache */ v + 0 AS " + m + " FROM cache_t WHERE id = $1"
    b = "SELECT /* sluice:cache */ v + 1000 AS " + m + " FROM cache_t WHERE id = $1"
    prepare(w, "s2", a)
    types, _, errs = run(w, m_parse("s2", b) + M_SYNC)
    check(errs and b"C42P05" in errs[0], f"duplicate Parse: {types} {errs}")
    run(w, m_describe(b"S", "s2") + M_SYNC)
    for i in range(3):
        types, rows, errs = bind(w, "s2", ["7"])
        check(vals(rows) == ["7"] and not errs, f"s2 (A) #{i}: {vals(rows)} {errs}")
    w2 = s.wire()
    prepare(w2, "s2", b)
    for i in range(3):
        types, rows, errs = bind(w2, "s2", ["7"])
        check(vals(rows) == ["1007"] and not errs, f"another client's s2 (B) #{i}: {vals(rows)}")
    w2.close()
    w.close()


@test("cache sess: a name parsed again with another text or shape never returns the old rows")
def t_redefine(env):
    setup(env)
    s = start(env, mode="session")
    m = "sess_redef"
    q = READ.format(m=m)
    other = ("SELECT /* sluice:cache */ v + 1000 AS " + m + ", 'x' AS extra"
             " FROM cache_t WHERE id = $1")
    w = s.wire()
    prepare(w, "s1", q)
    served(env, w, "s1", m)  # fails without the change: no hit
    # Close and Parse again in one batch, then Bind without a Describe first:
    # PostgreSQL answers (the new shape is not known yet)
    types, rows, errs = run(w, m_close(b"S", "s1") + m_parse("s1", other)
                            + m_bind("", "s1", ["7"]) + m_describe(b"P", "")
                            + m_execute("", 0) + M_SYNC)
    check(types == b"312TDCZ" and not errs, f"redefined: {types} {errs}")
    check([r for r in rows] and vals(rows) == ["1007"], f"redefined s1 answered {vals(rows)}")
    for i in range(3):
        types, rows, errs = bind(w, "s1", ["7"])
        check(vals(rows) == ["1007"] and not errs, f"redefined s1 #{i}: {vals(rows)} {errs}")
        types, rows, errs = bind(w, "s1", ["7"], describe=False)
        check(vals(rows) == ["1007"] and not errs,
              f"redefined s1, no Describe #{i}: {vals(rows)} {errs}")
    # the same text again under the name, with another parameter type
    run(w, m_close(b"S", "s1") + M_SYNC)
    prepare(w, "s1", q, oids=(23,))
    for i in range(3):
        types, rows, errs = bind(w, "s1", ["7"])
        check(vals(rows) == ["7"] and not errs, f"s1 with int4 #{i}: {vals(rows)} {errs}")
    # a Query's rows between a Describe and its reply are not the shape
    w.send(m_query("SELECT 1 AS a, 2 AS b") + m_close(b"S", "s1") + M_SYNC)
    w.collect(until_ready=2)
    prepare(w, "s1", other)
    for i in range(3):
        types, rows, errs = bind(w, "s1", ["8"])
        check(vals(rows) == ["1008"] and not errs, f"s1 again #{i}: {vals(rows)} {errs}")
    w.close()


@test("cache sess: PgJDBC past prepareThreshold hits in session mode, and an ALTER under it",
      timeout=180)
def t_jdbc(env):
    n, _ = jdbc_reads(env, "session")
    # 46 reads of 2 keys; before this change the 37 named ones all ran at
    # PostgreSQL
    check(n <= 14, f"PgJDBC: {n} of 46 reads ran at PostgreSQL")


@test("cache sess: a cancel of a Bind S group waiting on another client's miss consumes "
      "the whole group", timeout=60)
def t_cancel_waiting_group(env):
    # fails before the fix in proxy_cache_cancel_wait: only the Bind was
    # taken off the client's input, so its Describe, Execute and Sync went
    # to PostgreSQL after sluice's own error and ReadyForQuery, and the
    # client got two ReadyForQuery for one Sync
    import time
    from harness import send_cancel, wait_until
    from test_cache_flight import Locked, lock_waiters
    from test_cache_flight import setup as flight_setup
    flight_setup(env)
    s = start(env, mode="session")
    m = "sess_wcancel"
    q = "SELECT /* sluice:cache */ v AS " + m + " FROM flight_t WHERE id = $1"
    lead, wait = s.wire(), s.wire()
    prepare(lead, "s1", q)
    prepare(wait, "s1", q)
    lock = Locked(env)
    try:
        lead.send(group("", ["7"], name="s1", parse=False))
        check(wait_until(lambda: lock_waiters(env, m), 10), "the leader never ran")
        wait.send(group("", ["7"], name="s1", parse=False))
        time.sleep(0.3)  # its lookup now waits on the leader's flight
        send_cancel("127.0.0.1", s.port, wait.backend_key)
        wait.settimeout(5)
        msgs = wait.collect(until_ready=1)
        errs = [p for t, p in msgs if t == b"E"]
        check(errs and b"C57014" in errs[0], f"the cancelled waiter got {msgs}")
        lock.release()
        types, rows, errs = run(lead, b"")  # the leader's reply
        check(vals(rows) == ["21"] and not errs, f"the leader got {vals(rows)} {errs}")
        # the waiter's connection answers its next request, and only it
        types, rows, errs = run(wait, m_query("SELECT 42"))
        check(types == b"TDCZ" and vals(rows) == ["42"],
              f"after the cancel the waiter got {types} {vals(rows)} {errs}")
    finally:
        lock.release()
    lead.close()
    wait.close()
