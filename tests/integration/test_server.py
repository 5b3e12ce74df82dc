"""Server-side hardening (issue 8): cancels that hit only their own query,
pools for databases that do not exist, list walks that survive closing
other clients, Terminate over TLS, session parameters sent as bound values,
reload edge cases, max_db_connections / max_user_connections /
connect_query, and host names resolved on the loop."""
import os
import socket
import struct
import threading
import time

import psycopg2

from harness import (PASSWORDS, Closed, PgError, Wire, admin_rows, check, login_wire, m_bind,
                     m_execute, m_parse, m_query, M_SYNC, parse_fields, send_cancel, test,
                     wait_until)

TX1 = {"pool_mode": "transaction", "default_pool_size": "1", "min_pool_size": "0"}


def read_until_ready(w, timeout=5):
    """Messages up to ReadyForQuery; raises socket.timeout if none comes."""
    w.settimeout(timeout)
    out = []
    while True:
        t, p = w.read_msg()
        out.append((t, p))
        if t == b"Z":
            return out


def errors_of(msgs):
    return [parse_fields(p) for t, p in msgs if t == b"E"]


def pg_log_size(env):
    return os.path.getsize(env.pg.log)


def pg_log_since(env, offset):
    with open(env.pg.log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


# ---- item 6: cancels ------------------------------------------------------

@test("server.cancel_of_waiting_client_drops_its_request")
def t_cancel_waiting(env):
    """A client queued for a server (pool of one, held by another session)
    is cancelled: its queued request is dropped and answered with 57014,
    the client stays usable, and the dropped request never runs."""
    env.pg.query("CREATE TABLE IF NOT EXISTS cancel_wait (v text)", dbname="app")
    env.pg.query("GRANT ALL ON cancel_wait TO app", dbname="app")
    env.pg.query("TRUNCATE cancel_wait", dbname="app")
    # transaction mode, the holder inside a transaction: a session-mode
    # client waits for its server at login already, before it has a key
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                             "min_pool_size": "0"}, fresh=True)
    holder = s.wire()
    holder.query("BEGIN")
    check(holder.query("SELECT 1") == [["1"]], "holder query")
    w = s.wire()
    # simple protocol
    w.send(m_query("INSERT INTO cancel_wait VALUES ('simple')"))
    time.sleep(0.3)
    send_cancel("127.0.0.1", s.port, w.backend_key)
    try:
        msgs = read_until_ready(w, 3)
    except socket.timeout:
        check(False, "a cancel for a client waiting for a server was not answered")
    errs = errors_of(msgs)
    check(len(errs) == 1 and errs[0].get("C") == "57014",
          f"expected one 57014 error, got {errs}")
    check("canceling statement due to user request" in errs[0].get("M", ""),
          f"message: {errs[0].get('M')!r}")
    check(errs[0].get("S") == "ERROR", "the cancel must not end the session")
    # extended protocol: a whole batch up to Sync is dropped, one error, one RFQ
    w.send(m_parse("", "INSERT INTO cancel_wait VALUES ($1)") + m_bind("", "", ["ext"])
           + m_execute() + M_SYNC)
    time.sleep(0.3)
    send_cancel("127.0.0.1", s.port, w.backend_key)
    try:
        msgs = read_until_ready(w, 3)
    except socket.timeout:
        check(False, "a cancel for a waiting extended-protocol batch was not answered")
    check([t for t, _ in msgs] == [b"E", b"Z"], f"expected E, Z; got {[t for t, _ in msgs]}")
    check(errors_of(msgs)[0].get("C") == "57014", "extended batch: SQLSTATE")
    holder.close()
    # the client goes on, and neither dropped request ran
    check(w.query("SELECT count(*) FROM cancel_wait") == [["0"]],
          "a cancelled queued request ran anyway")
    w.close()


