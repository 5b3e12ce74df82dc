"""Session-mode tests, authentication, signals, configuration, admin console."""
import hashlib
import os
import signal
import socket
import struct
import subprocess
import time

import psycopg2

from harness import (error_or_close, GSSENC_REQUEST, PROTOCOL_3, SSL_REQUEST, Closed, PgError, M_SYNC,
                     TestFailure, Wire, check, cancel_reaches_own_query, free_port,
                     killed_client_releases_locks, login_wire, m_bind, m_execute, m_parse,
                     m_query, parse_datarow, parse_fields, pgbench, pgbench_stats,
                     run_threads, run_with_deadline, BackendSampler, sqlstate_of_connect,
                     test, wait_port, wait_until)


def psql_one(s, sql, **kw):
    r = s.psql("-Atc", sql, **kw)
    check(r.returncode == 0, f"psql exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout.strip()


def wire_codes(s, user, password, dbname="app"):
    w = login_wire("127.0.0.1", s.port, user, dbname, password)
    rows = w.query("SELECT current_user")
    w.close()
    return w.auth_codes, rows


# ---------------------------------------------------------------- auth

@test("session.auth_scram")
def t_auth_scram(env):
    s = env.sluice()
    check(psql_one(s, "select 1") == "1", "select 1 through sluice")
    codes, rows = wire_codes(s, "app", "app")
    check(10 in codes, f"expected a SASL request, got auth codes {codes}")
    check(rows == [["app"]], f"current_user {rows}")
    r = s.psql("-Atc", "select 1", password="wrong")
    check(r.returncode != 0, "wrong password accepted")

    verifier = env.pg.rolpassword("app")
    check(verifier.startswith("SCRAM-SHA-256$"), f"pg_authid holds {verifier[:20]}")
    s2 = env.sluice(userlist={"app": verifier})
    check(psql_one(s2, "select current_user, 1") == "app|1",
          "select through sluice with a SCRAM verifier in the auth file")
    codes, rows = wire_codes(s2, "app", "app")
    check(10 in codes and rows == [["app"]], f"raw SCRAM login: {codes} {rows}")
    r = s2.psql("-Atc", "select 1", password="wrong")
    check(r.returncode != 0, "wrong password accepted with a SCRAM verifier")


@test("session.auth_md5")
def t_auth_md5(env):
    s = env.sluice(settings={"auth_type": "md5"})
    check(psql_one(s, "select current_user", user="md5user") == "md5user", "md5user login")
    codes, rows = wire_codes(s, "md5user", "md5pw")
    check(5 in codes, f"expected an MD5 request, got {codes}")
    check(rows == [["md5user"]], f"current_user {rows}")
    check(psql_one(s, "select 1") == "1", "app login with auth_type=md5")
    check(sqlstate_of_connect(lambda: wire_codes(s, "md5user", "nope")) == "28P01",
          "wrong md5 password must give 28P01")
    # an md5 hash in the auth file is enough for both sides
    h = "md5" + hashlib.md5(b"md5pw" + b"md5user").hexdigest()
    s2 = env.sluice(settings={"auth_type": "md5"}, userlist={"md5user": h})
    check(psql_one(s2, "select current_user", user="md5user") == "md5user",
          "login with an md5 secret in the auth file")
    codes, _ = wire_codes(s2, "md5user", "md5pw")
    check(5 in codes, f"expected an MD5 request, got {codes}")


@test("session.auth_trust")
def t_auth_trust(env):
    s = env.sluice(settings={"auth_type": "trust"})
    check(psql_one(s, "select current_user", password="") == "app", "trust login")
    codes, rows = wire_codes(s, "app", "")
    check(codes == [0], f"trust must not ask for a password, got auth codes {codes}")
    check(rows == [["app"]], f"current_user {rows}")


@test("session.auth_plain")
def t_auth_plain(env):
    s = env.sluice(settings={"auth_type": "plain"})
    check(psql_one(s, "select 1") == "1", "plain login")
    codes, rows = wire_codes(s, "app", "app")
    check(3 in codes, f"expected a cleartext request, got {codes}")
    check(sqlstate_of_connect(lambda: wire_codes(s, "app", "bad")) == "28P01",
          "wrong password must give 28P01")


@test("session.auth_errors")
def t_auth_errors(env):
    s = env.sluice()
    code = sqlstate_of_connect(lambda: s.wire(password="wrong"))
    check(code == "28P01", f"wrong password: SQLSTATE {code}")
    try:
        s.connect(password="wrong").close()
        raise TestFailure("psycopg2 logged in with a wrong password")
    except psycopg2.OperationalError as e:
        check("password" in str(e) or "authentication" in str(e),
              f"unclear message: {e}")
    code = sqlstate_of_connect(lambda: s.wire(user="nosuchuser", password="x"))
    check(code == "28P01", f"unknown user: SQLSTATE {code}")
    code = sqlstate_of_connect(lambda: s.wire(dbname="nosuchdb"))
    check(code == "3D000", f"unknown database: SQLSTATE {code}")
    r = s.psql("-Atc", "select 1", password="wrong")
    check(r.returncode != 0, "psql logged in with a wrong password")
    check(psql_one(s, "select 1") == "1", "a good login still works")


# ---------------------------------------------------------------- load

@test("session.pgbench", timeout=120)
def t_pgbench(env):
    s = env.sluice()
    r = pgbench(s, "-i", "-q", "-s", "1")
    check(r.returncode == 0, f"pgbench -i failed:\n{r.stdout[-2000:]}")
    env.pgbench_ready = True
    r = pgbench(s, "-c", "20", "-j", "2", "-T", "5")
    check(r.returncode == 0, f"pgbench exit {r.returncode}:\n{r.stdout[-2000:]}")
    tps, failed = pgbench_stats(r.stdout)
    check(failed == 0, f"{failed} failed transactions")
    check(tps > 0, f"tps {tps}:\n{r.stdout[-1000:]}")
    n = env.pg.query("SELECT count(*) FROM pgbench_history", dbname="app")[0][0]
    check(n > 0, "no transactions reached PostgreSQL")


@test("session.200_clients_pool_50", timeout=120)
def t_200_clients(env):
    s = env.sluice()

    def client(i):
        c = s.connect()
        cur = c.cursor()
        for _ in range(3):
            cur.execute("SELECT pg_sleep(0.05), %s", (i,))
            check(cur.fetchone()[1] == i, "wrong row")
        c.close()

    with BackendSampler(env) as smp:
        errors = run_threads(200, client)
    check(not errors, f"{len(errors)} clients failed, e.g. {errors[:3]}")
    check(smp.max <= 50, f"{smp.max} server connections for pool_size=50")
    check(smp.max >= 10, f"only {smp.max} server connections used by 200 clients")


@test("session.min_pool_size")
def t_min_pool_size(env):
    env.drop_sluice()
    s = env.sluice(settings={"min_pool_size": "3"})
    c = s.connect()
    c.cursor().execute("SELECT 1")
    n = env.wait_backends(lambda n: n >= 3, 3)
    check(n, f"{env.backends()} server connections 3 s after the first login, "
          "min_pool_size=3")
    c.close()
    time.sleep(1)
    check(3 <= env.backends() <= 50,
          f"{env.backends()} server connections once the client left, min_pool_size=3")


POOL1 = {"app": "host=127.0.0.1 port=PGPORT dbname=app pool_size=1 min_pool_size=1"}


@test("session.server_reset_query")
def t_reset(env):
    """server_reset_query undoes a session's settings and locks, and the
    server goes to the next client; a session that made a temp table leaves
    a temp schema DISCARD ALL does not drop, so its server is replaced
    (issue 12, see test_fidelity_params)."""
    s = env.sluice(databases=POOL1)
    a = s.connect()
    cur = a.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SET application_name = 'x'")
    cur.execute("SET work_mem = '7MB'")
    cur.execute("SELECT pg_advisory_lock(4242)")
    a.close()
    b = s.connect()
    cur = b.cursor()
    cur.execute("SELECT pg_backend_pid(), current_setting('application_name'), "
                "current_setting('work_mem')")
    pid2, appname, work_mem = cur.fetchone()
    check(pid2 == pid, f"pool_size=1 but a new server ({pid} then {pid2})")
    check(appname != "x", "application_name leaked to the next client")
    check(work_mem == "4MB", f"work_mem leaked: {work_mem}")
    n = env.pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]
    check(n == 0, "advisory lock survived the session")
    cur.execute("CREATE TEMP TABLE t_reset (i int)")
    b.close()
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid(), pg_my_temp_schema()::int")
    pid3, temp_schema = cur.fetchone()
    check(pid3 != pid, "a server whose session made a temp table was handed on")
    check(temp_schema == 0, "the next client has a temp schema")
    cur.execute("SELECT count(*) FROM pg_class WHERE relname = 't_reset'")
    check(cur.fetchone()[0] == 0, "temp table survived the session")
    c.close()


