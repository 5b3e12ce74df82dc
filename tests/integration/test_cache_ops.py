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
from test_http import get, wait_port_http

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
