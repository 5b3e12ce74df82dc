"""Login hardening: what a client can do before it has proved who it is."""
import hashlib
import socket
import ssl
import struct

from harness import (GSSENC_REQUEST, SSL_REQUEST, Closed, PgError, Wire, check, login_wire,
                     parse_fields, test)
from test_tls import certs, tls_settings


def error_or_close(w, timeout=3):
    """Read until an ErrorResponse or EOF: ('E', fields) or ('closed', None)."""
    w.settimeout(timeout)
    try:
        while True:
            t, p = w.read_msg()
            if t == b"E":
                return "E", parse_fields(p)
    except (Closed, ConnectionResetError):
        return "closed", None
    except socket.timeout:
        return "timeout", None


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