@test("server.cancel_never_hits_the_next_client", timeout=90)
def t_cancel_race(env):
    """Transaction mode, one server: client A's short queries are cancelled
    again and again while client B queues behind A. A cancel that arrives
    as A's query ends must not cancel B's query on the same server."""
    s = env.sluice(settings=TX1, fresh=True)
    a = s.wire()
    b = s.wire()
    stop = threading.Event()
    b_errors = []
    b_done = [0]
    a_cancelled = [0]

    def run_b():
        while not stop.is_set():
            try:
                b.query("SELECT pg_sleep(0.01)")
                b_done[0] += 1
            except PgError as e:
                b_errors.append(e.code)

    def cancel_a():
        while not stop.is_set():
            send_cancel("127.0.0.1", s.port, a.backend_key)
            time.sleep(0.002)

    tb = threading.Thread(target=run_b, daemon=True)
    tc = threading.Thread(target=cancel_a, daemon=True)
    tb.start()
    tc.start()
    t0 = time.time()
    while time.time() - t0 < 4:
        try:
            a.query("SELECT pg_sleep(0.002)")
        except PgError as e:
            check(e.code == "57014", f"client A: unexpected error {e}")
            a_cancelled[0] += 1
    stop.set()
    tb.join(10)
    tc.join(10)
    check(a_cancelled[0] > 0, "no cancel ever reached client A's query (test did not race)")
    check(b_done[0] > 0, "client B never ran")
    check(not b_errors, f"client B's queries were hit by A's cancels: {len(b_errors)} errors "
          f"({b_errors[:3]}), {b_done[0]} ok; A was cancelled {a_cancelled[0]} times")
    a.close()
    b.close()


# ---- item 7: pools of databases that do not exist ----------------------------

@test("server.missing_databases_no_retry_and_pools_freed", timeout=90)
def t_missing_databases(env):
    s = env.sluice(settings={"autodb_idle_timeout": "2", "min_pool_size": "2",
                             "server_login_retry": "1"},
                   databases={"*": "host=127.0.0.1 port=PGPORT"}, fresh=True)
    codes = []
    for i in range(50):
        try:
            s.wire(dbname=f"nope_{i}").close()
            codes.append("ok")
        except PgError as e:
            codes.append(e.code)
        except Closed:
            codes.append("closed")
    check(all(c == "3D000" for c in codes), f"expected 3D000 for every client, got "
          f"{sorted(set(codes))}")
    pools = [r for r in admin_rows(s, "SHOW POOLS") if r["database"].startswith("nope_")]
    check(len(pools) > 0, "no pool was made for the unknown names (test assumption)")
    # no more connection attempts: PostgreSQL logs each refused login
    time.sleep(0.5)
    before = pg_log_since(env, 0).count('database "nope_')
    time.sleep(3)
    after = pg_log_since(env, 0).count('database "nope_')
    check(after == before, f"sluice kept logging in to missing databases: {after - before} "
          "more attempts in 3 s")
    gone = wait_until(lambda: not [r for r in admin_rows(s, "SHOW POOLS")
                                   if r["database"].startswith("nope_")], 6)
    check(gone, "pools of the missing databases still listed after autodb_idle_timeout")
    # the real database still works through "*"
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT current_database()")
    check(cur.fetchone()[0] == "app", "the * entry no longer serves real databases")
    c.close()
    env.drop_sluice()


# ---- item 8: the janitor's walk ---------------------------------------------

@test("server.janitor_survives_a_timeout_that_closes_the_next_client")
def t_janitor_walk(env):
    """Session mode, one server, no reset query: A's client_idle_timeout
    (checked by the janitor) releases the server to B, queued right behind
    A in the client list, whose buffered message is malformed; linking B
    closes B while the janitor walks past A. sluice must survive."""
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "1",
                             "min_pool_size": "0", "client_idle_timeout": "2",
                             "server_reset_query": ""}, fresh=True)
    a = s.wire()
    check(a.query("SELECT 1") == [["1"]], "A's query")
    b = s.wire()
    b.send(b"Q" + struct.pack("!I", 1))  # length 1: invalid, seen only once linked
    time.sleep(3.5)
    check(s.alive(), f"sluice died when a timeout closed another client:\n{s.log_tail()}")
    c = s.wire()
    check(c.query("SELECT 2") == [["2"]], "sluice unusable after the janitor's walk")
    for w in (a, b, c):
        w.close()
    env.drop_sluice()


# ---- item 15: Terminate over TLS -------------------------------------------

@test("server.terminate_goes_through_tls")
def t_terminate_tls(env):
    from test_tls import certs
    crt = certs(env)
    env.pg.query("ALTER SYSTEM SET ssl = on")
    env.pg.query(f"ALTER SYSTEM SET ssl_cert_file = '{crt['cert']}'")
    env.pg.query(f"ALTER SYSTEM SET ssl_key_file = '{crt['key']}'")
    env.pg.query("SELECT pg_reload_conf()")
    try:
        s = env.sluice(settings={"server_tls_sslmode": "require", "min_pool_size": "0",
                                 "pool_mode": "transaction"}, fresh=True)
        off = pg_log_size(env)
        c = s.connect()
        cur = c.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        check(cur.fetchone()[0] is True, "sluice reached PostgreSQL without TLS")
        c.close()
        check(env.wait_backends(lambda n: n >= 1, 5), "no server connection")
        env.drop_sluice()  # SIGTERM: sluice closes its servers
        check(env.wait_backends(lambda n: n == 0, 5), "server connections left behind")
        time.sleep(0.3)
        log = pg_log_since(env, off)
        bad = [ln for ln in log.splitlines()
               if "SSL" in ln or "unexpected EOF" in ln or "could not receive" in ln
               or "invalid" in ln]
        check(not bad, "PostgreSQL logged errors when sluice closed a TLS server "
              f"connection: {bad[:3]}")
    finally:
        env.drop_sluice()
        env.pg.query("ALTER SYSTEM RESET ssl")
        env.pg.query("SELECT pg_reload_conf()")


