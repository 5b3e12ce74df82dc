"""Login hardening: what a client can do before it has proved who it is."""
import hashlib
import os
import socket
import ssl
import struct
import time

from harness import (error_or_close, under_asan, GSSENC_REQUEST, SSL_REQUEST, Closed, PgError, Wire, check, login_wire,
                     parse_fields, test)
from test_tls import certs, tls_settings


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


@test("login.plain_refuses_the_stored_hash")
def t_plain_hash(env):
    """auth_type = plain compares a cleartext password as a password: the
    md5 hash stored in auth_file is not a password."""
    stored = md5_secret("md5user", "md5pw")
    s = env.sluice(settings={"auth_type": "plain"}, userlist={"md5user": stored})
    w = login_wire("127.0.0.1", s.port, "md5user", "app", "md5pw")
    check(w.query("SELECT current_user") == [["md5user"]], "right password")
    w.close()
    try:
        w = login_wire("127.0.0.1", s.port, "md5user", "app", stored)
    except PgError as e:
        check(e.code == "28P01", f"stored hash as password: {e.code}")
    else:
        w.close()
        raise AssertionError("the stored md5 hash was accepted as the password")
    # a plaintext secret compares as a password too
    s2 = env.sluice(settings={"auth_type": "plain"})
    w = login_wire("127.0.0.1", s2.port, "app", "app", "app")
    check(w.query("SELECT 1") == [["1"]], "plaintext secret, right password")
    w.close()
    for bad in ("ap", "app ", md5_secret("app", "app")):
        try:
            login_wire("127.0.0.1", s2.port, "app", "app", bad).close()
            raise AssertionError(f"wrong password {bad!r} accepted")
        except PgError as e:
            check(e.code == "28P01", f"wrong password {bad!r}: {e.code}")


def second_request_refused(w, req):
    w.send(struct.pack("!II", 8, req))
    what, f = error_or_close(w)
    check(what == "E", f"second negotiation request: {what}")
    check(f.get("C") == "0A000" and f.get("S") == "FATAL", f"second request: {f}")
    check(f.get("M", "").startswith("unsupported frontend protocol 1234.56"), f"message: {f}")


@test("login.one_negotiation_of_each_kind")
def t_second_ssl(env):
    """As PostgreSQL: a second SSLRequest (or GSSENCRequest) on a connection
    is read as a protocol version and refused."""
    s = env.sluice()
    for req in (SSL_REQUEST, GSSENC_REQUEST):
        w = Wire("127.0.0.1", s.port)
        w.send(struct.pack("!II", 8, req))
        check(w.read_byte() == b"N", "first request answered N")
        second_request_refused(w, req)
        w.close()
    # after GSSENC 'N' an SSLRequest is still allowed, and the login goes on
    w = Wire("127.0.0.1", s.port)
    w.send(struct.pack("!II", 8, GSSENC_REQUEST))
    check(w.read_byte() == b"N", "GSSENC answered N")
    w.send(struct.pack("!II", 8, SSL_REQUEST))
    check(w.read_byte() == b"N", "SSLRequest after GSSENC answered N")
    w.user_for_md5 = "app"
    w.login("app", "app", "app")
    check(w.query("SELECT 2") == [["2"]], "login after both requests")
    w.close()

    # inside TLS, a second SSLRequest
    c = certs(env)
    st = env.sluice(settings=tls_settings(c, mode="prefer"))
    raw = socket.create_connection(("127.0.0.1", st.port), timeout=10)
    raw.sendall(struct.pack("!II", 8, SSL_REQUEST))
    check(raw.recv(1) == b"S", "TLS offered")
    ctx = ssl.create_default_context(cafile=c["ca"])
    ctx.check_hostname = False
    tls = ctx.wrap_socket(raw)
    tw = Wire.__new__(Wire)
    tw.sock, tw.buf, tw.trickle = tls, b"", False
    tw.params, tw.backend_key, tw.status, tw.auth_codes = {}, None, None, []
    second_request_refused(tw, SSL_REQUEST)
    tls.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_reply(port, packet):
    """Send a startup packet; the message types up to EOF, and the error fields."""
    w = Wire("127.0.0.1", port)
    w.send(packet)
    w.settimeout(5)
    types, err = [], None
    try:
        while True:
            t, p = w.read_msg()
            types.append(t)
            if t == b"v":
                types.append(p)
            if t == b"E":
                err = parse_fields(p)
                break
            if t == b"R" or t == b"Z":
                break
    except (Closed, ConnectionResetError):
        pass
    w.close()
    return types, err


