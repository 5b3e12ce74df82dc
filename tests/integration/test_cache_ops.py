"""The result cache as an operator runs it: its health checks and the
LISTEN/NOTIFY invalidation helper.

Health: with the cache on, SHOW HEALTH and GET /health report the hit ratio
the cache measured over the recent window (hits per lookup, as SHOW CACHE
counts them) and warn under health_cache_hit_warn_pct; a stopped Redis makes
the redis check warn while /health stays 200 and queries still succeed, and
Redis back makes it ok again.

Notify: sql/sluice_notify.sql installs statement-level triggers that NOTIFY
the schema-qualified table name; with invalidation = notify, sluice LISTENs
and bumps the table's generation. A write made directly at PostgreSQL on a
table with the trigger makes the next read through sluice return the new
value within a short time; the same write on a table without the trigger
leaves the old value cached (so the test can tell).
"""
import json
import os
import time

from harness import Redis, check, free_port, test, wait_until
from test_cache import CacheSluice, cache_row, one, setup
from test_http import check_promtool, get, strict_check, wait_port_http

HERE = os.path.dirname(os.path.abspath(__file__))
NOTIFY_SQL = os.path.join(HERE, "..", "..", "sql", "sluice_notify.sql")


def admin_rows(s, sql):
    c = s.connect(user="admin", dbname="sluice")
    try:
        cur = c.cursor()
        cur.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()


def start_ops(env, redis_port=None, settings=None, **cache):
    """A sluice with the cache on and stats_listen, Redis up before it returns."""
    port = free_port()
    conf = {"enabled": "1", "redis_url": f"redis://127.0.0.1:{redis_port or env.redis.port}/0",
            "redis_timeout_ms": "200"}
    conf.update({k: str(v) for k, v in cache.items()})
    base = {"pool_mode": "transaction", "min_pool_size": "0",
            "stats_listen": f"127.0.0.1:{port}"}
    base.update(settings or {})
    s = CacheSluice(env, conf, settings=base)
    env.extra.append(s)
    s.start()
    s.http_port = port
    check(wait_port_http(port), "nothing listens on stats_listen")
    check(wait_until(lambda: cache_row(s)["redis"] == "up", 10), "Redis never came up")
    return s


def health_row(s, name):
    rows = {r["check"]: r for r in admin_rows(s, "SHOW HEALTH")}
    return rows[name]


def health_json(s):
    status, _, body = get(s, "/health")
    return status, json.loads(body)


def json_check(doc, name):
    return [c for c in doc["checks"] if c["check"] == name][0]


@test("cache_ops: SHOW HEALTH and /health show the measured hit ratio, warn under the threshold")
def t_health_hit_ratio(env):
    setup(env)
    s = start_ops(env, settings={"health_cache_hit_warn_pct": "70"})
    row = health_row(s, "cache_hit_ratio")
    # no marked read yet: nothing to measure, and no warning for it
    check(row["status"] == "ok" and row["value"] is None and "no cache lookup" in row["detail"],
          f"before any lookup: {row}")

    c = s.connect()
    q = "SELECT /* sluice:cache */ v AS ops_ratio FROM cache_t WHERE id = 7"
    check(one(c, q) == 7 and one(c, q) == 7, "the miss and the hit")
    cr = cache_row(s)
    check(cr["hits"] == 1 and cr["misses"] == 1, f"SHOW CACHE {cr}")
    row = health_row(s, "cache_hit_ratio")
    check(row["status"] == "warn" and abs(row["value"] - 50.0) < 1e-9,
          f"1 hit of 2 lookups is 50 %, under 70: {row}")
    check(row["warn"] == 70 and row["fails"] == "below", f"threshold {row}")
    status, doc = health_json(s)
    jc = json_check(doc, "cache_hit_ratio")
    check(status == 200, f"/health {status}: a low hit ratio is a warning, not critical")
    check(jc["status"] == "warn" and abs(jc["value"] - 50.0) < 1e-9 and jc["warn"] == 70,
          f"/health cache check {jc}")
    check(doc["status"] == "warn", f"overall {doc['status']}")

    for _ in range(8):
        check(one(c, q) == 7, "a hit")
    c.close()
    row = health_row(s, "cache_hit_ratio")
    check(row["status"] == "ok" and abs(row["value"] - 90.0) < 1e-9,
          f"9 hits of 10 lookups is 90 %: {row}")
    jc = json_check(health_json(s)[1], "cache_hit_ratio")
    check(jc["status"] == "ok" and abs(jc["value"] - 90.0) < 1e-9, f"/health {jc}")
    check(health_row(s, "redis")["status"] == "ok", "Redis is up")