@test("session.query_wait_timeout")
def t_query_wait_timeout(env):
    s = env.sluice(databases=POOL1, settings={"query_wait_timeout": "1"})
    a = s.connect(autocommit=False)
    a.cursor().execute("SELECT 1")      # holds the only server
    t0 = time.time()
    code = None
    try:
        w = s.wire()
        w.settimeout(10)
        w.query("SELECT 1")
        w.close()
    except PgError as e:
        code = e.code
    except (Closed, OSError) as e:
        raise TestFailure(f"no error message, connection ended: {e!r}")
    dt = time.time() - t0
    check(code == "57014", f"waiting client got SQLSTATE {code}")
    check(0.8 <= dt <= 3.5, f"error after {dt:.1f}s, query_wait_timeout=1")
    a.rollback()
    a.close()
    c = s.connect()
    c.cursor().execute("SELECT 1")
    c.close()


@test("session.max_client_conn")
def t_max_client_conn(env):
    s = env.sluice(settings={"max_client_conn": "5"})
    conns = []
    for _ in range(5):
        c = s.connect()
        c.cursor().execute("SELECT 1")
        conns.append(c)
    code = sqlstate_of_connect(lambda: s.wire())
    check(code == "53300", f"6th client: SQLSTATE {code}")
    for c in conns:
        c.cursor().execute("SELECT 1")
    conns.pop().close()

    def try_login():
        try:
            w = s.wire()
        except PgError:
            return False
        w.query("SELECT 1")
        w.close()
        return True
    check(wait_until(try_login, 3, 0.2), "no slot freed after a client left")
    for c in conns:
        c.close()


