"""Fidelity of startup parameters and of reused sessions (issue 12, item 1):
every startup parameter PostgreSQL accepts works through sluice, in session
mode the server's session is the one a direct connection makes (RESET goes
back to the client's startup value, a bad parameter gets PostgreSQL's own
error), pooling still works for clients that send the same parameters, and
a server whose session kept what a reset cannot undo is not handed on.
Each check compares with a direct connection to PostgreSQL where it can."""
import subprocess

from harness import PgError, Wire, admin_rows, check, login_wire, test, wait_until

# as libpq sends them: blanks between arguments, a backslash before a
# blank that belongs to a value
OPTIONS = r"-c intervalstyle=postgres_verbose --search-path=fid,public -c DateStyle=German,\ DMY"
EXTRA = {"options": OPTIONS, "statement_timeout": "150",
         "idle_in_transaction_session_timeout": "2500", "application_name": "fidp"}

# what the session looks like; RESET ALL and RESET x must go back to the
# startup values, not to the server's defaults
PROBES = [
    "SHOW intervalstyle", "SHOW search_path", "SHOW DateStyle", "SHOW statement_timeout",
    "SHOW idle_in_transaction_session_timeout", "SHOW application_name",
    "SELECT '1 day 2 hours'::interval::text",
    "SET intervalstyle = iso_8601", "SHOW intervalstyle", "RESET intervalstyle",
    "SHOW intervalstyle",
    "SET statement_timeout = 0", "SET search_path = public", "RESET ALL",
    "SHOW statement_timeout", "SHOW search_path", "SHOW DateStyle",
    "SELECT '1 day'::interval::text",
]

REPORTED = ("IntervalStyle", "DateStyle", "application_name", "TimeZone", "client_encoding",
            "standard_conforming_strings", "default_transaction_read_only")


def wire_login(port, extra, user="app", password="app"):
    w = Wire("127.0.0.1", port)
    w.user_for_md5 = user
    try:
        w.login(user, "app", password, extra=extra)
    except BaseException:
        w.close()
        raise
    return w


def session_view(port, extra):
    """(reported parameters, answers to PROBES) of a login with <extra>."""
    w = wire_login(port, extra)
    try:
        rows = []
        for q in PROBES:
            rows.append((q, w.query(q)))
        return {k: w.params.get(k) for k in REPORTED}, rows
    finally:
        w.close()


def login_error(port, extra):
    try:
        wire_login(port, extra).close()
    except PgError as e:
        return e.fields
    return None


@test("fidparams.session_startup_parameters", timeout=60)
def t_session_params(env):
    """options (both -c and --name=value, with an escaped blank) and GUCs
    given directly as startup parameters take effect, are reported as
    PostgreSQL reports them, and RESET / RESET ALL return to them: the same
    answers as from a direct connection, twice (the second client gets the
    server the first one used)."""
    want = session_view(env.pg.port, EXTRA)
    check(want[1][0][1] == [["postgres_verbose"]], f"direct: {want[1][0]}")
    s = env.sluice(settings={"pool_mode": "session"})
    for i in range(2):
        got = session_view(s.port, EXTRA)
        check(got[0] == want[0], f"client {i}: reported {got[0]}, directly {want[0]}")
        for g, d in zip(got[1], want[1]):
            check(g == d, f"client {i}: {g[0]}: {g[1]}, directly {d[1]}")
    # the startup statement_timeout is in force
    w = wire_login(s.port, {"statement_timeout": "200"})
    try:
        try:
            w.query("SELECT pg_sleep(2)")
            raise AssertionError("statement_timeout given at startup did not apply")
        except PgError as e:
            check(e.code == "57014", f"startup statement_timeout: {e.fields}")
    finally:
        w.close()
    # a client without them is not given them
    w = wire_login(s.port, {})
    try:
        check(w.query("SHOW intervalstyle") == [["postgres"]], "plain client's intervalstyle")
        check(w.query("SHOW statement_timeout") == [["0"]], "plain client's statement_timeout")
    finally:
        w.close()


@test("fidparams.psycopg2_options", timeout=60)
def t_psycopg2_options(env):
    """The same through libpq: options=-c intervalstyle=postgres_verbose and
    RESET intervalstyle."""
    s = env.sluice(settings={"pool_mode": "session"})
    c = s.connect(options="-c intervalstyle=postgres_verbose -c statement_timeout=1234",
                  application_name="fidpsy")
    try:
        names = [r["application_name"] for r in admin_rows(s, "SHOW CLIENTS")]
        check("fidpsy" in names, f"SHOW CLIENTS application_name: {names}")
        cur = c.cursor()
        cur.execute("SET intervalstyle = sql_standard")
        cur.execute("RESET intervalstyle")
        cur.execute("SHOW intervalstyle")
        check(cur.fetchone()[0] == "postgres_verbose", "RESET intervalstyle")
        cur.execute("SHOW statement_timeout")
        check(cur.fetchone()[0] == "1234ms", "statement_timeout from options")
    finally:
        c.close()


