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
