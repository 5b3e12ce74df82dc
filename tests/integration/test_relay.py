"""The relay of client messages in every pool mode: big messages stream
through with bounded memory, the prepared-statement registry shrinks when
its users go, backpressure resumes, query_timeout times each query, only
DISCARD ALL drops prepared statements, and a malformed Query gets the
08P01 PostgreSQL gives."""
import struct
import threading
import time

from harness import (under_asan, M_SYNC, PASSWORDS, Closed, PgError, TestFailure, check, login_wire, m_bind,
                     m_execute, m_parse, m_query, msg, parse_datarow, parse_fields,
                     run_with_deadline, test, wait_until)

TX = {"pool_mode": "transaction", "default_pool_size": "5"}
BIG = 100 * 1024 * 1024


def status_kb(s, field):
    """A VmXXX line of sluice's /proc/<pid>/status, in kB."""
    with open(f"/proc/{s.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise TestFailure(f"no {field} in /proc/{s.proc.pid}/status")


def rows_and_errors(msgs):
    rows = [parse_datarow(p) for t, p in msgs if t == b"D"]
    errs = [parse_fields(p) for t, p in msgs if t == b"E"]
    return rows, errs


def send_and_collect(w, data, until_ready=1):
    """Send data from a thread (the reply may start before it is all sent)."""
    sender = threading.Thread(target=w.send, args=(data,), daemon=True)
    sender.start()
    msgs = w.collect(until_ready)
    sender.join(30)
    return msgs


def big_messages(s, what):
    """A 100 MB simple Query, a 100 MB parameter of an unnamed and of a named
    statement: sluice's peak RSS must not grow by more than 16 MB, and RSS
    must come back after."""
    w = s.wire(timeout=120)
    check(w.query("SELECT 1") == [["1"]], "warm-up query failed")
    w.send(m_parse("named_len", "SELECT length($1)") + M_SYNC)
    types = [t for t, _ in w.collect()]
    check(types == [b"1", b"Z"], f"{what}: Parse named_len: {types}")
    base_hwm = status_kb(s, "VmHWM")
    base_rss = status_kb(s, "VmRSS")
    text = b"x" * BIG

    # simple Query whose text is 100 MB
    q = b"SELECT length('" + text + b"')"
    msgs = send_and_collect(w, msg(b"Q", q + b"\0"))
    del q
    rows, errs = rows_and_errors(msgs)
    check(not errs and rows == [[str(BIG)]], f"{what}: 100 MB Query: {errs or rows}")

    # extended protocol: unnamed statement, 100 MB parameter
    data = m_parse("", "SELECT length($1)") + m_bind("", "", [text]) + m_execute() + M_SYNC
    msgs = send_and_collect(w, data)
    del data
    rows, errs = rows_and_errors(msgs)
    check(not errs and rows == [[str(BIG)]], f"{what}: 100 MB Bind (unnamed): {errs or rows}")

    # a named statement (renamed by sluice in transaction mode), 100 MB parameter
    data = m_bind("", "named_len", [text]) + m_execute() + M_SYNC
    msgs = send_and_collect(w, data)
    del data
    rows, errs = rows_and_errors(msgs)
    check(not errs and rows == [[str(BIG)]], f"{what}: 100 MB Bind (named): {errs or rows}")
    check(w.query("SELECT 'after'") == [["after"]], f"{what}: connection unusable after")

    if under_asan(s):
        w.close()
        return  # ASan's quarantine keeps freed memory: RSS says nothing there
    grown = status_kb(s, "VmHWM") - base_hwm
    check(grown < 16 * 1024, f"{what}: sluice's peak RSS grew by {grown // 1024} MB "
          "relaying 100 MB messages (limit 16 MB)")
    rss = wait_until(lambda: (status_kb(s, "VmRSS") - base_rss < 8 * 1024) or None, 5)
    check(rss, f"{what}: RSS stays {(status_kb(s, 'VmRSS') - base_rss) // 1024} MB above "
          "what it was before the big messages")
    w.close()


@test("relay.big_messages_stream_tx", timeout=180)
def t_big_tx(env):
    big_messages(env.sluice(settings=TX, fresh=True), "transaction mode")


@test("relay.big_messages_stream_statement", timeout=180)
def t_big_stmt(env):
    big_messages(env.sluice(settings={"pool_mode": "statement", "default_pool_size": "5"},
                            fresh=True), "statement mode")


@test("relay.big_named_parse_tx", timeout=60)
def t_big_named_parse(env):
    """A named statement whose text is larger than what sluice inspects whole
    is registered and prepared again on other servers from the kept text."""
    s = env.sluice(settings=dict(TX, default_pool_size="2"), fresh=True)
    pad = "x" * (300 * 1024)
    sql = f"SELECT $1::int + 1, length('{pad}')"
    w = s.wire()
    w.send(m_parse("bigtext", sql, (23,)) + M_SYNC)
    types = [t for t, _ in w.collect()]
    check(types == [b"1", b"Z"], f"Parse bigtext: {types}")
    pids = set()
    for r in range(8):
        holder = None
        if r % 2:
            holder = s.connect(autocommit=False)
            holder.cursor().execute("SELECT 1")
        w.send(m_bind("", "bigtext", [str(r)]) + m_execute()
               + m_parse("", "SELECT pg_backend_pid()") + m_bind("", "") + m_execute()
               + M_SYNC)
        rows, errs = rows_and_errors(w.collect())
        check(not errs, f"round {r}: {errs}")
        check(rows[0] == [str(r + 1), str(len(pad))], f"round {r}: {rows[0]}")
        pids.add(rows[1][0])
        if holder:
            holder.rollback()
            holder.close()
    check(len(pids) == 2, f"bigtext ran on servers {pids}: the test proves nothing")
    # a second client with the same name and text shares it
    w2 = s.wire()
    w2.send(m_parse("bigtext", sql, (23,)) + m_bind("", "bigtext", ["41"]) + m_execute()
            + M_SYNC)
    rows, errs = rows_and_errors(w2.collect())
    check(not errs and rows[0][0] == "42", f"second client: {errs or rows}")
    w.close()
    w2.close()


def admin_mem(s):
    """SHOW MEM's prepared_statement row: (entries, bytes)."""
    a = s.wire(user="admin", dbname="sluice")
    try:
        for row in a.query("SHOW MEM"):
            if row[0] == "prepared_statement":
                return int(row[2]), int(row[4])
    finally:
        a.close()
    raise TestFailure("SHOW MEM has no prepared_statement row")


@test("relay.statement_registry_bounded", timeout=90)
def t_registry(env):
    """Unique named statements of clients that leave do not stay in the
    registry: what remains is at most what the servers keep prepared."""
    s = env.sluice(settings=dict(TX, default_pool_size="2", max_prepared_statements="5"),
                   fresh=True)
    pad = "y" * 2000

    def client(i):
        w = s.wire()
        data = b""
        for j in range(25):
            data += m_parse(f"st{j}", f"SELECT {i * 100 + j}, '{pad}'")
        data += m_bind("", "st3") + m_execute() + M_SYNC
        rows, errs = rows_and_errors(w.send(data) or w.collect())
        w.close()
        if errs or rows[0][0] != str(i * 100 + 3):
            raise TestFailure(f"client {i}: {errs or rows}")

    for i in range(40):
        client(i)
    n, size = wait_until(lambda: (lambda v: v if v[0] <= 10 else None)(admin_mem(s)), 5) \
        or admin_mem(s)
    check(n <= 10, f"{n} statements ({size} bytes) still registered after 1000 unique "
          "ones of clients that left; 2 servers x max_prepared_statements 5 keep at most 10")
    check(size < 10 * (len(pad) + 1024), f"registry still holds {size} bytes")
    # a statement in use survives its first client's exit
    a = s.wire()
    b = s.wire()
    a.send(m_parse("shared", "SELECT 'shared'") + M_SYNC)
    a.collect()
    b.send(m_parse("shared", "SELECT 'shared'") + M_SYNC)
    b.collect()
    a.close()
    rows, errs = rows_and_errors(b.send(m_bind("", "shared") + m_execute() + M_SYNC)
                                 or b.collect())
    check(not errs and rows == [["shared"]], f"shared statement after a client left: {errs}")
    b.close()


def slow_reader(s, what):
    """A client that reads a 40 MB result slowly gets all of it."""
    w = s.wire(timeout=60)
    w.send(m_query("SELECT repeat('z', 2000), g FROM generate_series(1, 20000) g"))
    got = 0
    last = None
    deadline = time.time() + 50
    while time.time() < deadline:
        t, p = w.read_msg()
        if t == b"D":
            got += 1
            last = parse_datarow(p)[1]
            if got % 500 == 0:
                time.sleep(0.02)
        elif t == b"E":
            raise TestFailure(f"{what}: {parse_fields(p)}")
        elif t == b"Z":
            break
    check(got == 20000 and last == "20000", f"{what}: {got} rows, last {last}")
    check(w.query("SELECT 'after'") == [["after"]], f"{what}: unusable after")
    w.close()


def pipeline_after_big(s, what):
    """After a large message, a long pipeline of small ones that the client
    sends while it reads the replies must not stall (a read stopped at the
    high-water mark must resume when a deferred flush drains the buffer)."""
    w = s.wire(timeout=30)
    q = "SELECT length('" + "x" * (4 * 1024 * 1024) + "')"
    check(w.query(q) == [[str(4 * 1024 * 1024)]], f"{what}: 4 MB query")
    n = 120000
    data = m_parse("", "SELECT 1") + (m_bind("", "") + m_execute()) * n + M_SYNC

    def run():
        msgs = send_and_collect(w, data)
        return sum(1 for t, _ in msgs if t == b"D")

    got = run_with_deadline(run, 40, f"{what}: pipeline of {n} executes")
    check(got == n, f"{what}: {got} rows of {n}")
    w.close()


@test("relay.backpressure_resumes_tx", timeout=120)
def t_bp_tx(env):
    s = env.sluice(settings=TX)
    slow_reader(s, "transaction mode")
    pipeline_after_big(s, "transaction mode")


@test("relay.backpressure_resumes_session", timeout=120)
def t_bp_session(env):
    s = env.sluice(settings={"pool_mode": "session"})
    slow_reader(s, "session mode")
    pipeline_after_big(s, "session mode")


@test("relay.backpressure_resumes_after_injected_parses", timeout=90)
def t_bp_injected(env):
    """One read of the client's makes sluice queue more than the high-water
    mark for the server in small pieces (Parses it injects for statements the
    server lost after DDL); the end-of-iteration flush drains them with no
    write watcher: reading the client must resume there, or it hangs."""
    s = env.sluice(settings=dict(TX, default_pool_size="1"), fresh=True)
    w = s.wire(timeout=30)
    names = [f"inj{i}" for i in range(40)]
    for i, name in enumerate(names):
        w.send(m_parse(name, f"SELECT {i} /* {'p' * 10000} */") + M_SYNC)
        check([t for t, _ in w.collect()] == [b"1", b"Z"], f"Parse {name}")
    # DDL: every server's statements are dropped when it is next linked
    w.query("CREATE TABLE IF NOT EXISTS relay_bp_ddl (a int)")
    w.query("DROP TABLE relay_bp_ddl")
    rounds = 3000
    data = b"".join(m_bind("", name) + m_execute() for name in names) * rounds + M_SYNC

    def run():
        msgs = send_and_collect(w, data)
        errs = [parse_fields(p) for t, p in msgs if t == b"E"]
        if errs:
            raise TestFailure(f"errors: {errs[:3]}")
        return sum(1 for t, _ in msgs if t == b"D")

    got = run_with_deadline(run, 40, "pipeline after the statements were dropped")
    check(got == rounds * len(names), f"{got} rows of {rounds * len(names)}")
    w.close()


@test("relay.query_timeout_per_query", timeout=60)
def t_query_timeout(env):
    s = env.sluice(settings=dict(TX, query_timeout="1"))
    # simple protocol: 12 queries of 0.25 s sent at once (3 s in all)
    w = s.wire()
    data = b"".join(m_query(f"SELECT pg_sleep(0.25), {i}") for i in range(12))
    try:
        msgs = send_and_collect(w, data, until_ready=12)
    except (PgError, Closed) as e:
        raise TestFailure(f"pipeline of short simple queries cancelled: {e}")
    rows, errs = rows_and_errors(msgs)
    check(not errs and len(rows) == 12, f"simple pipeline: {errs or len(rows)}")
    # extended protocol: 12 executes of 0.25 s before one Sync
    data = m_parse("", "SELECT pg_sleep(0.25)")
    data += (m_bind("", "") + m_execute()) * 12 + M_SYNC
    try:
        msgs = send_and_collect(w, data)
    except (PgError, Closed) as e:
        raise TestFailure(f"pipeline of short executes cancelled: {e}")
    rows, errs = rows_and_errors(msgs)
    check(not errs and len(rows) == 12, f"extended pipeline: {errs or len(rows)}")
    # one query longer than the limit is still cancelled
    t0 = time.time()
    try:
        w.query("SELECT pg_sleep(5)")
        raise TestFailure("a 5 s query outlived query_timeout = 1")
    except PgError as e:
        check(e.code == "57014", f"long query: SQLSTATE {e.code}")
    check(time.time() - t0 < 3.5, f"long query cancelled after {time.time() - t0:.1f}s")
    w.close()


@test("relay.discard_plans_keeps_statements", timeout=60)
def t_discard(env):
    s = env.sluice(settings=dict(TX, default_pool_size="1"), fresh=True)
    w = s.wire()
    w.send(m_parse("d1", "SELECT 'd1'") + M_SYNC)
    check([t for t, _ in w.collect()] == [b"1", b"Z"], "Parse d1")
    for i, cmd in enumerate(("DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES",
                             "discard  plans;")):
        w.query(cmd)
        for rnd in range(2):
            rows, errs = rows_and_errors(w.send(m_bind("", "d1") + m_execute() + M_SYNC)
                                         or w.collect())
            check(not errs and rows == [["d1"]], f"Bind d1 after {cmd} ({rnd}): {errs}")
            # the same text under a new name (new each time: these DISCARDs
            # keep statements, so PostgreSQL refuses a name again, 42P05)
            name = f"d{i}_{rnd}"
            rows, errs = rows_and_errors(
                w.send(m_parse(name, "SELECT 'd1'") + m_bind("", name)
                       + m_execute() + M_SYNC) or w.collect())
            check(not errs and rows == [["d1"]], f"Parse again after {cmd} ({rnd}): {errs}")
    # DISCARD ALL drops them, as in PostgreSQL, and they can be made again
    w.query("DISCARD ALL")
    msgs = w.send(m_bind("", "d1") + m_execute() + M_SYNC) or w.collect()
    codes = [parse_fields(p).get("C") for t, p in msgs if t == b"E"]
    check(codes == ["26000"], f"Bind d1 after DISCARD ALL: {codes}")
    rows, errs = rows_and_errors(w.send(m_parse("d1", "SELECT 'd1'") + m_bind("", "d1")
                                        + m_execute() + M_SYNC) or w.collect())
    check(not errs and rows == [["d1"]], f"Parse d1 after DISCARD ALL: {errs}")
    for rnd in range(2):
        rows, errs = rows_and_errors(w.send(m_bind("", "d1") + m_execute() + M_SYNC)
                                     or w.collect())
        check(not errs and rows == [["d1"]], f"Bind d1 made again ({rnd}): {errs}")
    # DISCARD ALL refused inside a transaction block forgets nothing
    w.query("BEGIN")
    try:
        w.query("DISCARD ALL")
    except PgError as e:
        check(e.code == "25001", f"DISCARD ALL in a transaction: {e.code}")
    w.query("ROLLBACK")
    rows, errs = rows_and_errors(w.send(m_bind("", "d1") + m_execute() + M_SYNC)
                                 or w.collect())
    check(not errs and rows == [["d1"]], f"Bind d1 after a refused DISCARD ALL: {errs}")
    # and d1 is still there for PostgreSQL's rule on names
    msgs = w.send(m_parse("d1", "SELECT 'd1'") + M_SYNC) or w.collect()
    codes = [parse_fields(p).get("C") for t, p in msgs if t == b"E"]
    check(codes == ["42P05"], f"Parse of the kept d1: {codes}")
    w.close()


def no_nul_answer(w, size):
    """Send a Query whose text lacks its final NUL; the answer up to
    ReadyForQuery as (severity, SQLSTATE, message, status)."""
    w.send(msg(b"Q", b"SELECT '" + b"q" * size + b"'"))
    try:
        msgs = w.collect()
    except PgError as e:
        return (e.fields.get("S"), e.code, e.fields.get("M"), "closed")
    except Closed:
        return ("closed", None, None, "closed")
    errs = [parse_fields(p) for t, p in msgs if t == b"E"]
    if not errs:
        return ("no error", None, None, msgs[-1][1])
    return (errs[0].get("S"), errs[0].get("C"), errs[0].get("M"), msgs[-1][1])


@test("relay.query_without_nul", timeout=60)
def t_no_nul(env):
    """In every mode, sluice answers as PostgreSQL 15 does: ERROR 08P01
    "invalid string in message", ReadyForQuery, and the session goes on
    (inside a transaction block too), whether the Query is small or streams."""
    direct = login_wire("127.0.0.1", env.pg.port, "app", "app", PASSWORDS["app"])
    want = no_nul_answer(direct, 10)
    direct.query("BEGIN")
    want_tx = no_nul_answer(direct, 10)
    direct.close()
    check(want[:2] == ("ERROR", "08P01"), f"PostgreSQL itself answers {want}")
    for mode in ("session", "transaction", "statement"):
        s = env.sluice(settings={"pool_mode": mode, "default_pool_size": "1"})
        for size in (10, 200 * 1024):
            w = s.wire()
            got = no_nul_answer(w, size)
            check(got == want, f"{mode} mode, {size} bytes: {got}, PostgreSQL: {want}")
            check(w.query("SELECT 'same'") == [["same"]], f"{mode} mode: session lost")
            if mode != "statement":
                w.query("BEGIN")
                got = no_nul_answer(w, size)
                check(got == want_tx, f"{mode} mode, in a transaction: {got}, "
                      f"PostgreSQL: {want_tx}")
                w.query("ROLLBACK")
            w.close()
        w = s.wire()
        check(w.query("SELECT 'next'") == [["next"]], f"{mode} mode: next client failed")
        w.close()