@test("cache_ops: Redis stopped -> redis check warns, /health 200, queries succeed; back -> ok",
      timeout=90)
def t_health_redis(env):
    setup(env)
    root = os.path.join(env.root, "redis-ops-test")
    os.makedirs(root, exist_ok=True)
    r = Redis(root)
    r.start()
    try:
        s = start_ops(env, redis_port=r.port)
        row = health_row(s, "redis")
        check(row["status"] == "ok" and row["detail"] == "connected", f"Redis up: {row}")
        c = s.connect()
        q = "SELECT /* sluice:cache */ v AS ops_redis FROM cache_t WHERE id = 7"
        check(one(c, q) == 7, "read with Redis up")

        r.proc.kill()
        r.proc.wait()
        check(wait_until(lambda: health_row(s, "redis")["status"] == "warn", 10),
              f"redis check with Redis down: {health_row(s, 'redis')}")
        status, doc = health_json(s)
        check(status == 200, f"/health {status} with Redis down: the cache fails open")
        check(json_check(doc, "redis")["status"] == "warn", f"/health redis {doc}")
        check(doc["status"] != "critical", f"overall {doc['status']}")
        for i in range(5):
            check(one(c, q) == 7 + i, "wrong value with Redis down")
            c.cursor().execute("UPDATE cache_t SET v = v + 1 WHERE id = 7")

        port = r.port
        r = Redis(root)
        r.port = port
        r.start()
        check(wait_until(lambda: health_row(s, "redis")["status"] == "ok", 15),
              f"redis check after restart: {health_row(s, 'redis')}")
        check(json_check(health_json(s)[1], "redis")["status"] == "ok", "/health after restart")
        check(one(c, q) == 12, "read after Redis came back")
        c.close()
    finally:
        r.stop()


# ---------------------------------------------------------------------------
# invalidation = notify
# ---------------------------------------------------------------------------

NOTIFY_ROLE_PASSWORD = "n0tify-s3cret-pw"

NOTIFY_SETUP = """
DROP TABLE IF EXISTS ops_watched, ops_plain, ops_parted;
CREATE TABLE ops_watched (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO ops_watched SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE ops_plain (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO ops_plain SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE ops_parted (id int NOT NULL, v int NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE ops_parted_1 PARTITION OF ops_parted FOR VALUES FROM (1) TO (100);
INSERT INTO ops_parted SELECT g, g FROM generate_series(1, 10) g;
ALTER TABLE ops_watched OWNER TO app;
ALTER TABLE ops_plain OWNER TO app;
ALTER TABLE ops_parted OWNER TO app;
ALTER TABLE ops_parted_1 OWNER TO app;
"""


def notify_setup(env):
    setup(env)
    env.pg.query(NOTIFY_SETUP, dbname="app")
    with open(NOTIFY_SQL) as f:
        env.pg.query(f.read(), dbname="app")
    env.pg.query("SELECT sluice.watch_table('public.ops_watched')", dbname="app")
    check(env.pg.query("SELECT sluice.watch_schema('public')", dbname="app")[0][0] >= 5,
          "watch_schema did not reach every table of public")
    # ops_plain is the control: no trigger
    env.pg.query("SELECT sluice.unwatch_table('ops_plain')", dbname="app")
    env.pg.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifier') THEN "
        f"CREATE ROLE notifier LOGIN PASSWORD '{NOTIFY_ROLE_PASSWORD}'; END IF; END $$")


def notify_conninfo(env, port=None, extra=""):
    return (f"host=127.0.0.1 port={port or env.pg.port} dbname=app user=notifier "
            f"password={NOTIFY_ROLE_PASSWORD} connect_timeout=5 {extra}").strip()


def stop(s):
    """Stop <s> now (its listener goes from PostgreSQL); a clean exit, with
    the LISTEN connection closed and freed, is part of the test."""
    rc = s.stop()
    check(rc == 0, f"sluice exited with {rc}:\n{s.log_tail(20)}")


