"""Single flight: concurrent misses of one key make one backend query.

Fifty clients send the same marked read of a cold key at once. To make
"at once" certain rather than a matter of timing, a direct connection holds
an ACCESS EXCLUSIVE lock on the table while they send: the first lookup's
leader reaches PostgreSQL and waits on the lock, the others must be waiting
on that leader inside sluice. The proof is on PostgreSQL's side: while the
lock is held exactly one backend runs the statement, and afterwards
pg_stat_statements has one call for it; every client gets the rows a
direct connection returns.

The same holds for a hot key whose entry just expired. When the leader's
query does not give a result that can be shared (it ends in an error, it
is cancelled at PostgreSQL or while it waits for a server, its client goes
away, Redis dies meanwhile), the waiters are never left hanging: they go
to PostgreSQL and get what a direct connection gets, the same error
included. And a write that commits through sluice while a
flight is out cuts it off: a read sent after the write never gets the
flight's result from before it.
"""
import threading
import time

import psycopg2

from harness import check, m_query, test, wait_until
from test_cache import cache_row, calls, start

N = 50

SETUP = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DROP TABLE IF EXISTS flight_t;
CREATE TABLE flight_t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO flight_t SELECT g, g * 3 FROM generate_series(1, 1000) g;
ALTER TABLE flight_t OWNER TO app;
"""

# several rows, so that a waiter served the leader's bytes is checked row by row
READ = ("SELECT /* sluice:cache */ id % 7 AS g, count(*) AS {m}, sum(v) FROM flight_t "
        "GROUP BY 1 ORDER BY 1")
# fails when it runs (after the lock is granted), the same way every time
FAILING = "SELECT /* sluice:cache */ 1 / (v - v) AS {m} FROM flight_t WHERE id = 1"


def setup(env):
    env.pg.query(SETUP, dbname="app")
    env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
    import socket
    with socket.create_connection(("127.0.0.1", env.redis.port), timeout=5) as so:
        so.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        so.recv(64)


def direct(env, sql):
    """What a direct connection returns: ("rows", rows) or ("error", sqlstate, message)."""
    c = psycopg2.connect(host="127.0.0.1", port=env.pg.port, user="app", password="app",
                         dbname="app", connect_timeout=10)
    c.autocommit = True
    try:
        return outcome(c, sql)
    finally:
        c.close()


def outcome(conn, sql):
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return ("rows", cur.fetchall())
    except psycopg2.Error as e:
        return ("error", e.pgcode, e.diag.message_primary)
    finally:
        cur.close()


def active(env, marker):
    """Backends running the statement that holds <marker> (waiting on a lock or not)."""
    r = env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                     "AND query LIKE %s AND pid <> pg_backend_pid()", (f"%{marker}%",))
    return r[0][0]


def lock_waiters(env, marker):
    """pids of the backends running <marker>'s statement and waiting on a lock."""
    r = env.pg.query("SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                     "AND wait_event_type = 'Lock' AND query LIKE %s "
                     "AND pid <> pg_backend_pid()", (f"%{marker}%",))
    return [p for (p,) in r]


class Locked:
    """A direct connection holding ACCESS EXCLUSIVE on flight_t until release()."""

    def __init__(self, env):
        self.c = env.pg.connect(dbname="app")
        self.c.autocommit = False
        self.c.cursor().execute("LOCK TABLE flight_t IN ACCESS EXCLUSIVE MODE")

    def release(self):
        if self.c is not None:
            self.c.rollback()
            self.c.close()
            self.c = None


class Clients:
    """<n> clients of <s>, connected beforehand; go() makes them send <sql>
    together (a barrier); wait() collects what each one got."""

    def __init__(self, s, n, sql):
        self.conns = [s.connect() for _ in range(n)]
        self.sql = sql
        self.out = [None] * n
        self.sent = threading.Barrier(n + 1)
        self.threads = [threading.Thread(target=self._body, args=(i,), daemon=True)
                        for i in range(n)]

    def _body(self, i):
        self.sent.wait(30)
        try:
            self.out[i] = outcome(self.conns[i], self.sql)
        except Exception as e:  # noqa: BLE001 - a lost connection is an outcome too
            self.out[i] = ("exception", repr(e))

    def go(self):
        for t in self.threads:
            t.start()
        self.sent.wait(30)

    def wait(self, timeout):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.time()))
        hung = sum(1 for t in self.threads if t.is_alive())
        check(hung == 0, f"{hung} of {len(self.threads)} clients got no answer "
                         f"within {timeout}s (a waiter hangs)")
        return self.out

    def close(self):
        # a connection still in use by its thread cannot be closed (psycopg2
        # would wait for the thread): it goes when its sluice is stopped
        for c, t in zip(self.conns, self.threads):
            if t.is_alive():
                continue
            try:
                c.close()
            except psycopg2.Error:
                pass


