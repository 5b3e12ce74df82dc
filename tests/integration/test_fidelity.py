"""Fidelity: what real clients found sluice doing differently from a direct
PostgreSQL connection (issue 12, item 2), each checked against PostgreSQL
itself where it can be."""
import socket
import struct
import time

import psycopg2

from harness import (PgError, check, login_wire, m_query, parse_fields, send_cancel, test,
                     wait_until)

# "IX-" then U+2168 ROMAN NUMERAL NINE, which SASLprep (NFKC) makes "IX-IX"
SASLPREP_PW = "IX-\u2168"


def ensure_role(env, role, password):
    """A login role made directly in PostgreSQL (which SASLprep's the
    password itself before storing its SCRAM keys)."""
    c = env.pg.connect()
    cur = c.cursor()
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if not cur.fetchall():
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    c.close()


@test("fidelity.saslprep_plaintext_password")
def t_saslprep(env):
    """A plaintext password with a non-ASCII character in auth_file logs in
    by SCRAM both ways: libpq SASLprep's it on the client side and
    PostgreSQL stored it SASLprep'd, so sluice must prepare it too, for the
    keys it checks the client against and for those it logs in with."""
    ensure_role(env, "saslprep", SASLPREP_PW)
    # sanity: PostgreSQL itself takes it over TCP (SCRAM, host rule)
    d = psycopg2.connect(host="127.0.0.1", port=env.pg.port, user="saslprep",
                         dbname="app", password=SASLPREP_PW, connect_timeout=10)
    d.close()
    s = env.sluice(settings={"auth_type": "scram-sha-256", "min_pool_size": "0"},
                   userlist={"saslprep": SASLPREP_PW})
    c = s.connect(user="saslprep", password=SASLPREP_PW)
    cur = c.cursor()
    cur.execute("SELECT current_user")
    check(cur.fetchone()[0] == "saslprep", "logged in through sluice")
    c.close()
    # the prepared form is the password itself, for SCRAM
    c = s.connect(user="saslprep", password="IX-IX")
    c.close()
    try:
        s.connect(user="saslprep", password="IX-X").close()
        raise AssertionError("a wrong password was accepted")
    except psycopg2.OperationalError as e:
        check("password authentication failed" in str(e), f"wrong password: {e}")


@test("fidelity.saslprep_towards_postgresql")
def t_saslprep_server(env):
    """The server side alone: with auth_type = plain the client's password
    is compared as it is, and only sluice's SCRAM login to PostgreSQL
    needs the prepared password."""
    ensure_role(env, "saslprep", SASLPREP_PW)
    s = env.sluice(settings={"auth_type": "plain", "min_pool_size": "0"},
                   userlist={"saslprep": SASLPREP_PW})
    c = s.connect(user="saslprep", password=SASLPREP_PW)
    cur = c.cursor()
    cur.execute("SELECT current_user")
    check(cur.fetchone()[0] == "saslprep", "server login with the prepared password")
    c.close()