# ---------------------------------------------------------------- bad input

def read_error_or_close(w, timeout=3):
    """Read until an ErrorResponse or EOF; returns ('E', code) or ('closed', None)."""
    what, fields = error_or_close(w, timeout)
    return what, fields.get("C") if fields else None


@test("session.bad_input")
def t_bad_input(env):
    s = env.sluice()
    keeper = s.connect()

    def keeper_ok(step):
        cur = keeper.cursor()
        cur.execute("SELECT 1")
        check(cur.fetchone() == (1,), f"other client broken after {step}")

    # protocol 4.0
    w = Wire("127.0.0.1", s.port)
    w.startup({"user": "app", "database": "app"}, version=4 << 16)
    what, code = read_error_or_close(w)
    check(what == "E" and code == "0A000", f"protocol 4.0: {what} {code}")
    w.close()
    keeper_ok("protocol 4.0")

    # SSLRequest then a normal login on the same socket
    for name, req in (("SSLRequest", SSL_REQUEST), ("GSSENCRequest", GSSENC_REQUEST)):
        w = Wire("127.0.0.1", s.port)
        w.send(struct.pack("!II", 8, req))
        b = w.read_byte()
        check(b == b"N", f"{name}: answer {b!r}")
        w.user_for_md5 = "app"
        w.login("app", "app", "app")
        check(w.query("SELECT 7") == [["7"]], f"query after {name}")
        w.close()
        keeper_ok(name)

    # a message claiming 2 GB after login
    w = s.wire()
    w.send(b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"SELECT 1")
    what, code = read_error_or_close(w)
    check(what == "E" and code in ("54000", "08P01"), f"huge message: {what} {code}")
    check(w.at_eof(3), "connection still open after a huge message")
    w.close()
    keeper_ok("huge message")

    # startup packets with impossible lengths
    for name, data in (("length 4", struct.pack("!I", 4) + b"\xff\xff\xff\xff"),
                       ("length 3", struct.pack("!I", 3)),
                       ("length 100 MB", struct.pack("!II", 100 << 20, PROTOCOL_3))):
        w = Wire("127.0.0.1", s.port)
        w.send(data)
        what, code = read_error_or_close(w)
        check(what == "closed" or (what == "E" and code == "08P01"),
              f"startup {name}: {what} {code}")
        if what == "E":
            check(w.at_eof(3), f"startup {name}: connection left open")
        w.close()
        keeper_ok(f"startup {name}")

    # a regular message type before the startup packet
    w = Wire("127.0.0.1", s.port)
    w.send(m_query("SELECT 1"))
    what, code = read_error_or_close(w)
    check(what == "closed" or (what == "E" and code == "08P01"),
          f"query before startup: {what} {code}")
    w.close()

    # everything one byte at a time
    w = Wire("127.0.0.1", s.port, trickle=True)
    w.user_for_md5 = "app"
    w.login("app", "app", "app")
    check(w.query("SELECT 42") == [["42"]], "simple query sent byte by byte")
    w.send(m_parse("", "SELECT $1::int + 1") + m_bind("", "", ["41"]) + m_execute() + M_SYNC)
    rows = [parse_datarow(p) for t, p in w.collect() if t == b"D"]
    check(rows == [["42"]], f"extended query sent byte by byte: {rows}")
    w.close()
    keeper_ok("byte by byte")
    keeper.close()