def settle(env, marker, want_active):
    """The clients' Query messages reach sluice (they passed the barrier and
    only have to cross loopback); meanwhile the number of backends running
    the statement must stay <want_active>."""
    check(wait_until(lambda: active(env, marker) >= 1, 10),
          "the leader never reached PostgreSQL")
    for _ in range(10):
        time.sleep(0.1)
        n = active(env, marker)
        check(n == want_active, f"{n} backends run the marked read, want {want_active}: "
                                "concurrent misses were not coalesced")


def fifty_at_once(env, mode):
    setup(env)
    s = start(env, mode=mode)
    marker = "flight_" + mode
    q = READ.format(m=marker)
    want = direct(env, q)
    check(want[0] == "rows" and len(want[1]) == 7, f"direct answer {want}")
    env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
    before = cache_row(s)
    cl = Clients(s, N, q)
    lock = Locked(env)
    try:
        cl.go()
        settle(env, marker, 1)
    finally:
        lock.release()
    try:
        out = cl.wait(20)
        wrong = [(i, o) for i, o in enumerate(out) if o != want]
        check(not wrong, f"{len(wrong)} clients got another answer, e.g. {wrong[:2]}, "
                         f"want {want}")
        n = calls(env, marker)
        check(n == 1, f"PostgreSQL ran the read {n} times for {N} concurrent misses, want 1")
        after = cache_row(s)
        check(after["misses"] - before["misses"] == 1
              and after["hits"] - before["hits"] == N - 1
              and after["stores"] - before["stores"] == 1,
              f"one miss, {N - 1} hits, one store: {before} -> {after}")
        # the entry is there for the next client too (in session mode each
        # of the N holds a server of the pool's N: they leave first)
        cl.close()
        c = s.connect()
        check(outcome(c, q) == want and calls(env, marker) == 1, "a later read was not a hit")
        c.close()
    finally:
        cl.close()
        env.stop_checked(s)


@test("cache flight: 50 concurrent misses of one key make one backend query (transaction mode)")
def t_fifty_tx(env):
    fifty_at_once(env, "transaction")


@test("cache flight: 50 concurrent misses of one key make one backend query (session mode)")
def t_fifty_session(env):
    fifty_at_once(env, "session")


@test("cache flight: a leader whose query fails leaves its waiters the same error")
def t_leader_error(env):
    """Every client, leader and waiters, gets division_by_zero with the
    message a direct connection gets; nothing is stored; the next read
    runs at PostgreSQL again."""
    setup(env)
    s = start(env, mode="transaction")
    marker = "flight_err"
    q = FAILING.format(m=marker)
    want = direct(env, q)
    check(want[0] == "error" and want[1] == "22012", f"direct answer {want}")
    before = cache_row(s)
    cl = Clients(s, N, q)
    lock = Locked(env)
    try:
        cl.go()
        settle(env, marker, 1)
    finally:
        lock.release()
    try:
        out = cl.wait(20)
        wrong = [(i, o) for i, o in enumerate(out) if o != want]
        check(not wrong, f"{len(wrong)} clients did not get the direct connection's error, "
                         f"e.g. {wrong[:2]}, want {want}")
        after = cache_row(s)
        check(after["stores"] == before["stores"] and after["hits"] == before["hits"],
              f"a failed result was shared or stored: {before} -> {after}")
        c = s.connect()
        check(outcome(c, q) == want, "the next read")
        c.close()
    finally:
        cl.close()
        env.stop_checked(s)


def leader_then_waiters(env, s, marker, q):
    """A leader client that reaches PostgreSQL (and waits there on the lock),
    then N - 1 waiters behind it. Returns (leader's Clients, waiters' Clients,
    the lock, the leader's backend pid)."""
    lead = Clients(s, 1, q)
    lock = Locked(env)
    lead.go()
    pids = wait_until(lambda: lock_waiters(env, marker), 10)
    check(pids and len(pids) == 1, f"the leader's backend: {pids}")
    rest = Clients(s, N - 1, q)
    rest.go()
    settle(env, marker, 1)
    return lead, rest, lock, pids[0]


