"""A randomized consistency check of the result cache: zero wrong results.

Several clients run a random mix of marked reads and writes of a few hot
rows for a fixed time through two sluice instances sharing one Redis (one
in transaction mode, one in session mode). Every write adds 1 to its row
(UPDATE ... RETURNING), so a row's value counts the writes committed to it
and a stale answer is one below a value already known to be committed.
Each read through sluice is checked:

- at least the value of every write through the same instance that had
  returned before the read was sent (its bump happened at that write's
  ReadyForQuery), and of every write through the other instance that had
  returned PUBSUB_WINDOW seconds before (the documented pub/sub delay);
- at most what a direct read of the row returns right after it (a cache
  never invents a value).

The run must also have been served from the cache for a good part of its
reads, or it proves nothing.
"""
import random
import threading
import time

import psycopg2

from harness import check, test
from test_cache import cache_row, setup, start

KEYS = 4
DURATION = 8.0
CLIENTS = 6
WRITE_SHARE = 0.05
# how long another instance may serve an entry after a write through this
# one returned: the bump's pub/sub message crossing Redis (README: "within
# milliseconds"), with room for a loaded 2-core machine
PUBSUB_WINDOW = 0.25

SETUP = """
DROP TABLE IF EXISTS cache_rand;
CREATE TABLE cache_rand (k int PRIMARY KEY, v int NOT NULL);
INSERT INTO cache_rand SELECT g, 0 FROM generate_series(1, {n}) g;
ALTER TABLE cache_rand OWNER TO app;
"""


@test("cache random: reads and writes through two sluices, checked against PostgreSQL: "
      "no wrong result", timeout=180)
def t_random(env):
    setup(env)
    env.pg.query(SETUP.format(n=KEYS), dbname="app")
    sl = [start(env, mode="transaction"), start(env, mode="session")]
    before = [cache_row(s) for s in sl]
    lock = threading.Lock()
    writes = {k: [] for k in range(1, KEYS + 1)}  # k -> [(returned at, value, instance)]
    wrong, counts, errors = [], {"reads": 0, "writes": 0}, []
    deadline = time.monotonic() + DURATION

    def must_see(k, inst, sent):
        with lock:
            seen = [v for (t, v, i) in writes[k]
                    if (i == inst and t < sent) or (i != inst and t < sent - PUBSUB_WINDOW)]
        return max(seen, default=0)

    def client(seed):
        rnd = random.Random(seed)
        conns = [s.connect() for s in sl]
        direct = env.pg.connect(dbname="app", user="app")
        for c in conns + [direct]:
            c.autocommit = True
        try:
            while time.monotonic() < deadline:
                inst = rnd.randrange(len(sl))
                k = rnd.randint(1, KEYS)
                cur = conns[inst].cursor()
                if rnd.random() < WRITE_SHARE:
                    cur.execute("UPDATE cache_rand SET v = v + 1 WHERE k = %s RETURNING v", (k,))
                    v = cur.fetchone()[0]
                    with lock:
                        writes[k].append((time.monotonic(), v, inst))
                        counts["writes"] += 1
                    continue
                floor = must_see(k, inst, time.monotonic())
                cur.execute(f"SELECT /* sluice:cache ttl=60 */ v FROM cache_rand WHERE k = {k}")
                r = cur.fetchone()[0]
                dc = direct.cursor()
                dc.execute("SELECT v FROM cache_rand WHERE k = %s", (k,))
                ceiling = dc.fetchone()[0]
                with lock:
                    counts["reads"] += 1
                    if not floor <= r <= ceiling:
                        wrong.append((k, "ab"[inst], r, floor, ceiling))
        except Exception as e:  # a failed query is a wrong result too
            errors.append(repr(e))
        finally:
            for c in conns + [direct]:
                c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION + 60)
    check(not errors, f"queries failed: {errors[:3]}")
    check(not wrong, f"{len(wrong)} wrong results of {counts['reads']} reads "
                     f"(key, instance, got, at least, at most): {wrong[:5]}")
    after = [cache_row(s) for s in sl]
    hits = sum(a["hits"] - b["hits"] for a, b in zip(after, before))
    check(counts["writes"] > 100 and counts["reads"] > 200, f"too little ran: {counts}")
    # a write drops the whole table (its generation), one in twenty ops writes:
    # most reads in between hit
    check(hits * 2 > counts["reads"], f"only {hits} of {counts['reads']} reads hit the cache")
    for s in sl:
        check(s.alive(), "a sluice died")