# ---------------------------------------------------------------- failures

@test("session.client_killed_mid_query")
def t_killed(env):
    s = env.sluice()
    killed_client_releases_locks(env, s, "it-kill-session")


@test("session.cancel")
def t_cancel(env):
    s = env.sluice()
    cancel_reaches_own_query(env, s)


@test("session.postgres_restart", timeout=90)
def t_pg_restart(env):
    s = env.sluice(fresh=True)
    old = s.connect()
    old.cursor().execute("SELECT 1")
    try:
        env.pg.stop()
        # the connected client learns at once
        t0 = time.time()

        def old_query():
            try:
                old.cursor().execute("SELECT 1")
                return None
            except psycopg2.Error as e:
                return e
        err = run_with_deadline(old_query, 5, "query while PostgreSQL is down")
        check(err is not None, "query succeeded with PostgreSQL down")

        # a new client gets a clear error quickly
        def new_client():
            try:
                w = s.wire()
                w.query("SELECT 1")
                w.close()
                return "success"
            except PgError as e:
                return e.code
            except (Closed, OSError):
                return "closed"
        t0 = time.time()
        res = run_with_deadline(new_client, 5, "new client while PostgreSQL is down")
        check(res in ("08006", "57P01", "08001", "closed"), f"new client got {res}")
        check(time.time() - t0 < 5, "too slow")
    finally:
        if not env.pg.running:
            env.pg.start()
    old.close()

    def works():
        try:
            c = s.connect()
            cur = c.cursor()
            cur.execute("SELECT 1")
            ok = cur.fetchone() == (1,)
            c.close()
            return ok
        except psycopg2.Error:
            return False
    t0 = time.time()
    check(wait_until(works, 6, 0.3), "clients still fail 6 s after PostgreSQL came back")
    check(s.alive(), "sluice died")
    env.drop_sluice()


# ---------------------------------------------------------------- config, signals

@test("session.sighup_reload")
def t_reload(env):
    s = env.sluice(fresh=True)
    a = s.connect()
    cur = a.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    code = sqlstate_of_connect(lambda: s.wire(dbname="app2"))
    check(code == "3D000", f"app2 before reload: {code}")

    s.settings["default_pool_size"] = "10"
    s.databases["app2"] = f"host=127.0.0.1 port={env.pg.port} dbname=postgres"
    s.reload()

    def app2():
        try:
            c = s.connect(dbname="app2")
        except psycopg2.Error:
            return None
        cur = c.cursor()
        cur.execute("SELECT current_database()")
        v = cur.fetchone()[0]
        c.close()
        return v
    v = wait_until(app2, 3, 0.2)
    check(v == "postgres", f"new database entry not reachable after SIGHUP ({v})")
    cur.execute("SELECT pg_backend_pid()")
    check(cur.fetchone()[0] == pid, "the connected client lost its server on reload")
    check(s.alive(), "sluice died on SIGHUP")

    def client(i):
        c = s.connect()
        cur = c.cursor()
        cur.execute("SELECT pg_sleep(0.2)")
        cur.execute("SELECT pg_sleep(0.2)")
        c.close()

    with BackendSampler(env, where="AND datname = 'app'") as smp:
        errors = run_threads(25, client)
    check(not errors, f"clients failed: {errors[:3]}")
    check(smp.max <= 10, f"{smp.max} servers after default_pool_size=10 was loaded")
    check(smp.max >= 5, f"only {smp.max} servers for 25 clients")
    a.close()
    env.drop_sluice()


BASE_CONF = """[databases]
app = host=127.0.0.1 port={pgport} dbname=app

[sluice]
listen_addr = 127.0.0.1
listen_port = {port}
auth_type = scram-sha-256
auth_file = {auth}
pool_mode = session
"""