@test("cache flight: a cancelled leader's waiters get the right rows from PostgreSQL")
def t_leader_cancelled(env):
    """The leader's query is cancelled (pg_cancel_backend): the leader gets
    query_canceled as a direct connection would; its waiters, whose queries
    were not cancelled, go to PostgreSQL and get the right rows."""
    setup(env)
    s = start(env, mode="transaction")
    marker = "flight_cancel"
    q = READ.format(m=marker)
    want = direct(env, q)
    lock = None
    try:
        lead, rest, lock, pid = leader_then_waiters(env, s, marker, q)
        env.pg.query("SELECT pg_cancel_backend(%s)", (pid,))
        out = lead.wait(10)
        check(out[0][:2] == ("error", "57014"), f"the cancelled leader got {out[0]}")
        # the waiters were sent on to PostgreSQL, where the lock holds them
        check(wait_until(lambda: active(env, marker) == N - 1, 10),
              f"{active(env, marker)} waiters reached PostgreSQL after the leader's "
              f"cancel, want {N - 1}")
        lock.release()
        out = rest.wait(20)
        wrong = [(i, o) for i, o in enumerate(out) if o != want]
        check(not wrong, f"{len(wrong)} waiters got another answer, e.g. {wrong[:2]}")
        lead.close()
        rest.close()
    finally:
        if lock:
            lock.release()
        env.stop_checked(s)


@test("cache flight: when the leader's client goes away its waiters still get answers")
def t_leader_gone(env):
    """The leader's client closes while its query waits at PostgreSQL: no
    waiter is left behind it; each gets the rows a direct connection gets."""
    setup(env)
    for mode in ("transaction", "session"):
        s = start(env, mode=mode)
        marker = "flight_gone_" + mode
        q = READ.format(m=marker)
        want = direct(env, q)
        lock = Locked(env)
        try:
            w = s.wire()
            w.send(m_query(q))
            check(wait_until(lambda: lock_waiters(env, marker), 10),
                  "the leader never reached PostgreSQL")
            rest = Clients(s, N - 1, q)
            rest.go()
            settle(env, marker, 1)
            w.close()
            # sent on to PostgreSQL (the leader's backend may still wait too)
            check(wait_until(lambda: active(env, marker) >= N - 1, 10),
                  f"{mode}: {active(env, marker)} backends run the read after the "
                  f"leader left, want the {N - 1} waiters")
            lock.release()
            out = rest.wait(20)
            wrong = [(i, o) for i, o in enumerate(out) if o != want]
            check(not wrong, f"{mode}: {len(wrong)} waiters got another answer, "
                             f"e.g. {wrong[:2]}")
            rest.close()
        finally:
            lock.release()
            env.stop_checked(s)


# Slow by computation, not by a lock: its snapshot is taken when it starts,
# so a write that commits while it runs is not in its result.
SLOW = ("SELECT /* sluice:cache */ count(*) AS {m}, max(u.v) FROM flight_t a, flight_t b, "
        "flight_t c, flight_u u WHERE u.id = 1 AND a.id <= {k} AND b.id <= {k} AND c.id <= {k} "
        "AND (a.v + b.v + c.v + u.v) % 11 = 3")


