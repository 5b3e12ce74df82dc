"""Transaction mode: a pinned client that leaves hands on a server as fresh
as session mode does. DISCARD ALL drops temporary objects but not the
temporary schema a backend made for them; a server whose pinned client
made one is closed, not pooled (PostgreSQL's temp test found it: on a
reused server, `PREPARE TRANSACTION` after `current_schema()` with
`pg_temp` first in search_path did not fail as on a new backend).
"""
from harness import check, test, wait_until
from test_pinning import one, tx_sluice


@test("pin.leave_with_temp_schema_closes", timeout=60)
def t_leave_temp(env):
    s = tx_sluice(env, default_pool_size="1", min_pool_size="0")
    a = s.connect()
    a.cursor().execute("CREATE TEMP TABLE pin_leave_tmp (x int)")
    pid = one(a, "SELECT pg_backend_pid()")[0]
    check(one(a, "SELECT pg_my_temp_schema() <> 0")[0] is True, "no temp schema made")
    a.close()
    # the pool has room for one server: the next client gets a new backend
    b = s.connect()
    try:
        check(wait_until(lambda: env.backends(where=f"AND pid = {pid}") == 0, 5),
              f"server {pid}, whose client made a temporary schema, is still open")
        check(one(b, "SELECT pg_backend_pid()")[0] != pid, "got the old server back")
        check(one(b, "SELECT pg_my_temp_schema()")[0] == 0,
              "the next client's session has another client's temporary schema")
    finally:
        b.close()


@test("pin.leave_without_temp_schema_reuses", timeout=60)
def t_leave_plain(env):
    """A pinned client without temporary objects leaves its server to the
    next client after DISCARD ALL, as before."""
    s = tx_sluice(env, default_pool_size="1", min_pool_size="0")
    a = s.connect()
    a.cursor().execute("SET work_mem = '2MB'")
    pid = one(a, "SELECT pg_backend_pid()")[0]
    a.close()
    b = s.connect()
    try:
        check(one(b, "SELECT pg_backend_pid()")[0] == pid, "the server was not reused")
        check(one(b, "SHOW work_mem")[0] != "2MB", "the SET reached the next client")
    finally:
        b.close()


@test("pin.temp_statistics_object", timeout=120)
def t_temp_stats(env):
    """CREATE STATISTICS pg_temp.x (any object made in pg_temp by name)
    pins like a temp table, and its DROP unpins once nothing temporary is
    left (PostgreSQL's stats_ext test dropped it on another server)."""
    from test_pinning import pinned_scenario, pins

    setup = env.sluice(settings={"pool_mode": "session"}).connect()
    setup.cursor().execute("CREATE TABLE IF NOT EXISTS pin_st_t (a int, b int)")
    setup.close()

    def probe(c):
        check(one(c, "SELECT count(*) FROM pg_statistic_ext WHERE stxname = 'pin_st' "
                     "AND stxnamespace = pg_my_temp_schema()")[0] == 0,
              "another client's server holds the temporary statistics object")

    pinned_scenario(
        env, "temp", ["CREATE STATISTICS pg_temp.pin_st ON a, b FROM pin_st_t"],
        lambda a: check(one(a, "SELECT count(*) FROM pg_statistic_ext WHERE stxname = 'pin_st' "
                               "AND stxnamespace = pg_my_temp_schema()")[0] == 1,
                        "the object is gone"),
        probe, ["DROP STATISTICS pg_temp.pin_st"],
        # the server is asked what is left once the DROP's transaction is
        # over; the answer comes a moment after the client's own reply
        lambda a: check(wait_until(lambda: pins(env.current).get("temp", (1, 0))[0] == 0, 5),
                        "still pinned after the DROP"))


@test("pin.temp_ended_server_replaced", timeout=60)
def t_temp_ended(env):
    """A client whose temp objects are gone (DISCARD TEMP, or a DROP the
    server confirms) is unpinned, and its server, which keeps the empty
    temporary schema, is replaced once free instead of pooled."""
    for end in ("DISCARD TEMP", "DROP TABLE pin_end_tmp"):
        s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                                 "min_pool_size": "0"}, fresh=True)
        a = s.connect()
        try:
            a.cursor().execute("CREATE TEMP TABLE pin_end_tmp (x int)")
            pid = one(a, "SELECT pg_backend_pid()")[0]
            a.cursor().execute(end)
            b = s.connect()
            try:
                p2, temp = one(b, "SELECT pg_backend_pid(), pg_my_temp_schema()")
                check(p2 != pid, f"{end}: another client got the server with the "
                                 "temporary schema")
                check(temp == 0, f"{end}: the next client has a temporary schema")
            finally:
                b.close()
        finally:
            a.close()
