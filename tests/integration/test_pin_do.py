"""Transaction mode: the session state a DO block's body makes pins as the
same statement run on its own would (stats/code_session.c reads each DO
text; every DO block has one statement shape).

PostgreSQL's own regression suite found it: brin's DO block runs
`SET enable_seqscan = 0` / `SET enable_bitmapscan = 0`, and through a
transaction pool another test then got plans made without bitmap scans.
"""
from harness import check, test
from test_pinning import one, pinned_scenario, pins, tx_sluice


@test("pin.do_block_set", timeout=120)
def t_do_set(env):
    def probe(c):
        check(one(c, "SHOW enable_bitmapscan")[0] == "on",
              "another client got the DO block's SET enable_bitmapscan")

    pinned_scenario(
        env, "set",
        ["DO $x$ BEGIN\n  -- as brin's test\n  SET enable_bitmapscan = 0;\nEND $x$"],
        lambda a: check(one(a, "SHOW enable_bitmapscan")[0] == "off", "the SET is gone"),
        probe, ["RESET ALL"])


@test("pin.do_block_temp_listen", timeout=120)
def t_do_temp(env):
    def probe(c):
        check(one(c, "SELECT to_regclass('pin_do_tmp')")[0] is None,
              "another client sees the DO block's temp table")

    pinned_scenario(
        env, "temp",
        ["DO 'BEGIN CREATE TEMP TABLE pin_do_tmp (x int); END'"],
        lambda a: check(one(a, "SELECT to_regclass('pin_do_tmp')")[0] is not None,
                        "temp table gone"),
        probe, ["DISCARD TEMP"])


@test("pin.do_block_plain_does_not_pin", timeout=60)
def t_do_plain(env):
    """A DO block that makes no session state leaves the client unpinned,
    also right after one that did (the texts share a shape, not a verdict)."""
    s = tx_sluice(env)
    one_pinned = s.connect()
    c = s.connect()
    try:
        c.cursor().execute("CREATE TABLE IF NOT EXISTS pin_do_t (a int)")
        one_pinned.cursor().execute("DO $$ BEGIN SET work_mem = '2MB'; END $$")
        before = {k: v[1] for k, v in pins(s).items()}
        for _ in range(3):
            c.cursor().execute("DO $$ BEGIN UPDATE pin_do_t SET a = a + 1 WHERE false; "
                               "PERFORM 1; END $$")
        after = {k: v[1] for k, v in pins(s).items()}
        check(after == before, f"a DO block without session state pinned: {before} -> {after}")
        now = pins(s).get("set", (0, 0))[0]
        check(now == 1, f"pinned now for set: {now} (the first client only)")
    finally:
        one_pinned.close()
        c.close()