@test("cache flight: a write committed during a flight is seen by every read sent after it")
def t_write_during_flight(env):
    """The leader's query runs (its snapshot taken) and waiters queue behind
    it; then an UPDATE of a table it reads commits through sluice. Waiters
    that queued before the write may get either value (their queries were
    concurrent with it), but a read sent after the UPDATE returned must
    see it: it may not join the old flight, and the leader's result, from
    before the write, is not stored."""
    setup(env)
    env.pg.query("DROP TABLE IF EXISTS flight_u; CREATE TABLE flight_u (id int PRIMARY KEY, "
                 "v int NOT NULL); INSERT INTO flight_u VALUES (1, 1);"
                 "ALTER TABLE flight_u OWNER TO app;"
                 # one backend per query, so that pg_stat_activity counts queries
                 "ALTER TABLE flight_t SET (parallel_workers = 0)", dbname="app")
    s = start(env, mode="transaction")
    marker = "flight_w"
    # it must outlast the steps below (which is checked): sized to take
    # about 4 s on this machine, from a smaller run (the work is cubic in k)
    t0 = time.time()
    direct(env, SLOW.format(m="flight_calibrate", k=200))
    k = int(200 * (4.0 / max(time.time() - t0, 0.01)) ** (1 / 3))
    q = SLOW.format(m=marker, k=max(200, min(k, 1000)))
    t0 = time.time()
    old = direct(env, q)
    took = time.time() - t0
    check(old[0] == "rows", f"direct answer {old}")
    # few before the write: each goes to PostgreSQL with the slow query
    nb = 4
    lead = Clients(s, 1, q)
    before = Clients(s, nb, q)
    after = Clients(s, N - 1 - nb, q)
    w = s.connect()
    try:
        lead.go()
        check(wait_until(lambda: active(env, marker) == 1, 10), "the leader never ran")
        before.go()
        settle(env, marker, 1)
        cur = w.cursor()
        cur.execute("UPDATE flight_u SET v = 2 WHERE id = 1")
        cur.close()
        after.go()
        # the waiters from before the write were sent on to PostgreSQL, and
        # the reads from after it are one new flight: 1 + nb + 1
        seen = []
        counted = wait_until(lambda: seen.append(active(env, marker)) or seen[-1] == nb + 2, 10)
        check(lead.threads[0].is_alive() or not counted,
              f"the leader finished too soon (the query took {took:.1f}s directly): "
              "make it slower")
        got_lead = lead.wait(30)[0]
        got_before = before.wait(30)
        got_after = after.wait(30)
        new = direct(env, q)
        check(new != old, f"the UPDATE changes the result: {new}")
        check(got_lead in (old, new), f"the leader got {got_lead}")
        wrong = [o for o in got_before if o not in (old, new)]
        check(not wrong, f"waiters from before the write got {wrong[:2]}")
        stale = [o for o in got_after if o != new]
        check(not stale, f"{len(stale)} reads sent after the write got {stale[:1]}, "
                         f"want {new}")
        # nothing from before the write was stored: the next read is new too
        check(outcome(w, q) == new, "a later read got the old result")
        check(counted, f"backends running the read: {seen[-5:]}, want {nb + 2}")
    finally:
        for cl in (lead, before, after):
            cl.close()
        w.close()
        env.stop_checked(s)


@test("cache flight: a leader cancelled while it waits for a server strands no waiter")
def t_leader_cancelled_in_queue(env):
    """Transaction mode, a pool of one server that another client holds in
    a transaction: the leader's miss waits in the pool's queue, waiters
    queue behind it in the cache. A cancel drops the leader's queued query
    (57014, as PostgreSQL answers a cancel). Its waiters must then go to
    PostgreSQL and get the right rows once the server is free, and the
    leader's next statement, another query, must not be taken for the
    marked read's result."""
    setup(env)
    conf = {"enabled": "1", "redis_url": f"redis://127.0.0.1:{env.redis.port}/0",
            "redis_timeout_ms": "200"}
    from test_cache import CacheSluice
    s = CacheSluice(env, conf, settings={"pool_mode": "transaction", "min_pool_size": "0",
                                         "default_pool_size": "1"})
    env.extra.append(s)
    s.start()
    check(wait_until(lambda: cache_row(s)["redis"] == "up", 10), "Redis never came up")
    marker = "flight_queued"
    q = READ.format(m=marker)
    want = direct(env, q)
    holder = s.connect(autocommit=False)
    lead = Clients(s, 1, q)
    rest = Clients(s, 5, q)
    try:
        # the pool's one server, held in a transaction
        holder.cursor().execute("SELECT 1")
        lead.go()
        time.sleep(0.5)  # the leader's miss is in the pool's queue
        rest.go()
        time.sleep(0.5)  # and the waiters behind it in the cache
        lead.conns[0].cancel()
        out = lead.wait(10)
        check(out[0][:2] == ("error", "57014"), f"the cancelled leader got {out[0]}")
        # the leader asks something else; it queues for the server too
        other = Clients(s, 1, "SELECT 'not the marked read' AS other")
        other.conns[0].close()
        other.conns[0] = lead.conns[0]
        other.go()
        time.sleep(0.3)
        holder.commit()
        got = other.wait(20)[0]
        check(got == ("rows", [("not the marked read",)]), f"the leader's next query got {got}")
        out = rest.wait(20)
        wrong = [o for o in out if o != want]
        check(not wrong, f"{len(wrong)} waiters got {wrong[:1]}, want {want}")
        c = s.connect()
        check(outcome(c, q) == want, "a later read of the marked query")
        c.close()
    finally:
        holder.close()
        lead.close()
        rest.close()
        env.stop_checked(s)