BAD = [
    {"statement_timeout": "abc"},
    {"fid_no_such_guc": "1"},
    {"options": "-c fid_no_such_guc=1"},
    {"options": "-c intervalstyle"},
    {"options": "-c intervalstyle=nonsense"},
    {"options": "-B 100"},
    {"log_statement": "all"},  # superuser only
    {"shared_buffers": "1MB"},  # not after start
]


@test("fidparams.bad_parameter_error_is_postgresqls", timeout=90)
def t_bad_params(env):
    """A bad startup parameter gets exactly the error a direct connection
    gets (severity, SQLSTATE, message, detail, hint), only that client is
    refused, and the pool goes on serving others."""
    s = env.sluice(settings={"pool_mode": "session"})
    for extra in BAD:
        want = login_error(env.pg.port, extra)
        check(want is not None, f"PostgreSQL accepted {extra}")
        got = login_error(s.port, extra)
        check(got is not None, f"sluice accepted {extra}")
        for f in ("S", "V", "C", "M", "D", "H"):
            check(got.get(f) == want.get(f),
                  f"{extra}: field {f} is {got.get(f)!r}, directly {want.get(f)!r}")
        w = wire_login(s.port, {})
        check(w.query("SELECT 1") == [["1"]], f"a plain client after {extra}")
        w.close()


def pgbench_sessions(env, s, extra_env=None, clients=2, tx=40):
    """Run pgbench -C (a new connection per transaction) through <s> with a
    script that records its server session; return (rows, distinct server
    sessions)."""
    env.pg.query("DROP TABLE IF EXISTS fid_seen", dbname="app")
    env.pg.query("CREATE TABLE fid_seen (pid int, started timestamptz)", dbname="app")
    env.pg.query("GRANT ALL ON fid_seen TO app", dbname="app")
    script = f"{s.dir}/seen.sql"
    with open(script, "w") as f:
        f.write("INSERT INTO fid_seen SELECT pid, backend_start FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid();\n")
    e = s.pgenv()
    e.update(extra_env or {})
    r = subprocess.run(["pgbench", "-n", "-C", "-c", str(clients), "-t", str(tx), "-f", script],
                       env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120)
    check(r.returncode == 0, f"pgbench failed:\n{r.stdout[-2000:]}")
    rows, distinct = env.pg.query("SELECT count(*), count(DISTINCT (pid, started)) "
                                  "FROM fid_seen", dbname="app")[0]
    return rows, distinct


@test("fidparams.pooling_with_same_parameters", timeout=120)
def t_reuse(env):
    """Clients that send the same startup parameters (pgbench sends
    application_name, here also PGOPTIONS) share servers as before: 80 new
    connections in session mode are served by a handful of server logins."""
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "0"}, fresh=True)
    for extra in ({}, {"PGOPTIONS": "-c intervalstyle=postgres_verbose"}):
        rows, distinct = pgbench_sessions(env, s, extra)
        check(rows == 80, f"{extra}: {rows} transactions recorded")
        check(distinct <= 8, f"{extra}: 80 connections used {distinct} server logins")
    env.drop_sluice()


@test("fidparams.transaction_mode_startup_parameters", timeout=60)
def t_transaction_mode(env):
    """Transaction mode cannot give each client a server of its own: a
    tracked parameter (given directly or with -c in options) follows the
    client, any other is refused naming the settings that help, never
    dropped in silence; listed in track_extra_parameters it works."""
    s = env.sluice(settings={"pool_mode": "transaction"}, fresh=True)
    w = wire_login(s.port, {"options": r"-c intervalstyle=postgres_verbose"})
    check(w.params.get("IntervalStyle") == "postgres_verbose", f"reported: {w.params}")
    check(w.query("SHOW intervalstyle") == [["postgres_verbose"]], "tracked via options")
    w.close()
    for extra in ({"statement_timeout": "150"}, {"options": "-c statement_timeout=150"},
                  {"options": "-B 100"}):
        e = login_error(s.port, extra)
        check(e is not None, f"{extra} accepted in transaction mode")
        hint = e.get("H", "")
        named = ("ignore_startup_parameters" in hint and "track_extra_parameters" in hint) \
            or "-c name=value" in hint
        check(e.get("C") == "08P01" and named, f"{extra}: unclear refusal {e}")
    s = env.sluice(settings={"pool_mode": "transaction",
                             "track_extra_parameters": "statement_timeout"}, fresh=True)
    for extra in ({"statement_timeout": "150"}, {"options": "-c statement_timeout=150"}):
        w = wire_login(s.port, extra)
        try:
            check(w.query("SHOW statement_timeout") == [["150ms"]], f"{extra}: tracked")
        finally:
            w.close()
    w = wire_login(s.port, {})
    check(w.query("SHOW statement_timeout") == [["0"]], "not passed to the next client")
    w.close()
    env.drop_sluice()