def answer_to(port, data, half_close=True):
    """Connect, send <data>, optionally close our side for writing, and
    return every byte the peer sends before it closes (None if it keeps
    the connection open for 5 s)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if data:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        got = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return got
            except socket.timeout:
                return None
            if not chunk:
                return got
            got += chunk
    finally:
        sock.close()


# what a client may send before (or instead of) a startup packet and then
# close: PostgreSQL answers none of these, it just closes
BEFORE_STARTUP = [
    ("connect and close", b"", True),
    ("Terminate and close", b"X\x00\x00\x00\x04", True),
    ("Terminate, left open", b"X\x00\x00\x00\x04", False),
    ("two bytes and close", b"\x00\x00", True),
    ("a length and part of a packet, then close", b"\x00\x00\x00\x10\x00\x03", True),
    # an impossible length: PostgreSQL logs it and closes, telling nothing
    ("length 3", b"\x00\x00\x00\x03", False),
    ("length 100 MB", struct.pack("!II", 100 << 20, 196608), False),
]


@test("fidelity.close_before_startup_is_silent")
def t_close_before_startup(env):
    """A client that sends Terminate or closes before its startup packet
    gets no bytes back, as from PostgreSQL (node-postgres throws on the
    08P01 error sluice used to send)."""
    s = env.sluice()
    wrong = []
    for name, data, half in BEFORE_STARTUP:
        want = answer_to(env.pg.port, data, half)
        got = answer_to(s.port, data, half)
        if want != b"" or got != want:
            wrong.append(f"{name}: sluice answers {got!r}, PostgreSQL {want!r}")
    check(not wrong, "; ".join(wrong))
    # and sluice still serves
    w = s.wire()
    check(w.query("SELECT 1") == [["1"]], "a login after them")
    w.close()


def show_and_status(s, user, password):
    """Log in over the wire: (IntervalStyle in the welcome's ParameterStatus,
    SHOW intervalstyle)."""
    w = login_wire("127.0.0.1", s.port, user, "app", password)
    try:
        return w.params.get("IntervalStyle"), w.query("SHOW intervalstyle")[0][0]
    finally:
        w.close()


@test("fidelity.alter_role_set_reaches_new_sessions", timeout=90)
def t_alter_role_set(env):
    """sluice used to tell every client, and SET on every server, the values
    of the pool's first server login, so an ALTER ROLE ... SET made later
    stayed hidden until sluice restarted. Once servers have logged in again
    (here: their backends terminated, min_pool_size opens new ones), a new
    client sees what PostgreSQL reports for a new session, in its
    ParameterStatus and in SHOW, in both pool modes; and a client that SET
    the parameter itself does not pass it on."""
    role = "fidvars"
    ensure_role(env, role, role)
    try:
        for mode in ("session", "transaction"):
            env.pg.query(f"ALTER ROLE {role} RESET intervalstyle")
            s = env.sluice(settings={"pool_mode": mode, "min_pool_size": "1",
                                     "default_pool_size": "1"},
                           userlist={role: role}, fresh=True)
            check(show_and_status(s, role, role) == ("postgres", "postgres"),
                  f"{mode}: before ALTER ROLE")
            env.pg.query(f"ALTER ROLE {role} SET intervalstyle = 'postgres_verbose'")
            env.pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = %s AND backend_type = 'client backend'", (role,))
            # the server logs in again with the new default
            check(env.wait_backends(lambda n: n == 0, 10, user=role) is not None,
                  f"{mode}: old backends gone")
            check(env.wait_backends(lambda n: n >= 1, 10, user=role) is not None,
                  f"{mode}: min_pool_size opened a new server")
            time.sleep(0.3)
            got = show_and_status(s, role, role)
            check(got == ("postgres_verbose", "postgres_verbose"),
                  f"{mode}: after ALTER ROLE and new server logins: {got}")
            # a client's own SET stays its own: the next client, on the same
            # (only) server, has the session default again
            w = login_wire("127.0.0.1", s.port, role, "app", role)
            w.query("SET intervalstyle = 'iso_8601'")
            check(w.query("SHOW intervalstyle") == [["iso_8601"]], f"{mode}: own SET")
            w.close()
            got = show_and_status(s, role, role)
            check(got == ("postgres_verbose", "postgres_verbose"),
                  f"{mode}: after another client's SET: {got}")
            env.drop_sluice()
    finally:
        env.pg.query(f"ALTER ROLE {role} RESET intervalstyle")


@test("fidelity.unknown_database_through_star", timeout=60)
def t_unknown_database(env):
    """A database that PostgreSQL does not have, reached through the "*"
    entry: the client gets PostgreSQL's own error (FATAL 3D000 and its
    message, as a direct connection does), sluice stops logging in for it,
    and its pool goes at once, not after autodb_idle_timeout."""
    from test_server import admin_rows, pg_log_since

    name = "fid_nosuch"
    try:
        login_wire("127.0.0.1", env.pg.port, "app", name, "app").close()
        raise AssertionError("PostgreSQL has the database (test assumption)")
    except PgError as e:
        want = e.fields
    s = env.sluice(settings={"min_pool_size": "2", "server_login_retry": "1"},
                   databases={"*": "host=127.0.0.1 port=PGPORT"}, fresh=True)
    for i in range(3):
        try:
            s.wire(dbname=name).close()
            raise AssertionError("a login to a missing database succeeded")
        except PgError as e:
            got = e.fields
        for f in ("S", "C", "M"):
            check(got.get(f) == want.get(f),
                  f"client {i}: field {f} is {got.get(f)!r}, PostgreSQL says {want.get(f)!r}")
    time.sleep(0.5)
    before = pg_log_since(env, 0).count(f'database "{name}"')
    gone = wait_until(lambda: not [r for r in admin_rows(s, "SHOW POOLS")
                                   if r["database"] == name], 5)
    check(gone, "the pool of a missing database is still listed")
    time.sleep(2)
    after = pg_log_since(env, 0).count(f'database "{name}"')
    check(after == before, f"sluice kept logging in to the missing database: {after - before} "
          "more attempts")
    env.drop_sluice()


@test("fidelity.session_mode_backend_pid", timeout=60)
def t_backend_pid(env):
    """In session mode the BackendKeyData pid is the real backend pid of
    the client's server: pg_backend_pid() and the pid of a notification
    agree with it. The key stays sluice's, so a cancel still goes through
    sluice and reaches the right query."""
    s = env.sluice(settings={"pool_mode": "session"})
    a, b = s.wire(), s.wire()
    try:
        for w in (a, b):
            pid = int(w.query("SELECT pg_backend_pid()")[0][0])
            check(w.backend_key[0] == pid,
                  f"BackendKeyData pid {w.backend_key[0]}, pg_backend_pid() {pid}")
        check(a.backend_key[0] != b.backend_key[0], "two clients, one pid")
        # the key is not PostgreSQL's: sluice's own secret
        be_keys = env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                               (a.backend_key[0],))[0][0]
        check(be_keys == 1, "the pid is a live backend")
        a.query("LISTEN fid_chan")
        b.query("NOTIFY fid_chan, 'hi'")
        a.send(m_query("SELECT 1"))
        msgs = a.collect()
        notes = [p for t, p in msgs if t == b"A"]
        check(notes, f"no notification: {[t for t, _ in msgs]}")
        sender = struct.unpack("!I", notes[0][:4])[0]
        check(sender == b.backend_key[0],
              f"notification from pid {sender}, sender was told {b.backend_key[0]}")
        # a cancel with what the client was told stops its query
        a.send(m_query("SELECT pg_sleep(20)"))
        time.sleep(0.3)
        send_cancel("127.0.0.1", s.port, a.backend_key)
        errs = [parse_fields(p).get("C") for t, p in a.collect() if t == b"E"]
        check(errs == ["57014"], f"cancel: errors {errs}")
        # a forged key with the right pid does nothing
        b.send(m_query("SELECT pg_sleep(1)"))
        time.sleep(0.2)
        send_cancel("127.0.0.1", s.port, (b.backend_key[0], b.backend_key[1] ^ 1))
        errs = [parse_fields(p).get("C") for t, p in b.collect() if t == b"E"]
        check(errs == [], f"a forged cancel stopped the query: {errs}")
    finally:
        a.close()
        b.close()


@test("fidelity.session_mode_login_waits_for_a_server", timeout=60)
def t_login_waits(env):
    """Taking the server at login means a session-mode client beyond the
    pool's size finishes its login when a server is free."""
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "1",
                             "min_pool_size": "0"}, fresh=True)
    a = s.wire()
    got = {}

    def second():
        w = s.wire()
        got["pid"] = w.backend_key[0]
        got["real"] = int(w.query("SELECT pg_backend_pid()")[0][0])
        w.close()

    import threading
    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)
    check("pid" not in got, "a second login got a server while the only one was taken")
    a_pid = a.backend_key[0]
    a.close()
    t.join(15)
    check(got.get("pid") == got.get("real"), f"second client: {got}")
    check(got.get("pid") == a_pid, "the server was not reused")
    env.drop_sluice()