# ---- item 16: session parameters as bound values ------------------------------

@test("server.long_parameters_follow_client")
def t_long_params(env):
    """A 1,000-character application_name (PostgreSQL keeps 63 of them) and
    a 1,000-character search_path (tracked) follow their client in
    transaction mode on a one-server pool, whole."""
    s = env.sluice(settings=dict(TX1, track_extra_parameters="search_path"), fresh=True)
    name = "".join(chr(ord("a") + i % 26) for i in range(1000))
    path = ", ".join(f"s{i:05d}" for i in range(143))[:1000].rstrip(", ")
    direct = psycopg2.connect(host=env.pg.sockdir, port=env.pg.port, user="app",
                              dbname="app", application_name=name)
    dcur = direct.cursor()
    dcur.execute("SHOW application_name")
    want_name = dcur.fetchone()[0]
    direct.close()
    a = Wire("127.0.0.1", s.port)
    a.user_for_md5 = "app"
    a.login("app", "app", PASSWORDS["app"],
            extra={"application_name": name, "search_path": path})
    b = s.wire()
    for _ in range(3):
        check(b.query("SELECT 1") == [["1"]], "B's query")
        got = a.query("SHOW application_name")[0][0]
        check(got == want_name, f"A's application_name arrived as {got[:20]!r}... "
              f"({len(got)} characters), PostgreSQL itself keeps {len(want_name)}")
        got = a.query("SHOW search_path")[0][0]
        check(got == path, f"A's search_path arrived with {len(got)} characters, "
              f"expected {len(path)}")
        check(b.query("SHOW search_path") == [['"$user", public']],
              "B sees A's search_path")
    a.close()
    b.close()


@test("server.quoted_values_under_standard_conforming_strings_off")
def t_quotes_backslashes(env):
    s = env.sluice(settings=TX1, fresh=True)
    tricky = "it's a \\' back\\\\slash \\ and ''quotes"
    a = Wire("127.0.0.1", s.port)
    a.user_for_md5 = "app"
    a.login("app", "app", PASSWORDS["app"],
            extra={"standard_conforming_strings": "off", "application_name": "plain"})
    b = Wire("127.0.0.1", s.port)
    b.user_for_md5 = "app"
    b.login("app", "app", PASSWORDS["app"],
            extra={"standard_conforming_strings": "off", "application_name": tricky})
    for _ in range(3):
        check(a.query("SHOW application_name") == [["plain"]], "A's application_name")
        got = b.query("SHOW application_name")[0][0]
        check(got == tricky, f"B's application_name arrived as {got!r}, expected {tricky!r}")
        check(b.query("SHOW standard_conforming_strings") == [["off"]], "B's scs")
    a.close()
    b.close()


@test("server.refused_parameter_closes_server_and_tells_client")
def t_refused_parameter(env):
    s = env.sluice(settings=TX1, fresh=True)
    keeper = s.wire()
    check(keeper.query("SELECT 1") == [["1"]], "keeper")
    w = Wire("127.0.0.1", s.port)
    w.user_for_md5 = "app"
    try:
        w.login("app", "app", PASSWORDS["app"], extra={"DateStyle": "nonsense"})
    except PgError as e:
        check(False, f"login refused before any server was used: {e}")
    try:
        w.query("SELECT 1")
        check(False, "a query ran although the server refused the client's DateStyle")
    except PgError as e:
        check(e.code == "22023", f"SQLSTATE {e.code}: {e}")
        check("DateStyle" in str(e) or "datestyle" in str(e).lower(),
              f"the error does not name the parameter: {e}")
    except Closed:
        check(False, "connection closed without an error")
    w.close()
    check(keeper.query("SELECT 2") == [["2"]], "another client broken by the refusal")
    keeper.close()


# ---- item 17: reload --------------------------------------------------------