def temp_prepare_error(port):
    """Create a temp table, touch it in a transaction and PREPARE it: the
    error fields."""
    w = login_wire("127.0.0.1", port, "app", "app", "app")
    try:
        w.query("CREATE TEMP TABLE fid_tmp (a int)")
        w.query("BEGIN")
        w.query("SELECT * FROM fid_tmp")
        try:
            w.query("PREPARE TRANSACTION 'fid_tmp_x'")
            return None
        except PgError as e:
            return e.fields
        finally:
            w.query("ROLLBACK")
    finally:
        w.close()


def fresh_view(w):
    return {
        "temp schema": w.query("SELECT pg_my_temp_schema() <> 0")[0][0],
        "temp table": w.query("SELECT to_regclass('pg_temp.fid_tmp') IS NOT NULL")[0][0],
        "listening": w.query("SELECT count(*) FROM pg_listening_channels()")[0][0],
        "advisory locks": w.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND pid = pg_backend_pid()")[0][0],
    }


FRESH = {"temp schema": "f", "temp table": "f", "listening": "0", "advisory locks": "0"}


@test("fidparams.temp_objects_not_handed_on", timeout=90)
def t_temp_objects(env):
    """With one server (pool size 1), a client that made a temp table leaves:
    the next client gets a fresh session, without the temp table and
    without the temp schema DISCARD ALL leaves behind (a new server),
    while a client that made nothing leaves its server to the next one.
    PREPARE TRANSACTION after touching temp objects fails as directly."""
    want = temp_prepare_error(env.pg.port)
    check(want is not None and want.get("C") == "0A000", f"directly: {want}")
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "1",
                             "min_pool_size": "0"}, fresh=True)
    got = temp_prepare_error(s.port)
    check(got is not None, "PREPARE TRANSACTION after temp objects succeeded through sluice")
    for f in ("S", "C", "M"):
        check(got.get(f) == want.get(f), f"field {f}: {got.get(f)!r}, directly {want.get(f)!r}")
    w = s.wire()
    view = fresh_view(w)
    pid = w.backend_key[0]
    w.close()
    check(view == FRESH, f"after a temp table: {view}")
    w = s.wire()
    check(w.backend_key[0] == pid, "a server whose client made nothing was not reused")
    w.close()
    env.drop_sluice()


@test("fidparams.session_state_not_handed_on", timeout=90)
def t_session_state(env):
    """With a reset query that undoes little (RESET ALL), a server whose
    client LISTENed, held a session advisory lock or made a temp table is
    closed rather than handed on; one whose client made nothing is reused."""
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "1",
                             "min_pool_size": "0", "server_reset_query": "RESET ALL"},
                   fresh=True)
    for what in ("LISTEN fid_chan", "SELECT pg_advisory_lock(4242)",
                 "CREATE TEMP TABLE fid_tmp (a int)"):
        w = s.wire()
        w.query(what)
        w.close()
        w = s.wire()
        view = fresh_view(w)
        w.close()
        check(view == FRESH, f"after {what!r}: {view}")
    w = s.wire()
    pid = w.backend_key[0]
    w.query("SELECT 1")
    w.close()
    w = s.wire()
    check(w.backend_key[0] == pid, "a server whose client made nothing was not reused")
    w.close()
    env.drop_sluice()


@test("fidparams.warm_servers_and_full_pools", timeout=60)
def t_warm(env):
    """Servers min_pool_size opens for no client in particular get the
    startup parameters of the pool's latest login, so the next client of
    that application finds one ready; with the pool full of idle servers of
    another set, a client with a new set still gets a server (an idle one
    is closed to make room) and the pool's size holds."""
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "2",
                             "default_pool_size": "2"}, fresh=True)
    w = wire_login(s.port, {"application_name": "fidwarm"})
    w.close()
    env.pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE usename = 'app' AND backend_type = 'client backend'")

    def mine():
        """This sluice's servers (other instances may be connected too) as
        {pid: application_name}."""
        pids = [int(r["remote_pid"]) for r in admin_rows(s, "SHOW SERVERS")]
        if not pids:
            return {}
        rows = env.pg.query("SELECT pid, application_name FROM pg_stat_activity "
                            "WHERE pid = ANY(%s)", (pids,))
        return {r[0]: r[1] for r in rows}

    check(wait_until(lambda: len(mine()) >= 2, 10), "min_pool_size refilled")
    warm = mine()
    check(sorted(warm.values()) == ["fidwarm", "fidwarm"], f"refilled servers: {warm}")
    pids = set(warm)
    w = wire_login(s.port, {"application_name": "fidwarm"})
    check(w.backend_key[0] in pids, "the client did not get a warm server")
    w.close()
    w = wire_login(s.port, {"application_name": "fidother"})
    try:
        check(w.query("SHOW application_name") == [["fidother"]], "other set")
        check(w.backend_key[0] not in pids, "a server of another set was handed out")
        n = len(mine())
        check(n <= 2, f"{n} servers with default_pool_size = 2")
    finally:
        w.close()
    env.drop_sluice()