@test("cache flight: a hot key that expires is fetched once for 50 clients")
def t_expired_hot_key(env):
    """An entry with ttl=1 is stored and read; once it has expired, 50
    clients at once make one backend query, not a stampede."""
    setup(env)
    s = start(env, mode="transaction")
    marker = "flight_ttl"
    q = READ.format(m=marker).replace("sluice:cache", "sluice:cache ttl=1")
    want = direct(env, q)
    env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
    c = s.connect()
    check(outcome(c, q) == want and outcome(c, q) == want, "the first reads")
    check(calls(env, marker) == 1, "the second read was not a hit")
    time.sleep(2.2)  # past the TTL, in L1 and in Redis
    cl = Clients(s, N, q)
    lock = Locked(env)
    try:
        cl.go()
        settle(env, marker, 1)
    finally:
        lock.release()
    try:
        out = cl.wait(20)
        wrong = [o for o in out if o != want]
        check(not wrong, f"{len(wrong)} clients got another answer, e.g. {wrong[:1]}")
        n = calls(env, marker)
        check(n == 2, f"PostgreSQL ran the read {n} times, want 2 (before and after expiry)")
    finally:
        c.close()
        cl.close()
        env.stop_checked(s)


@test("cache flight: Redis dying while waiters queue sends them to PostgreSQL", timeout=90)
def t_redis_dies_mid_flight(env):
    """The leader waits at PostgreSQL with 49 waiters queued behind it when
    Redis is killed: the waiters go to PostgreSQL (the lock holds them
    there), and every client gets the right rows once it is released."""
    import os
    from harness import Redis
    setup(env)
    root = os.path.join(env.root, "redis-flight-test")
    os.makedirs(root, exist_ok=True)
    r = Redis(root)
    r.start()
    s = None
    lock = None
    try:
        s = start(env, redis_port=r.port, mode="transaction")
        marker = "flight_redis"
        q = READ.format(m=marker)
        want = direct(env, q)
        cl = Clients(s, N, q)
        lock = Locked(env)
        cl.go()
        settle(env, marker, 1)
        r.proc.kill()
        r.proc.wait()
        check(wait_until(lambda: active(env, marker) == N, 10),
              f"{active(env, marker)} backends run the read after Redis died, want {N}")
        lock.release()
        out = cl.wait(20)
        wrong = [o for o in out if o != want]
        check(not wrong, f"{len(wrong)} clients got another answer, e.g. {wrong[:1]}")
        cl.close()
    finally:
        if lock:
            lock.release()
        if s:
            env.stop_checked(s)
        r.stop()


@test("cache flight: a cancel reaches a waiter as it would its query at PostgreSQL")
def t_waiter_cancelled(env):
    """A waiter queued behind a leader that waits on a lock is cancelled:
    like a direct connection's query waiting on that lock, it gets
    query_canceled at once and its connection stays usable; the others
    still get the right rows."""
    setup(env)
    for mode in ("transaction", "session"):
        s = start(env, mode=mode)
        marker = "flight_wcancel_" + mode
        q = READ.format(m=marker)
        want = direct(env, q)
        lock = Locked(env)
        try:
            lead = Clients(s, 1, q)
            lead.go()
            check(wait_until(lambda: lock_waiters(env, marker), 10), "the leader never ran")
            rest = Clients(s, 3, q)
            rest.go()
            settle(env, marker, 1)
            rest.conns[0].cancel()
            deadline = time.time() + 5
            while rest.out[0] is None and time.time() < deadline:
                time.sleep(0.05)
            check(rest.out[0] is not None and rest.out[0][:2] == ("error", "57014"),
                  f"{mode}: the cancelled waiter got {rest.out[0]} within 5s, want 57014")
            lock.release()
            out = lead.wait(20) + rest.wait(20)[1:]
            wrong = [o for o in out if o != want]
            check(not wrong, f"{mode}: {len(wrong)} clients got {wrong[:1]}")
            check(outcome(rest.conns[0], q) == want, f"{mode}: the cancelled client's next read")
            lead.close()
            rest.close()
        finally:
            lock.release()
            env.stop_checked(s)
