"""The four client-facing timeouts, in transaction mode: each ends the client
with an ErrorResponse that names the timeout, and leaves no work behind on
PostgreSQL."""
import struct
import time

from harness import (Closed, PgError, TestFailure, Wire, check, m_query, parse_fields, test,
                     wait_until)

TX = {"pool_mode": "transaction", "default_pool_size": "5"}


def fatal_of(w, timeout):
    """Wait for the ErrorResponse that ends w; returns (fields, seconds waited)."""
    t0 = time.time()
    w.settimeout(timeout)
    try:
        while True:
            t, p = w.read_msg()
            if t == b"E":
                return parse_fields(p), time.time() - t0
    except (Closed, ConnectionResetError) as e:
        raise TestFailure(f"connection ended without an ErrorResponse: {e!r}")
    except OSError as e:
        raise TestFailure(f"no ErrorResponse within {timeout}s: {e!r}")


def check_fatal(w, timeout, code, name, lo, hi):
    f, dt = fatal_of(w, timeout)
    check(f.get("C") == code, f"{name}: SQLSTATE {f.get('C')} ({f.get('M')}), want {code}")
    check(name in f.get("M", ""), f"{name}: message does not name it: {f.get('M')!r}")
    check(lo <= dt <= hi, f"{name}: error after {dt:.1f}s, expected {lo}-{hi}s")
    check(w.at_eof(3), f"{name}: connection left open after the error")
    w.close()


def keeper_ok(keeper, step):
    check(keeper.query("SELECT 1") == [["1"]], f"another client broken by {step}")


@test("timeouts.client_login_timeout")
def t_client_login_timeout(env):
    s = env.sluice(settings=dict(TX, client_login_timeout="1"))
    keeper = s.wire()
    # a startup packet, then silence where the SCRAM answer should be
    w = Wire("127.0.0.1", s.port)
    w.startup({"user": "app", "database": "app"})
    t, p = w.read_msg()
    check(t == b"R" and struct.unpack("!I", p[:4])[0] == 10,
          f"expected a SASL request, got {t!r}")
    check_fatal(w, 5, "57014", "client_login_timeout", 0.8, 2.8)
    # a connection that never sends its startup packet is closed too
    w = Wire("127.0.0.1", s.port)
    t0 = time.time()
    check(w.at_eof(5), "a silent connection stayed open past client_login_timeout")
    dt = time.time() - t0
    check(dt >= 0.8, f"a silent connection was closed after {dt:.1f}s")
    w.close()
    keeper_ok(keeper, "client_login_timeout")
    keeper.close()


@test("timeouts.client_idle_timeout")
def t_client_idle_timeout(env):
    s = env.sluice(settings=dict(TX, client_idle_timeout="1.5"))
    idle = s.wire()
    busy = s.wire()
    t0 = time.time()
    while time.time() - t0 < 3:
        keeper_ok(busy, "client_idle_timeout")
        time.sleep(0.3)
    check_fatal(idle, 3, "57P05", "client_idle_timeout", 0, 2.5)
    keeper_ok(busy, "client_idle_timeout")
    busy.close()


@test("timeouts.idle_transaction_timeout")
def t_idle_transaction_timeout(env):
    env.ensure_pgbench()
    s = env.sluice(settings=dict(TX, idle_transaction_timeout="1"))
    keeper = s.wire()
    # a transaction that keeps working is left alone
    w = s.wire()
    w.query("BEGIN")
    for _ in range(8):
        w.query("SELECT 1")
        time.sleep(0.3)
    w.query("COMMIT")
    # one that goes quiet holding a lock is ended, and the lock goes with it
    w.query("BEGIN")
    w.query("LOCK TABLE pgbench_branches IN ACCESS EXCLUSIVE MODE")
    check_fatal(w, 5, "25P03", "idle_transaction_timeout", 0.8, 2.8)
    held = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'pgbench_branches' AND l.mode = 'AccessExclusiveLock'")
    check(wait_until(lambda: env.pg.query(held, dbname="app")[0][0] == 0, 3),
          "the lock outlived the timed-out transaction")
    check(env.backends(where="AND state LIKE 'idle in transaction%%'") == 0,
          "a server was left idle in transaction")
    keeper_ok(keeper, "idle_transaction_timeout")
    keeper.close()


@test("timeouts.query_timeout")
def t_query_timeout(env):
    s = env.sluice(settings=dict(TX, query_timeout="1"))
    keeper = s.wire()
    # a query just under the limit completes
    short = s.wire()
    check(short.query("SELECT pg_sleep(0.3), 'ok'")[0][1] == "ok", "a short query failed")
    short.close()
    w = s.wire()
    w.send(m_query("SELECT 'it-query-timeout', pg_sleep(20)"))
    check_fatal(w, 5, "57014", "query_timeout", 0.8, 2.8)
    running = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
               "AND query LIKE '%it-query-timeout%' AND pid <> pg_backend_pid()")
    try:
        check(wait_until(lambda: env.pg.query(running)[0][0] == 0, 3),
              "the timed-out query still runs on PostgreSQL")
    finally:
        env.pg.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                     "WHERE query LIKE '%it-query-timeout%' AND pid <> pg_backend_pid()")
    keeper_ok(keeper, "query_timeout")
    keeper.close()


@test("timeouts.off_by_default")
def t_off_by_default(env):
    """Without the settings, an idle client and an idle transaction live on."""
    s = env.sluice(settings=TX)
    w = s.wire()
    w.query("BEGIN")
    time.sleep(2.2)
    try:
        check(w.query("SELECT 2") == [["2"]], "idle transaction broken")
        w.query("COMMIT")
    except (PgError, Closed) as e:
        raise TestFailure(f"a client was ended with no timeout set: {e}")
    w.close()