def notify_rows(s):
    return admin_rows(s, "SHOW CACHE NOTIFY")


def direct(env, sql):
    env.pg.query(sql, dbname="app")


def eventually(c, q, want, timeout=5.0):
    """Read <q> through sluice until it returns <want>; the seconds it took, or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if one(c, q) == want:
            return time.time() - t0
        time.sleep(0.02)
    return None


@test("cache_ops: a direct write on a table with the notify trigger invalidates; without it "
      "the entry stays", timeout=90)
def t_notify(env):
    notify_setup(env)
    s = start_ops(env, invalidation="notify", **{"notify.app": notify_conninfo(env)})
    check(wait_until(lambda: notify_rows(s)[0]["state"] == "up", 10),
          f"the listener never came up: {notify_rows(s)}")
    row = notify_rows(s)[0]
    check(row["database"] == "app" and row["failures"] == 0 and row["last_error"] is None,
          f"SHOW CACHE NOTIFY {row}")
    check(env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'notifier' "
                       "AND application_name = 'sluice-notify' AND query LIKE 'LISTEN%'")[0][0]
          >= 1, "no LISTEN connection at PostgreSQL")

    c = s.connect()
    qw = "SELECT /* sluice:cache ttl=300 */ v AS ops_w FROM ops_watched WHERE id = 3"
    qp = "SELECT /* sluice:cache ttl=300 */ v AS ops_p FROM ops_plain WHERE id = 3"
    for q in (qw, qp):
        check(one(c, q) == 3 and one(c, q) == 3, "the miss and the hit")
    hits = cache_row(s)["hits"]
    check(hits == 2, f"both reads should be cached: {cache_row(s)}")

    # the same write, made at PostgreSQL directly, to both tables
    direct(env, "UPDATE ops_watched SET v = 33 WHERE id = 3")
    direct(env, "UPDATE ops_plain SET v = 33 WHERE id = 3")
    took = eventually(c, qw, 33)
    check(took is not None, "a direct write on the watched table was not seen within 5 s")
    check(notify_rows(s)[0]["notifications"] >= 1, f"no notification counted {notify_rows(s)}")
    # the control: given the same time and more, its entry is still served
    time.sleep(max(1.0, 2 * took))
    before = cache_row(s)["hits"]
    check(one(c, qp) == 3, "the table without the trigger was invalidated: the test proves "
          "nothing")
    check(cache_row(s)["hits"] == before + 1, "the control read was not a hit")

    # a rolled-back write notifies nothing: the entry stays
    check(one(c, qw) == 33, "re-cached")
    n = notify_rows(s)[0]["notifications"]
    conn = env.pg.connect(dbname="app")
    conn.autocommit = False
    conn.cursor().execute("UPDATE ops_watched SET v = 99 WHERE id = 3")
    conn.rollback()
    conn.close()
    time.sleep(0.5)
    before = cache_row(s)["hits"]
    check(one(c, qw) == 33 and cache_row(s)["hits"] == before + 1,
          "a rolled-back write dropped the entry")
    check(notify_rows(s)[0]["notifications"] == n, "a rolled-back write was notified")

    # the trigger fires for a role without rights on schema sluice: a write
    # through sluice by app still works (and is heard)
    n = notify_rows(s)[0]["notifications"]
    c.cursor().execute("UPDATE ops_watched SET v = 34 WHERE id = 3")
    check(one(c, qw) == 34, "a write through sluice by app")
    check(wait_until(lambda: notify_rows(s)[0]["notifications"] > n, 5),
          "app's write through sluice was not notified")

    # INSERT, DELETE and TRUNCATE are heard too
    qc = "SELECT /* sluice:cache ttl=300 */ count(*) AS ops_n FROM ops_watched"
    check(one(c, qc) == 10 and one(c, qc) == 10, "count cached")
    direct(env, "INSERT INTO ops_watched VALUES (11, 11)")
    check(eventually(c, qc, 11) is not None, "INSERT not seen")
    direct(env, "DELETE FROM ops_watched WHERE id = 11")
    check(eventually(c, qc, 10) is not None, "DELETE not seen")
    direct(env, "TRUNCATE ops_watched")
    check(eventually(c, qc, 0) is not None, "TRUNCATE not seen")

    # a write to a partition directly invalidates reads of its parent
    qr = "SELECT /* sluice:cache ttl=300 */ sum(v) AS ops_sum FROM ops_parted"
    check(one(c, qr) == 55 and one(c, qr) == 55, "partitioned read cached")
    direct(env, "UPDATE ops_parted_1 SET v = v + 1 WHERE id = 1")
    check(eventually(c, qr, 56) is not None, "a write to the partition was not seen")
    c.close()

    status, _, raw = get(s, "/metrics")
    body = raw.decode()
    check(status == 200 and "\nsluice_cache_notify_listeners_up 1\n" in body
          and "\nsluice_cache_notify_listeners 1\n" in body, "notify gauges on /metrics")
    _, families = strict_check(body)
    check_promtool(body)
    check(families.get("sluice_cache_notify_received_total") == "counter",
          f"notify counter family {families.get('sluice_cache_notify_received_total')}")
    with open(s.log) as f:
        log = f.read()
    check(NOTIFY_ROLE_PASSWORD not in log, "the conninfo's password is in the log")
    check("listening on sluice_invalidate" in log, "no log line for the LISTEN")
    stop(s)


@test("cache_ops: the listener reconnects after its connection is lost, and says when it is down",
      timeout=90)
def t_notify_reconnect(env):
    notify_setup(env)
    # its own application_name (the conninfo's wins over sluice-notify), so
    # that only this sluice's listener is terminated
    tag = f"ops-rc-{os.getpid()}-{time.time_ns()}"
    s = start_ops(env, invalidation="notify",
                  **{"notify.app": notify_conninfo(env, extra=f"application_name={tag}")})
    check(wait_until(lambda: notify_rows(s)[0]["state"] == "up", 10), "never up")
    c = s.connect()
    qw = "SELECT /* sluice:cache ttl=300 */ v AS ops_rc FROM ops_watched WHERE id = 4"
    check(one(c, qw) == 4 and one(c, qw) == 4, "cached")

    # the listener's backend goes away
    killed = env.pg.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name = %s", (tag,))[0][0]
    check(killed == 1, f"terminated {killed} listener backends")
    check(wait_until(lambda: notify_rows(s)[0]["failures"] >= 1, 5),
          f"the lost connection was not noticed: {notify_rows(s)}")
    check(wait_until(lambda: notify_rows(s)[0]["state"] == "up", 10),
          f"never reconnected: {notify_rows(s)}")
    with open(s.log) as f:
        log = f.read()
    check("cache notify: app: connection lost" in log and "until it listens again" in log,
          "the log does not say the listener was down")
    # reconnecting drops the database's entries (writes may have been missed)
    before = cache_row(s)["hits"]
    check(one(c, qw) == 4 and cache_row(s)["hits"] == before, "an entry outlived the reconnect")
    check(one(c, qw) == 4 and cache_row(s)["hits"] == before + 1, "re-cached")
    direct(env, "UPDATE ops_watched SET v = 44 WHERE id = 4")
    check(eventually(c, qw, 44) is not None, "after the reconnect a direct write was not seen")
    c.close()
    stop(s)


@test("cache_ops: a listener that cannot connect says why, and queries still work", timeout=60)
def t_notify_unreachable(env):
    notify_setup(env)
    dead = free_port()
    s = start_ops(env, invalidation="notify", **{"notify.app": notify_conninfo(env, dead)})
    check(wait_until(lambda: notify_rows(s)[0]["failures"] >= 1, 10),
          f"no failure counted: {notify_rows(s)}")
    row = notify_rows(s)[0]
    check(row["state"] != "up" and row["last_error"] and "refused" in row["last_error"],
          f"SHOW CACHE NOTIFY {row}")
    c = s.connect()
    q = "SELECT /* sluice:cache */ v AS ops_dead FROM ops_watched WHERE id = 5"
    check(one(c, q) == 5 and one(c, q) == 5, "queries with the listener down")
    c.close()
    status, _, raw = get(s, "/metrics")
    check("\nsluice_cache_notify_listeners_up 0\n" in raw.decode(), "listeners_up on /metrics")
    with open(s.log) as f:
        log = f.read()
    check(NOTIFY_ROLE_PASSWORD not in log, "the conninfo's password is in the log")
    check("cache notify: app:" in log and "retrying in" in log, "the log does not say it is down")
    stop(s)