def run_conf(env, path, wait=10):
    p = subprocess.Popen([env.sluice_bin, path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise TestFailure(f"sluice kept running with {os.path.basename(path)}")
    return p.returncode, err


@test("session.bad_config")
def t_bad_config(env):
    d = os.path.join(env.root, "badconf")
    os.makedirs(d, exist_ok=True)
    auth = os.path.join(d, "userlist.txt")
    with open(auth, "w") as f:
        f.write('"app" "app"\n')
    path = os.path.join(d, "conf.ini")

    def write(extra_line):
        text = BASE_CONF.format(pgport=env.pg.port, port=free_port(), auth=auth)
        lines = text.rstrip("\n").split("\n")
        lines.insert(7, extra_line)        # inside [sluice], line 8
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return 8, int(lines[5].split("=")[1])

    # control: the base file is good
    _, port = write("verbose = 0")
    p = subprocess.Popen([env.sluice_bin, path], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        check(wait_port(port, 10, p), f"sluice did not start with a good file (status {p.poll()})")
        p.send_signal(signal.SIGTERM)
        p.wait(5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()

    for bad in ("bogus_key = 1", "default_pool_size = lots", "pool_mode = sometimes",
                "listen_port = 99999"):
        line, _ = write(bad)
        rc, err = run_conf(env, path)
        check(rc == 2, f"'{bad}': exit status {rc}, stderr {err.strip()[:200]!r}")
        check(f"conf.ini:{line}" in err, f"'{bad}': no conf.ini:{line} in {err.strip()[:300]!r}")
    missing = os.path.join(d, "nonexistent.ini")
    rc, err = run_conf(env, missing)
    check(rc == 2, f"missing file: exit status {rc}")
    check("nonexistent.ini" in err, f"missing file not named: {err.strip()[:200]!r}")


def stop_with(env, sig):
    s = env.sluice(fresh=True)
    c = s.connect()
    c.cursor().execute("SELECT 1")
    check(env.backends() >= 1, "no server connection")
    s.stopped_on_purpose = True
    t0 = time.time()
    s.signal(sig)
    try:
        rc = s.proc.wait(5)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"still running 5 s after {sig.name}")
    check(rc == 0, f"exit status {rc} after {sig.name}")
    try:
        c.cursor().execute("SELECT 1")
        raise TestFailure("client connection still works after sluice exited")
    except psycopg2.Error:
        pass
    c.close()
    check(env.wait_backends(lambda n: n == 0, 3),
          f"{env.backends()} server connections left after exit")
    env.current = None
    return time.time() - t0


@test("session.sigterm_exits_0")
def t_sigterm(env):
    stop_with(env, signal.SIGTERM)


@test("session.sigint_waits_for_the_session_then_exits_0")
def t_sigint(env):
    """SIGINT is PgBouncer's safe shutdown: a session holds its server, so
    sluice serves it to its end, then exits 0 (SIGTERM is the immediate
    stop, above)."""
    s = env.sluice(fresh=True)
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT 1")
    s.stopped_on_purpose = True
    s.signal(signal.SIGINT)
    time.sleep(0.5)
    check(s.proc.poll() is None, "sluice exited on SIGINT while a session was open")
    cur.execute("SELECT 2")
    check(cur.fetchone() == (2,), "the open session stopped working after SIGINT")
    c.close()
    try:
        rc = s.proc.wait(5)
    except subprocess.TimeoutExpired:
        raise TestFailure("still running 5 s after the last session ended")
    check(rc == 0, f"exit status {rc} after SIGINT")
    check(env.wait_backends(lambda n: n == 0, 3),
          f"{env.backends()} server connections left after exit")
    env.current = None


@test("session.admin_console")
def t_admin(env):
    s = env.sluice()
    c = s.connect()
    c.cursor().execute("SELECT 1")
    r = s.psql("-A", "-c", "show pools", user="admin", dbname="sluice")
    check(r.returncode == 0, f"show pools: {r.stderr.strip()}")
    lines = r.stdout.strip().splitlines()
    check(len(lines) >= 2 and "database" in lines[0], f"show pools output: {r.stdout[:300]!r}")
    check(any(ln.startswith("app|") for ln in lines[1:]), f"no pool for app: {r.stdout[:500]!r}")
    for cmd in ("show databases", "show clients", "show servers", "show version"):
        r = s.psql("-A", "-c", cmd, user="admin", dbname="sluice")
        check(r.returncode == 0 and r.stdout.strip(), f"{cmd}: {r.stderr.strip()}")
    r = s.psql("-A", "-c", "show clients", user="admin", dbname="sluice")
    check("app" in r.stdout, f"show clients does not list the app client: {r.stdout[:300]!r}")
    r = s.psql("-A", "-c", "show pools", user="stats", dbname="sluice")
    check(r.returncode == 0 and "database" in r.stdout, f"stats user show pools: {r.stderr}")
    r = s.psql("-A", "-c", "reload", user="stats", dbname="sluice")
    check(r.returncode != 0, "stats user may RELOAD")
    r = s.psql("-Atc", "show pools", user="app", dbname="sluice")
    check(r.returncode != 0, "user app got into the admin console")
    c.cursor().execute("SELECT 1")
    c.close()


@test("session.idle_timeout_and_lifetime_keep_the_minimum", timeout=60)
def t_idle_timeout(env):
    """server_idle_timeout closes surplus idle servers, server_lifetime
    replaces old ones; neither goes below min_pool_size."""
    s = env.sluice(settings={"pool_mode": "transaction", "min_pool_size": "2",
                             "server_idle_timeout": "1", "server_lifetime": "2"}, fresh=True)

    def busy(i):
        c = s.connect()
        c.cursor().execute("SELECT pg_sleep(0.3)")
        c.close()

    errors = run_threads(8, busy)
    check(not errors, f"clients failed: {errors[:3]}")
    check(env.backends() >= 6, f"only {env.backends()} servers for 8 concurrent sleepers")
    pids_before = {r[0] for r in env.pg.query(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'app' "
        "AND backend_type = 'client backend'")}
    check(env.wait_backends(lambda n: n == 2, 6),
          f"{env.backends()} servers after server_idle_timeout=1, min_pool_size=2")
    time.sleep(3.5)  # past server_lifetime: the two kept ones are replaced
    check(env.backends() == 2, f"{env.backends()} servers, min_pool_size=2")
    pids_after = {r[0] for r in env.pg.query(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'app' "
        "AND backend_type = 'client backend'")}
    check(not (pids_after & pids_before),
          f"servers older than server_lifetime=2 were kept: {pids_after & pids_before}")
    c = s.connect()
    c.cursor().execute("SELECT 1")
    c.close()
    env.drop_sluice()


@test("session.password_change_on_reload")
def t_password_change(env):
    """Secrets made from plaintext passwords are kept between logins; a new
    password in auth_file (SIGHUP) replaces the old one at once."""
    s = env.sluice(userlist={"admin": "admin"}, fresh=True)
    for _ in range(2):
        w = s.wire(user="admin", dbname="sluice", password="admin")
        w.close()
    s.userlist["admin"] = "admin-new"
    s.reload()
    time.sleep(0.5)
    code = sqlstate_of_connect(lambda: s.wire(user="admin", dbname="sluice", password="admin"))
    check(code == "28P01", f"old password after reload: {code}")
    w = s.wire(user="admin", dbname="sluice", password="admin-new")
    w.close()
    env.drop_sluice()


@test("session.ignore_startup_parameters")
def t_ignore_startup_parameters(env):
    """In transaction mode (session mode hands every parameter to
    PostgreSQL, see test_fidelity_params) an unknown startup parameter is
    refused with a hint, unless listed in ignore_startup_parameters."""
    s = env.sluice(settings={"pool_mode": "transaction"}, fresh=True)
    w = Wire("127.0.0.1", s.port)
    w.user_for_md5 = "app"
    try:
        w.login("app", "app", "app", extra={"extra_setting": "x"})
        check(False, "unknown startup parameter accepted")
    except PgError as e:
        check(e.code == "08P01" and "ignore_startup_parameters" in str(e.fields),
              f"unclear refusal: {e.fields}")
    finally:
        w.close()
    s = env.sluice(settings={"pool_mode": "transaction",
                             "ignore_startup_parameters": "extra_setting, options"},
                   fresh=True)
    w = Wire("127.0.0.1", s.port)
    w.user_for_md5 = "app"
    w.login("app", "app", "app", extra={"extra_setting": "x"})
    check(w.query("SELECT 1") == [["1"]], "query after an ignored parameter")
    w.close()
    env.drop_sluice()
