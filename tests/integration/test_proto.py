"""Startup packets of protocol 3.x (x != 0) through the real proxy.

The 8-byte packet 00 00 00 08 00 03 00 01 (3.1, nothing after the code)
used to kill sluice with SIGSEGV before any login; PostgreSQL answers it
with FATAL 08P01 and stays up. A well-formed 3.2 startup (as libpq 18 sends
with max_protocol_version=3.2) must log in as under 3.0; if a
NegotiateProtocolVersion comes first, it must say 3.0 and name the _pq_
options asked for, as PostgreSQL 15 does.
"""
import struct

from harness import (PASSWORDS, Closed, PgError, Wire, check, parse_fields, startup_packet,
                     test)


def first_error(w):
    """The SQLSTATE of the first ErrorResponse, or why there was none."""
    try:
        while True:
            t, p = w.read_msg()
            if t == b"E":
                return parse_fields(p).get("C")
    except (Closed, ConnectionResetError):
        return "closed"


@test("proto.v3_1_empty_startup_is_an_error_not_a_crash")
def t_v3_1_empty(env):
    s = env.sluice()
    keeper = s.connect()
    for _ in range(3):
        w = Wire("127.0.0.1", s.port)
        w.send(bytes([0, 0, 0, 8, 0, 3, 0, 1]))
        code = first_error(w)
        check(code == "08P01", f"3.1 without parameters: {code}")
        w.close()
    check(s.alive(), "sluice died on a 3.1 startup packet")
    cur = keeper.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "other client broken after 3.1 packets")


@test("proto.v3_2_startup_logs_in")
def t_v3_2_login(env):
    s = env.sluice()
    w = Wire("127.0.0.1", s.port)
    w.user_for_md5 = "app"
    w.send(startup_packet({"user": "app", "database": "app", "_pq_.sluice_test": "1"},
                          version=(3 << 16) | 2))
    t, p = w.read_msg()
    if t == b"v":
        newest, n = struct.unpack("!II", p[:8])
        names = [x.decode() for x in p[8:].split(b"\0")[:n]]
        check(newest == 3 << 16, f"NegotiateProtocolVersion offers {newest:#x}")
        check(names == ["_pq_.sluice_test"], f"unrecognised options {names}")
    else:
        w.buf = t + struct.pack("!I", len(p) + 4) + p + w.buf  # not ours: give it back
    try:
        w.finish_login(PASSWORDS.get("app", ""))
    except PgError as e:
        check(False, f"3.2 login refused: {e}")
    check(w.query("SELECT 32") == [["32"]], "query after a 3.2 login")
    w.close()
    check(s.alive(), "sluice died on a 3.2 startup")