def backend_pids(env, datname):
    return {r[0] for r in env.pg.query(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
        "AND usename = 'app' AND datname = %s", (datname,))}


@test("server.reload_changed_dbname_retires_old_servers")
def t_reload_changed(env):
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "0"}, fresh=True)
    busy = s.connect()
    cur = busy.cursor()
    cur.execute("SELECT current_database()")
    check(cur.fetchone()[0] == "app", "before reload")
    idle = s.connect()
    idle.cursor().execute("SELECT 1")
    idle.close()  # its server goes idle in the pool
    check(wait_until(lambda: len(backend_pids(env, "app")) == 2, 5), "two servers before")
    s.databases["app"] = f"host=127.0.0.1 port={env.pg.port} dbname=postgres"
    s.reload()
    # the idle one goes at once, the busy one stays with its client
    check(wait_until(lambda: len(backend_pids(env, "app")) == 1, 5),
          f"idle server of the old entry not closed: {backend_pids(env, 'app')}")
    cur.execute("SELECT current_database()")
    check(cur.fetchone()[0] == "app", "the busy client lost its server")
    c2 = s.connect()
    cur2 = c2.cursor()
    cur2.execute("SELECT current_database()")
    check(cur2.fetchone()[0] == "postgres", "a new client got a server of the old entry")
    c2.close()
    busy.close()  # released: retired, not pooled
    check(wait_until(lambda: len(backend_pids(env, "app")) == 0, 5),
          "the old entry's server was pooled again after its client left")
    c3 = s.connect()
    cur3 = c3.cursor()
    cur3.execute("SELECT current_database()")
    check(cur3.fetchone()[0] == "postgres", "old server handed out after reload")
    c3.close()
    env.drop_sluice()


@test("server.reload_removed_database_fails_waiting_clients")
def t_reload_removed(env):
    # transaction mode, the holder inside a transaction, so that the client
    # waits with a query queued (in session mode it waits at login)
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                             "min_pool_size": "0"},
                   databases={"other": "host=127.0.0.1 port=PGPORT dbname=app"}, fresh=True)
    holder = s.wire()
    holder.query("BEGIN")
    check(holder.query("SELECT 1") == [["1"]], "holder")
    w = s.wire()
    w.send(m_query("SELECT 'waited'"))
    time.sleep(0.3)
    s.databases.pop("app")
    t0 = time.time()
    s.reload()
    w.settimeout(5)
    try:
        msgs = []
        while True:
            t, p = w.read_msg()
            msgs.append((t, p))
            if t in (b"E", b"Z"):
                break
    except (Closed, ConnectionResetError, socket.timeout) as e:
        check(False, f"no error for a waiting client of a removed database: {e!r}")
    dt = time.time() - t0
    errs = errors_of(msgs)
    check(errs and errs[0].get("C") == "3D000", f"expected 3D000, got {errs}")
    check("removed" in errs[0].get("M", ""), f"message: {errs[0].get('M')!r}")
    check(dt < 3, f"error came after {dt:.1f}s")
    check(holder.query("SELECT 2") == [["2"]], "the linked client lost its server")
    holder.close()
    w.close()
    env.drop_sluice()


@test("server.reload_pool_mode_applies_to_new_links")
def t_reload_mode(env):
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "2",
                             "min_pool_size": "0"}, fresh=True)
    a = s.connect(autocommit=False)
    cur = a.cursor()
    cur.execute("CREATE TEMP TABLE mine (v int)")
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    s.settings["pool_mode"] = "transaction"
    s.reload()
    time.sleep(0.5)
    a.commit()  # ends the transaction that was open at reload
    b = s.connect()
    curb = b.cursor()
    curb.execute("SELECT pg_backend_pid()")
    check(curb.fetchone()[0] != pid, "a session client's server went to another client "
          "after pool_mode changed")
    cur.execute("SELECT pg_backend_pid()")
    check(cur.fetchone()[0] == pid, "the session client lost its server")
    cur.execute("SELECT count(*) FROM mine")
    check(cur.fetchone()[0] == 0, "temp table gone")
    a.commit()
    a.close()
    b.close()
    env.drop_sluice()


# ---- max_db_connections, max_user_connections, connect_query -----------------