@test("login.protocol_3_minor_versions")
def t_protocol_minor(env):
    """Protocol 3.x with x != 0 is accepted as PostgreSQL accepts it: a
    NegotiateProtocolVersion naming 3.0 and the unknown _pq_ options, then
    the login goes on. The 8-byte packet 3.1 without a user once crashed
    sluice; PostgreSQL answers it with NegotiateProtocolVersion and 28000."""
    s = env.sluice()
    bare = struct.pack("!II", 8, (3 << 16) | 1)
    nouser = struct.pack("!II", 9, (3 << 16) | 1) + b"\0"
    for pkt, what in ((bare, "3.1 without a terminator"), (nouser, "3.1 without a user")):
        want_types, want_err = first_reply(env.pg.port, pkt)
        got_types, got_err = first_reply(s.port, pkt)
        check(want_err is not None, f"PostgreSQL accepted {what}")
        check(got_err is not None and got_err.get("C") == want_err.get("C"),
              f"{what}: sluice {got_types} {got_err}, PostgreSQL {want_types} {want_err}")
        check(got_types == want_types, f"{what}: sluice {got_types}, PostgreSQL {want_types}")
        check(s.alive(), f"sluice died on {what}")

    def packet(minor, params):
        body = struct.pack("!I", (3 << 16) | minor)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        return struct.pack("!I", len(body) + 4) + body

    # a 3.2 login with an unknown protocol option, through sluice and direct
    params = {"user": "app", "database": "app", "_pq_.no_such_option": "1"}
    want, err = first_reply(env.pg.port, packet(2, params))
    check(err is None and want[0] == b"v", f"PostgreSQL: 3.2 login {want} {err}")
    check(want[1] == struct.pack("!II", 3 << 16, 1) + b"_pq_.no_such_option\0",
          f"PostgreSQL's negotiate body {want[1]!r}")
    got, err = first_reply(s.port, packet(2, params))
    check(err is None, f"sluice: 3.2 login failed: {err}")
    check(got[:2] == want[:2], f"sluice: 3.2 login starts {got}, PostgreSQL {want}")
    w = Wire("127.0.0.1", s.port)
    w.user_for_md5 = "app"
    w.send(packet(2, params))
    t, p = w.read_msg()
    check(t == b"v", f"first message {t!r}")
    w.finish_login("app")
    check(w.query("SELECT 3") == [["3"]], "query after a 3.2 login")
    w.close()
    check(s.alive(), "sluice alive after 3.x logins")


