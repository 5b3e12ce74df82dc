"""The result cache against real PostgreSQL and Redis (simple query protocol).

Every check is about the rule above all: the cache never returns what a
direct connection would not have. A hit is proven to take no server by
pg_stat_statements' calls for the statement not rising; invalidation by a
write through sluice (autocommit, COMMIT, not ROLLBACK), through a second
sluice sharing the Redis; uncacheable reads (volatile functions, locking,
writing CTEs, temporary tables), results too big or ending in an error;
Redis killed (fail open) and restarted (hits resume); roles kept apart by
row-level security; pipelined messages behind a lookup kept in order;
the cache's figures on /metrics and per statement in SHOW QUERIES.
"""
import os
import time

import psycopg2

from harness import (Redis, Sluice, admin_rows, check, m_query, parse_datarow, test,
                     wait_until)

SETUP = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
DROP TABLE IF EXISTS cache_t, cache_big, cache_rls;
CREATE TABLE cache_t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO cache_t SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE cache_big (id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO cache_big SELECT g, repeat('x', 100) FROM generate_series(1, 100) g;
CREATE TABLE cache_rls (owner name NOT NULL, secret text NOT NULL);
INSERT INTO cache_rls VALUES ('app', 'app-secret'), ('md5user', 'md5-secret');
ALTER TABLE cache_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE cache_rls FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON cache_rls USING (owner = current_user);
GRANT SELECT ON cache_rls TO md5user;
ALTER TABLE cache_t OWNER TO app;
ALTER TABLE cache_big OWNER TO app;
ALTER TABLE cache_rls OWNER TO app;
"""


class CacheSluice(Sluice):
    """A sluice whose [cache] section is <cache> (enabled = 1 and redis_url added)."""

    def __init__(self, env, cache, **kw):
        self.cache = cache
        super().__init__(env, **kw)

    def config_text(self):
        text = super().config_text()
        lines = ["[cache]"] + [f"{k} = {v}" for k, v in self.cache.items()]
        return text.replace("[cache]\nenabled = 0\n", "\n".join(lines) + "\n")


def start(env, redis_port=None, mode="session", **cache):
    conf = {"enabled": "1", "redis_url": f"redis://127.0.0.1:{redis_port or env.redis.port}/0",
            "redis_timeout_ms": "200"}
    conf.update({k: str(v) for k, v in cache.items()})
    s = CacheSluice(env, conf, settings={"pool_mode": mode, "min_pool_size": "0"})
    env.extra.append(s)
    s.start()
    # lookups bypass until both Redis connections are up
    check(wait_until(lambda: cache_row(s)["redis"] == "up", 10), "Redis never came up")
    return s


def cache_row(s):
    return admin_rows(s, "SHOW CACHE")[0]


def setup(env):
    env.pg.query(SETUP, dbname="app")
    env.pg.query("SELECT pg_stat_statements_reset()", dbname="app")
    # every test starts from an empty cache: old entries of these tables go
    import socket
    with socket.create_connection(("127.0.0.1", env.redis.port), timeout=5) as so:
        so.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        so.recv(64)


def calls(env, marker):
    """pg_stat_statements calls of the statements whose text holds <marker>."""
    r = env.pg.query("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                     "WHERE query LIKE %s AND query NOT LIKE '%%pg_stat_statements%%'",
                     (f"%{marker}%",), dbname="app")
    return int(r[0][0])


def one(conn, sql, args=None):
    cur = conn.cursor()
    cur.execute(sql, args)
    row = cur.fetchone()
    cur.close()
    return row[0] if row else None


def run(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    cur.close()


READ = "SELECT /* sluice:cache */ v AS {m} FROM cache_t WHERE id = 7"


def hit_takes_no_server(env, mode):
    setup(env)
    s = start(env, mode=mode)
    c = s.connect()
    q = READ.format(m="hit_" + mode)
    before = cache_row(s)
    for _ in range(5):
        check(one(c, q) == 7, "wrong value")
    after = cache_row(s)
    check(calls(env, "hit_" + mode) == 1,
          f"PostgreSQL ran the marked read {calls(env, 'hit_' + mode)} times, want 1")
    check(after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 4,
          f"hits/misses {before} -> {after}")
    check(after["stores"] - before["stores"] == 1, "one store")
    # another statement text (another literal) is another entry
    check(one(c, q.replace("id = 7", "id = 8")) == 8, "id = 8 answered with another's row")
    c.close()


@test("cache: a marked read misses, then hits without a server (session mode)")
def t_hit_session(env):
    hit_takes_no_server(env, "session")


@test("cache: a marked read misses, then hits without a server (transaction mode)")
def t_hit_tx(env):
    hit_takes_no_server(env, "transaction")


def writes_invalidate(env, mode):
    setup(env)
    s = start(env, mode=mode)
    c = s.connect()
    q = READ.format(m="inv_" + mode)
    check(one(c, q) == 7 and one(c, q) == 7, "first reads")
    run(c, "UPDATE cache_t SET v = 70 WHERE id = 7")
    check(one(c, q) == 70, "an autocommit UPDATE through sluice is not seen at once")
    # explicit transaction: the read inside sees its own write, the cache
    # is untouched by the rollback
    check(one(c, q) == 70, "cached again")
    c.autocommit = False
    run(c, "UPDATE cache_t SET v = 700 WHERE id = 7")
    check(one(c, q) == 700, "a transaction does not see its own write")
    c.rollback()
    c.autocommit = True
    check(one(c, q) == 70, "after ROLLBACK the old value must be read")
    inv = cache_row(s)["invalidations"]
    check(one(c, q) == 70, "still 70")
    check(cache_row(s)["invalidations"] == inv, "a read bumped a generation")
    c.autocommit = False
    run(c, "UPDATE cache_t SET v = 7000 WHERE id = 7")
    c.commit()
    c.autocommit = True
    check(one(c, q) == 7000, "a COMMIT through sluice is not seen at once")
    c.close()


@test("cache: writes through sluice invalidate at once (session mode)")
def t_inv_session(env):
    writes_invalidate(env, "session")


@test("cache: writes through sluice invalidate at once (transaction mode)")
def t_inv_tx(env):
    writes_invalidate(env, "transaction")


@test("cache: two sluices sharing a Redis see each other's writes")
def t_two_instances(env):
    setup(env)
    a = start(env, mode="transaction")
    b = start(env, mode="session")
    ca, cb = a.connect(), b.connect()
    q = READ.format(m="two")
    check(one(cb, q) == 7 and one(cb, q) == 7, "B reads")
    check(one(ca, q) == 7, "A reads (from the entry B stored)")
    check(calls(env, "two") == 1, "A's read was not served from B's entry")
    run(ca, "UPDATE cache_t SET v = 77 WHERE id = 7")
    # B's L1 learns of the bump through pub/sub: the documented window
    check(wait_until(lambda: one(cb, q) == 77, 2), "B never saw A's write")
    run(cb, "UPDATE cache_t SET v = 777 WHERE id = 7")
    check(wait_until(lambda: one(ca, q) == 777, 2), "A never saw B's write")
    ca.close()
    cb.close()


@test("cache: volatile, locking, writing and temporary reads are never served")
def t_uncacheable(env):
    setup(env)
    s = start(env, mode="session")
    c = s.connect()
    cases = {
        "volatile": "SELECT /* sluice:cache */ random() AS unc_vol FROM cache_t WHERE id = 1",
        "volatile_now": "SELECT /* sluice:cache */ clock_timestamp()::text AS unc_now",
        "locking": "SELECT /* sluice:cache */ v AS unc_lock FROM cache_t WHERE id = 1 FOR UPDATE",
        "modifying_cte": "WITH u AS (UPDATE cache_t SET v = v + 1 WHERE id = 2 RETURNING v) "
                         "SELECT /* sluice:cache */ v AS unc_cte FROM u",
    }
    seen = {}
    for name, q in cases.items():
        seen[name] = [one(c, q) for _ in range(3)]
    check(len(set(seen["volatile"])) == 3, f"random() repeated: {seen['volatile']}")
    check(len(set(seen["volatile_now"])) == 3, "clock_timestamp() repeated")
    check(seen["modifying_cte"] == [3, 4, 5], f"writing CTE: {seen['modifying_cte']}")
    for m in ("unc_lock", "unc_cte", "unc_vol"):
        check(calls(env, m) == 3, f"{m}: PostgreSQL ran it {calls(env, m)} times, want 3")
    run(c, "CREATE TEMP TABLE cache_tmp AS SELECT 1 AS x")
    tq = "SELECT /* sluice:cache */ x AS unc_tmp FROM pg_temp.cache_tmp"
    check(one(c, tq) == 1, "temp read")
    run(c, "UPDATE cache_tmp SET x = 2")
    check(one(c, tq) == 2, "a temporary table's read was served stale")
    why = cache_row(s)["uncacheable"]
    for r in ("volatile", "locking", "modifying_cte", "temp"):
        check(r + "=" in why, f"reason {r} not counted: {why}")
    check(cache_row(s)["hits"] == 0, "something uncacheable was served")
    c.close()


@test("cache: results over max_result_bytes and errors are not stored")
def t_not_stored(env):
    setup(env)
    s = start(env, mode="session", max_result_bytes="4kB")
    c = s.connect()
    big = "SELECT /* sluice:cache */ pad AS big_one FROM cache_big ORDER BY id"
    for _ in range(2):
        cur = c.cursor()
        cur.execute(big)
        check(len(cur.fetchall()) == 100, "the big result lost rows")
    check(calls(env, "big_one") == 2, "a too big result was served from the cache")
    row = cache_row(s)
    check(row["stores"] == 0 and "too_big=2" in row["uncacheable"], f"too big: {row}")
    err = "SELECT /* sluice:cache */ 1 / (v - v) AS err_one FROM cache_t WHERE id = 1"
    for _ in range(2):
        try:
            one(c, err)
            raise AssertionError("division by zero did not fail")
        except psycopg2.errors.DivisionByZero:
            pass
    check(cache_row(s)["stores"] == 0, "an error result was stored")
    # an error ending a result that had rows already
    rows_err = ("SELECT /* sluice:cache */ 10 / (5 - id) AS err_late FROM cache_t "
                "WHERE id < 10 ORDER BY id")
    for _ in range(2):
        try:
            c.cursor().execute(rows_err)
            raise AssertionError("no error")
        except psycopg2.errors.DivisionByZero:
            pass
    check(cache_row(s)["stores"] == 0 and cache_row(s)["hits"] == 0, "a failed result was kept")
    c.close()


@test("cache: a row bigger than the proxy reads whole (over 64 kB) is stored and served")
def t_big_rows(env):
    for mode in ("session", "transaction"):
        setup(env)  # pg_stat_statements would count both modes' texts as one
        s = start(env, mode=mode)
        c = s.connect()
        m = f"wide_{mode}"
        # 3 rows of 200 kB, 300 kB and 1 byte: DataRows that stream past in pieces
        q = (f"SELECT /* sluice:cache */ id, repeat(chr(64 + id), (4 - id) * 100000) AS {m} "
             "FROM cache_t WHERE id < 4 ORDER BY id")
        want = [(i, chr(64 + i) * ((4 - i) * 100000)) for i in (1, 2, 3)]
        for _ in range(3):
            cur = c.cursor()
            cur.execute(q)
            check(cur.fetchall() == want, f"{mode}: wide rows came back wrong")
        check(calls(env, m) == 1, f"{mode}: PostgreSQL ran the wide read {calls(env, m)} times")
        row = cache_row(s)
        check(row["hits"] == 2 and row["stores"] == 1, f"{mode}: {row}")
        c.close()
        s.stop()
    # a streamed row past max_result_bytes: not stored, answers still whole
    setup(env)
    s = start(env, mode="session", max_result_bytes="256kB")
    c = s.connect()
    q = "SELECT /* sluice:cache */ repeat('y', 300000) AS wide_max"
    for _ in range(2):
        check(one(c, q) == "y" * 300000, "the too-wide row came back wrong")
    check(calls(env, "wide_max") == 2, "a row over max_result_bytes was served from the cache")
    check("too_big=2" in cache_row(s)["uncacheable"], f"too big: {cache_row(s)}")
    c.close()


@test("cache: Redis killed -> correct answers from PostgreSQL; restarted -> hits resume",
      timeout=90)
def t_fail_open(env):
    setup(env)
    root = os.path.join(env.root, "redis-cache-test")
    os.makedirs(root, exist_ok=True)
    r = Redis(root)
    r.start()
    try:
        s = start(env, redis_port=r.port, mode="transaction")
        c = s.connect()
        q = READ.format(m="failopen")
        check(one(c, q) == 7 and one(c, q) == 7, "reads with Redis up")
        check(cache_row(s)["hits"] == 1, "no hit with Redis up")
        r.proc.kill()
        r.proc.wait()
        for i in range(20):
            check(one(c, q) == 7 + i, "wrong value with Redis down")
            run(c, "UPDATE cache_t SET v = v + 1 WHERE id = 7")
        check(cache_row(s)["redis"] != "up", "Redis is down but SHOW CACHE says up")
        port = r.port
        r = Redis(root)
        r.port = port
        r.start()
        check(wait_until(lambda: cache_row(s)["redis"] == "up", 15), "never reconnected")
        hits = cache_row(s)["hits"]
        check(one(c, q) == 27 and one(c, q) == 27 and one(c, q) == 27, "after restart")
        check(cache_row(s)["hits"] >= hits + 2, "hits did not resume")
        c.close()
    finally:
        r.stop()


@test("cache: one role's result is never returned to another (row-level security)")
def t_roles(env):
    setup(env)
    s = start(env, mode="transaction")
    q = "SELECT /* sluice:cache */ string_agg(secret, ',') AS rls FROM cache_rls"
    ca = s.connect(user="app")
    cm = s.connect(user="md5user")
    for _ in range(3):
        check(one(ca, q) == "app-secret", "app saw another role's rows")
        check(one(cm, q) == "md5-secret", "md5user saw another role's rows")
    check(cache_row(s)["hits"] == 4, f"each role should hit its own entry: {cache_row(s)}")
    ca.close()
    cm.close()


@test("cache: messages pipelined behind a lookup stay in order")
def t_pipeline(env):
    setup(env)
    for mode in ("session", "transaction"):
        s = start(env, mode=mode)
        w = s.wire()
        q = READ.format(m="pipe_" + mode)
        w.query(q)  # stored
        batch = (m_query(q) + m_query("SELECT 1001") + m_query(q)
                 + m_query(q.replace("id = 7", "id = 9")) + m_query("SELECT 1002"))
        w.send(batch)
        msgs = w.collect(until_ready=5)
        vals = [parse_datarow(p)[0] for t, p in msgs if t == b"D"]
        check(vals == ["7", "1001", "7", "9", "1002"], f"{mode}: out of order: {vals}")
        check(sum(1 for t, _ in msgs if t == b"Z") == 5, "one ReadyForQuery each")
        w.close()


@test("cache: a session's startup search_path is part of the key (session mode)")
def t_startup_params(env):
    """Two clients whose startup options give other search_paths read
    other tables through one text: each gets its own schema's row."""
    setup(env)
    env.pg.query("DROP SCHEMA IF EXISTS cs1 CASCADE; DROP SCHEMA IF EXISTS cs2 CASCADE;"
                 "CREATE SCHEMA cs1 AUTHORIZATION app; CREATE SCHEMA cs2 AUTHORIZATION app;"
                 "CREATE TABLE cs1.kv (v text); INSERT INTO cs1.kv VALUES ('one');"
                 "CREATE TABLE cs2.kv (v text); INSERT INTO cs2.kv VALUES ('two');"
                 "ALTER TABLE cs1.kv OWNER TO app; ALTER TABLE cs2.kv OWNER TO app",
                 dbname="app")
    s = start(env, mode="session")
    q = "SELECT /* sluice:cache */ v FROM kv"
    for path, want in (("cs1", "one"), ("cs2", "two"), ("cs1", "one"), ("cs2", "two")):
        c = s.connect(options=f"-c search_path={path}")
        try:
            got = one(c, q)
            check(got == want, f"search_path {path}: got {got!r}, want {want!r}")
        finally:
            c.close()
    row = cache_row(s)
    check(row["hits"] >= 2, f"the second round did not hit: {row}")


@test("cache: PostgreSQL's own functions keep entries; a user function's hidden write drops them")
def t_hidden_writes(env):
    """now() or nextval() in some other statement writes no table: the
    marked read still hits. A user function that updates the table behind
    the parser's back bumps the whole database: the next read is fresh."""
    setup(env)
    env.pg.query("CREATE OR REPLACE FUNCTION cache_bump_v(i int) RETURNS int "
                 "LANGUAGE sql AS $$ UPDATE cache_t SET v = v + 1000 WHERE id = i "
                 "RETURNING v $$; ALTER FUNCTION cache_bump_v(int) OWNER TO app;"
                 "DROP SEQUENCE IF EXISTS cache_seq; CREATE SEQUENCE cache_seq;"
                 "ALTER SEQUENCE cache_seq OWNER TO app", dbname="app")
    s = start(env, mode="transaction")
    c = s.connect()
    q = READ.format(m="hidden")
    check(one(c, q) == 7, "first read")
    other = s.connect()
    for sql in ("SELECT now()", "SELECT random()", "SELECT nextval('cache_seq')",
                "SELECT clock_timestamp(), current_user"):
        one(other, sql)
    before = cache_row(s)
    check(one(c, q) == 7, "second read")
    after = cache_row(s)
    check(after["hits"] - before["hits"] == 1,
          f"PostgreSQL's own functions dropped the entry: {before} -> {after}")
    check(one(other, "SELECT cache_bump_v(7)") == 1007, "the function's update")
    check(one(c, q) == 1007, "served the value from before the function's hidden write")
    other.close()
    c.close()


@test("cache: /metrics and SHOW QUERIES count a miss and a hit; a hit is no call")
def t_visibility(env):
    """After one miss and one hit of a marked read: /metrics (read by the
    strict checker and promtool of test_http) has hits 1, misses 1, one
    store and Redis up; SHOW QUERIES' row of the statement has
    cache_hits 1 and calls 1, as pg_stat_statements has calls 1."""
    from test_http import check_promtool, get, strict_check, value, wait_port_http
    from harness import free_port

    setup(env)
    port = free_port()
    conf = {"enabled": "1", "redis_url": f"redis://127.0.0.1:{env.redis.port}/0",
            "redis_timeout_ms": "200"}
    s = CacheSluice(env, conf, settings={"pool_mode": "transaction", "min_pool_size": "0",
                                         "stats_listen": f"127.0.0.1:{port}"})
    env.extra.append(s)
    s.start()
    s.http_port = port
    check(wait_port_http(port), "nothing listens on stats_listen")
    check(wait_until(lambda: cache_row(s)["redis"] == "up", 10), "Redis never came up")
    c = s.connect()
    q = READ.format(m="visible")
    check(one(c, q) == 7, "first read (the miss)")
    check(one(c, q) == 7, "second read (the hit)")
    c.close()
    check(calls(env, "visible") == 1, f"PostgreSQL ran it {calls(env, 'visible')} times")

    status, _, raw = get(s, "/metrics")
    check(status == 200, f"/metrics gave {status}")
    body = raw.decode("utf-8")
    samples, families = strict_check(body)
    check_promtool(body)
    want = {"sluice_cache_enabled": 1, "sluice_cache_hits_total": 1,
            "sluice_cache_misses_total": 1, "sluice_cache_stores_total": 1,
            "sluice_cache_redis_up": 1}
    for name, v in want.items():
        check(value(samples, name) == v, f"{name} is {value(samples, name)}, want {v}")
    for name, typ in (("sluice_cache_evictions_total", "counter"),
                      ("sluice_cache_invalidations_total", "counter"),
                      ("sluice_cache_redis_errors_total", "counter"),
                      ("sluice_cache_uncacheable_total", "counter"),
                      ("sluice_cache_l1_bytes", "gauge"),
                      ("sluice_cache_redis_seconds_total", "counter"),
                      ("sluice_cache_redis_requests_total", "counter")):
        check(families.get(name) == typ, f"family {name} is {families.get(name)}, want {typ}")
    # the stored entry is in L1; Redis was asked at least for the miss
    check(value(samples, "sluice_cache_l1_bytes") > 0, "L1 holds the stored entry")
    check(value(samples, "sluice_cache_redis_requests_total") >= 1, "no Redis round trip")
    reasons = {dict(k[1])["reason"]: v for k, v in samples.items()
               if k[0] == "sluice_cache_uncacheable_total"}
    check("volatile" in reasons and "ok" not in reasons and "not_marked" not in reasons,
          f"uncacheable reasons {sorted(reasons)}")

    # a marked volatile read is counted under its reason
    c = s.connect()
    one(c, "SELECT /* sluice:cache */ now() AS visible_now")
    c.close()
    samples, _ = strict_check(get(s, "/metrics")[2].decode("utf-8"))
    check(value(samples, "sluice_cache_uncacheable_total", reason="volatile") == 1,
          "now() not counted as volatile")

    rows = [r for r in admin_rows(s, "SHOW QUERIES") if "AS visible FROM" in r["query"]]
    check(len(rows) == 1, f"SHOW QUERIES rows for the read: {rows}")
    check(rows[0]["cache_hits"] == 1 and rows[0]["calls"] == 1,
          f"cache_hits {rows[0]['cache_hits']}, calls {rows[0]['calls']}: want 1 and 1")
