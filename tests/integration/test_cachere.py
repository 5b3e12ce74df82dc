"""The request/reply tracker (reply.c) when an ErrorResponse answers a Sync.

A Sync can fail on its own: the implicit transaction of an extended batch
commits there, and a deferred constraint is checked then. PostgreSQL sends
the ErrorResponse and the Sync's ReadyForQuery, and skips nothing: the
batch pipelined behind it runs as usual. The tracker must not skip that
batch's requests: in transaction mode its named Parse would be forgotten
(a later Bind of it then fails with 26000), and in session mode the cache
would stop following the client's named statements.
"""
from harness import M_SYNC, check, m_bind, m_execute, m_parse, parse_datarow, parse_fields, test
from test_cache import calls, setup, start
from test_cache_ext import READ, vals
from test_cache_sess import bind, prepare, served

TX = {"pool_mode": "transaction", "default_pool_size": "5"}
DEFERRED = ("DROP TABLE IF EXISTS cachere_d; "
            "CREATE TABLE cachere_d (id int UNIQUE DEFERRABLE INITIALLY DEFERRED); "
            "ALTER TABLE cachere_d OWNER TO app")
# runs, then its implicit transaction fails to commit at the Sync (23505)
DUP = "INSERT INTO cachere_d VALUES (1), (1)"


def failing_sync_then(w, name, sql):
    """The batch whose Sync fails, and behind it in the same write one that
    parses <name> as <sql>: the messages of both replies."""
    w.send(m_parse("", DUP) + m_bind("", "") + m_execute() + M_SYNC
           + m_parse(name, sql) + m_bind("", name) + m_execute() + M_SYNC)
    return w.collect(until_ready=2)


@test("cachere: transaction mode, a Parse behind a Sync that fails keeps its name")
def t_tx_sync_error(env):
    # fails without the fix: the tracker skipped the second batch as if the
    # error had made the server skip it, forgot "after_sync", and the Bind
    # of it went to PostgreSQL unrenamed (26000)
    env.pg.query(DEFERRED, dbname="app")
    s = env.sluice(settings=TX)
    w = s.wire()
    msgs = failing_sync_then(w, "after_sync", "SELECT 2")
    types = b"".join(t for t, _ in msgs)
    codes = [parse_fields(p).get("C") for t, p in msgs if t == b"E"]
    check(types == b"12CEZ12DCZ" and codes == ["23505"],
          f"the two batches answered {types} {codes}, want 12CEZ12DCZ and 23505")
    w.send(m_bind("", "after_sync") + m_execute() + M_SYNC)
    msgs = w.collect()
    errs = [parse_fields(p) for t, p in msgs if t == b"E"]
    rows = [parse_datarow(p)[0] for t, p in msgs if t == b"D"]
    check(not errs and rows == ["2"], f"Bind after_sync: rows {rows} errors {errs}")
    check(w.query("SELECT 1") == [["1"]], "connection unusable")
    w.close()


@test("cachere: session mode, a named statement parsed behind a Sync that fails is served")
def t_sess_sync_error(env):
    # fails without the fix: the tracker took the second batch's replies
    # for unmatched ones, and the cache stopped following the client
    setup(env)
    env.pg.query(DEFERRED, dbname="app")
    s = start(env, mode="session")
    m = "cachere_sync"
    q = READ.format(m=m)
    w = s.wire()
    msgs = failing_sync_then(w, "s1", q.replace("$1", "7"))
    types = b"".join(t for t, _ in msgs)
    codes = [parse_fields(p).get("C") for t, p in msgs if t == b"E"]
    check(types == b"12CEZ12DCZ" and codes == ["23505"],
          f"the two batches answered {types} {codes}, want 12CEZ12DCZ and 23505")
    # s2 parsed and described after it: followed, so a Bind of it hits
    prepare(w, "s2", q)
    served(env, w, "s2", m)
    types, rows, errs = bind(w, "s2", ["7"])
    check(types == b"2TDCZ" and vals(rows) == ["7"] and not errs, f"Bind s2: {types} {errs}")
    check(calls(env, m) >= 1, "the statement never ran at PostgreSQL: test proves nothing")
    w.close()