@test("login.unknown_users_cost_nothing", timeout=120)
def t_unknown_users(env):
    """SCRAM logins of users that are not in auth_file: no key derivation and
    no memory kept per name, and a salt that is the same at each attempt (as
    a real user's is), so the exchange tells nothing of who exists."""
    s = env.sluice(settings={"auth_type": "scram-sha-256"})

    def server_first(user):
        w = Wire("127.0.0.1", s.port)
        w.startup({"user": user, "database": "app"})
        t, p = w.read_msg()
        check(t == b"R" and struct.unpack("!I", p[:4])[0] == 10, f"{user[:20]}: SASL asked")
        first = b"n,,n=,r=abcdefghijklmnopqrstuvwx"
        w.send(b"p" + struct.pack("!I", 4 + len(b"SCRAM-SHA-256\0") + 4 + len(first))
               + b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
        t, p = w.read_msg()
        check(t == b"R" and struct.unpack("!I", p[:4])[0] == 11,
              f"{user[:20]}: SASLContinue expected, got {t!r} {p[:40]!r}")
        attrs = dict(kv.split("=", 1) for kv in p[4:].decode().split(","))
        w.close()
        return attrs

    real = [server_first("app") for _ in range(2)]
    ghost = [server_first("nobody_here") for _ in range(2)]
    check(real[0]["s"] == real[1]["s"], "a real user's salt is stable")
    check(ghost[0]["s"] == ghost[1]["s"], "an unknown user's salt is stable too")
    check(ghost[0]["s"] != server_first("nobody_else")["s"], "salts differ per name")
    check(len(ghost[0]["s"]) == len(real[0]["s"]) and ghost[0]["i"] == real[0]["i"],
          f"unknown user's salt/iterations look like a real one: {ghost[0]} {real[0]}")

    pid = s.proc.pid
    # warm up allocator pools, then many attempts with fresh long names
    for i in range(50):
        server_first(f"warm{i}")
    rss0, cpu0 = rss_kb(pid), cpu_seconds(pid)
    n = 1000
    for i in range(n):
        server_first(f"u{i:05d}" + "x" * 8000)
    grown = rss_kb(pid) - rss0
    cpu = cpu_seconds(pid) - cpu0
    # a cache entry per name would keep > 8 MB here; one key derivation
    # (4096 rounds of HMAC-SHA-256) costs a few ms of CPU each
    if not under_asan(s):
        check(grown < 4096, f"RSS grew {grown} kB over {n} unknown users")
        check(cpu < n * 0.0008, f"sluice used {cpu:.2f} s of CPU for {n} unknown-user logins")
    w = login_wire("127.0.0.1", s.port, "app", "app", "app")
    check(w.query("SELECT 4") == [["4"]], "a real login still works")
    w.close()


@test("login.listen_on_every_address")
def t_listen_all(env):
    """listen_addr = * serves IPv4 and IPv6; a list binds each address."""
    s = env.sluice(settings={"listen_addr": "*"})
    for host in ("127.0.0.1", "::1"):
        try:
            sock = socket.create_connection((host, s.port), timeout=5)
        except OSError as e:
            if host == "::1" and not socket.has_ipv6:
                continue
            raise AssertionError(f"listen_addr = *: cannot connect to {host}: {e}")
        sock.close()
    conn = psycopg2_connect(s, "::1")
    cur = conn.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "query over IPv6")
    conn.close()
    s2 = env.sluice(settings={"listen_addr": "127.0.0.1, ::1"})
    for host in ("127.0.0.1", "::1"):
        socket.create_connection((host, s2.port), timeout=5).close()


def psycopg2_connect(s, host):
    import psycopg2
    return psycopg2.connect(host=host, port=s.port, user="app", password="app", dbname="app")


@test("login.names_escaped_in_log_lines")
def t_log_escape(env):
    """A user or database name holding a newline cannot forge a log line."""
    s = env.sluice(settings={"verbose": "1"})
    forged = "x\n2026-01-01 00:00:00.000 UTC [1] LOG forged line"
    for params in ({"user": forged, "database": "app"}, {"user": "app", "database": forged}):
        w = Wire("127.0.0.1", s.port)
        w.startup(params)
        error_or_close(w)
        w.close()
    with open(s.log) as f:
        log = f.read()
    check("LOG forged line" in log, "the name appears in the log at all (escaped)")
    for line in log.splitlines():
        check(not line.startswith("2026-01-01 00:00:00.000"), f"forged log line: {line!r}")
    check("x\\x0a2026" in log, "newline written as \\x0a")


@test("login.stalled_logins_are_capped")
def t_login_cap(env):
    """Connections that never finish logging in take at most
    max_login_clients; more get 53300 at once, logged-in clients go on, and
    logins work again once the stalled ones are gone."""
    s = env.sluice(settings={"max_client_conn": "50", "max_login_clients": "3"})
    keeper = login_wire("127.0.0.1", s.port, "app", "app", "app")
    stalled = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(3)]
    time.sleep(0.2)
    for _ in range(5):
        w = Wire("127.0.0.1", s.port)
        what, f = error_or_close(w)
        check(what == "E" and f.get("C") == "53300" and "max_login_clients" in f.get("M", ""),
              f"connection beyond max_login_clients: {what} {f}")
        w.close()
    check(keeper.query("SELECT 5") == [["5"]], "a logged-in client goes on")
    for sock in stalled:
        sock.close()
    ok = False
    for _ in range(50):
        try:
            w = login_wire("127.0.0.1", s.port, "app", "app", "app")
        except PgError:
            time.sleep(0.05)
            continue
        ok = w.query("SELECT 6") == [["6"]]
        w.close()
        break
    check(ok, "a login works once the stalled connections are gone")
    keeper.close()