def cap_test(env, s, first_kw, third_kw, where):
    """Two clients hold a server each (session mode); a third one, in
    another pool under the same cap of 2, must wait (not fail) and get a
    server once one of the first two leaves."""
    holders = [s.connect(**first_kw[0]), s.connect(**first_kw[1])]
    for h in holders:
        h.cursor().execute("SELECT 1")
    result = {}

    def third():
        try:
            c = s.connect(**third_kw)
            cur = c.cursor()
            cur.execute("SELECT 'third'")
            result["v"] = cur.fetchone()[0]
            c.close()
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=third, daemon=True)
    t.start()
    time.sleep(1.0)
    n = env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                     f"'client backend' AND {where}")[0][0]
    check(n <= 2, f"{n} server connections, over the cap of 2")
    check(t.is_alive() and not result, f"the third client did not wait: {result}")
    holders[0].close()
    t.join(10)
    check(result.get("v") == "third", f"the third client did not get a server: {result}")
    holders[1].close()


@test("server.max_db_connections_makes_clients_wait")
def t_max_db(env):
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "0",
                             "max_db_connections": "2"},
                   databases={"app": "host=127.0.0.1 port=PGPORT dbname=app"}, fresh=True)
    cap_test(env, s, [dict(user="app"), dict(user="app")], dict(user="md5user"),
             "datname = 'app' AND usename IN ('app', 'md5user')")
    env.drop_sluice()


@test("server.max_user_connections_makes_clients_wait")
def t_max_user(env):
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "0",
                             "max_user_connections": "2"},
                   databases={"app2": "host=127.0.0.1 port=PGPORT dbname=app"}, fresh=True)
    cap_test(env, s, [dict(dbname="app"), dict(dbname="app2")], dict(dbname="app"),
             "usename = 'app'")
    env.drop_sluice()


@test("server.connect_query_runs_once_per_server")
def t_connect_query(env):
    env.pg.query("CREATE TABLE IF NOT EXISTS cq_log (pid int)", dbname="app")
    env.pg.query("GRANT ALL ON cq_log TO app", dbname="app")
    env.pg.query("TRUNCATE cq_log", dbname="app")
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "3",
                             "min_pool_size": "0"},
                   databases={"app": "host=127.0.0.1 port=PGPORT dbname=app "
                                     "connect_query='insert into cq_log values "
                                     "(pg_backend_pid())'"}, fresh=True)
    pids = set()
    lock = threading.Lock()

    def client(i):
        c = s.connect()
        cur = c.cursor()
        for _ in range(10):
            cur.execute("SELECT pg_backend_pid(), pg_sleep(0.01)")
            with lock:
                pids.add(cur.fetchone()[0])
        c.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    rows = env.pg.query("SELECT pid, count(*) FROM cq_log GROUP BY pid", dbname="app")
    logged = {r[0]: r[1] for r in rows}
    check(pids and pids <= set(logged), f"servers {pids - set(logged)} served clients "
          "without running connect_query")
    check(all(n == 1 for n in logged.values()), f"connect_query ran more than once: {logged}")
    env.drop_sluice()


@test("server.failing_connect_query_closes_server_with_log_line")
def t_connect_query_fails(env):
    s = env.sluice(settings={"min_pool_size": "0"},
                   databases={"app": "host=127.0.0.1 port=PGPORT dbname=app "
                                     "connect_query='select 1/0'"}, fresh=True)
    try:
        s.connect().close()
        check(False, "a client got a server whose connect_query failed")
    except psycopg2.OperationalError as e:
        check("08006" in str(e) or "division by zero" in str(e), f"unclear error: {e}")
    check(wait_until(lambda: "division by zero" in s.log_tail(50), 3),
          f"no log line names the connect_query error:\n{s.log_tail()}")
    check(env.backends() == 0 or wait_until(lambda: env.backends() == 0, 3),
          "the server whose connect_query failed stayed open")
    env.drop_sluice()


# ---- non-blocking host name resolution -------------------------------------------

@test("server.host_name_resolves")
def t_host_name(env):
    s = env.sluice(databases={"app": "host=localhost port=PGPORT dbname=app"}, fresh=True)
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone()[0] == 1, "query through a host name")
    c.close()
    env.drop_sluice()


@test("server.unresolvable_host_gives_08006")
def t_bad_host(env):
    s = env.sluice(settings={"min_pool_size": "0"},
                   databases={"app": "host=no-such-host.invalid port=PGPORT dbname=app"},
                   fresh=True)
    try:
        login_wire("127.0.0.1", s.port, "app", "app", PASSWORDS["app"]).close()
        check(False, "login succeeded with an unresolvable host")
    except PgError as e:
        check(e.code == "08006", f"SQLSTATE {e.code}: {e}")
        check("no-such-host.invalid" in str(e) and "resolve" in str(e),
              f"the error does not give the resolver's answer: {e}")
    env.drop_sluice()

