#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/fuzz_client.c: whole sessions in the
input layout that harness reads (header, server byte stream, operations).

    python3 tests/fuzz/gen_client_seeds.py [DIR]   (default: tests/fuzz/corpus/fuzz_client)

Each seed is a valid session: a login for every auth method, simple and
extended queries in each pool mode, COPY, cancels, SSL/GSS requests, the
admin console, several clients sharing a transaction pool, and the fake
server's misbehaviours. The fuzzer mutates from there.
"""
import os
import struct
import sys

# byte 0: auth type (bits 0-1), fake server login (bits 2-4)
TRUST, MD5, SCRAM, PLAIN = 0, 1, 2, 3  # enum conf_auth_type
L_OK, L_MD5, L_CLEAR, L_SCRAM, L_ERROR, L_RAW, L_CLOSE = 0, 2, 3, 4, 5, 6, 7
# byte 1: fake server mode (bits 0-2), trickle (bits 3-5)
S_CLEAN, S_INJECT, S_REPLACE, S_HOLD, S_CLOSE_AFTER, S_LOGIN_EXTRA = 0, 1, 2, 3, 4, 5

OP_AUTH, OP_CANCEL, OP_SWITCH, OP_CLOSE, OP_KILL = 0xF0, 0xF1, 0xF2, 0xF3, 0xF4
OP_RELEASE, OP_JANITOR, OP_TOGGLE, OP_RELOAD, OP_SHUTDOWN = 0xF5, 0xF6, 0xF7, 0xF8, 0xF9
OP_TIMERS = 0xFA
SMALL_BUFS = 8  # in the trickle argument of seed(): bit 6 of byte 1
USERS = ["alice", "bob", "carol", "admin", "stats"]


def msg(t, payload=b""):
    return t + struct.pack("!I", len(payload) + 4) + payload


def cstr(s):
    return s.encode() + b"\0"


def startup(user, db, extra=(), version=(3, 0)):
    body = struct.pack("!HH", *version)
    for k, v in (("user", user), ("database", db)) + tuple(extra):
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, 80877103)


def gss_request():
    return struct.pack("!II", 8, 80877104)


def cancel(pid, key):
    return struct.pack("!IIII", 16, 80877102, pid, key)


def q(sql):
    return msg(b"Q", cstr(sql))


def parse(name, sql, oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(oids)) +
               b"".join(struct.pack("!I", o) for o in oids))


def bind(portal, stmt, params=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        body += struct.pack("!I", len(p)) + p
    return msg(b"B", body + struct.pack("!H", 0))


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def execute(portal="", maxrows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", maxrows))


def close_stmt(kind, name):
    return msg(b"C", kind + cstr(name))


SYNC = msg(b"S")
FLUSH = msg(b"H")
TERM = msg(b"X")


def password(pw):
    return msg(b"p", cstr(pw))


def data(b, split=None):
    """Operations that send <b>, in chunks of <split> bytes (default: whole,
    in pieces of at most 224 bytes)."""
    out = b""
    step = split or 224
    for i in range(0, len(b), step):
        part = b[i:i + step]
        out += bytes([len(part) - 1]) + part
    return out


def seed(auth, login=L_OK, mode=S_CLEAN, trickle=0, server=b"", ops=b""):
    assert len(server) < 256
    return bytes([auth | (login << 2), mode | (trickle << 3), len(server)]) + server + ops


def login_ops(user, db, auth, extra=()):
    """Startup and, when the auth type asks for one, the right answer."""
    ops = data(startup(user, db, extra))
    if auth == PLAIN:
        ops += data(password(dict(alice="alicepw", bob="bobpw", carol="carolpw",
                                  admin="adminpw", stats="statspw")[user]))
    elif auth in (MD5, SCRAM):
        ops += bytes([OP_AUTH, USERS.index(user)])
    return ops


EXT_BATCH = (parse("s1", "select $1::int", (23,)) + bind("", "s1", [b"7"]) +
             describe(b"P", "") + execute() + SYNC)
EXT_UNNAMED = parse("", "select 1") + bind("", "") + execute() + SYNC


def seeds():
    s = {}
    # logins, each auth type and user kind
    for auth, name in ((TRUST, "trust"), (PLAIN, "plain"), (MD5, "md5"), (SCRAM, "scram")):
        for user in ("alice", "bob", "carol"):
            s[f"login_{name}_{user}"] = seed(auth, ops=login_ops(user, "sess", auth) +
                                              data(q("select 1")) + data(TERM))
    s["login_plain_wrong"] = seed(PLAIN, ops=data(startup("alice", "tx")) + data(password("no")))
    s["login_unknown_user"] = seed(SCRAM, ops=data(startup("mallory", "tx")) +
                                   bytes([OP_AUTH, 0]))
    s["login_unknown_db"] = seed(TRUST, ops=data(startup("alice", "nosuchdb")) + data(q("select 1")))
    s["login_no_db_param"] = seed(TRUST, ops=data(startup("alice", "alice")))
    s["login_params"] = seed(TRUST, ops=data(startup(
        "alice", "sess", (("application_name", "app"), ("search_path", "s1"),
                          ("TimeZone", "UTC"), ("extra_float_digits", "3"),
                          ("options", "-c x=y"), ("_pq_.x", "1")))) +
        data(q("show search_path") + TERM))
    s["login_bad_param"] = seed(TRUST, ops=data(startup("alice", "sess", (("work_mem", "1MB"),))))
    s["startup_split"] = seed(TRUST, ops=data(startup("alice", "tx") + q("select 1"), split=3))
    s["startup_bytewise"] = seed(TRUST, ops=data(startup("bob", "sess"), split=1) +
                                 data(q("select 1"), split=2))
    s["ssl_request"] = seed(TRUST, ops=data(ssl_request()) + data(startup("alice", "tx")) +
                            data(q("select 1")))
    s["ssl_twice"] = seed(TRUST, ops=data(ssl_request()) + data(ssl_request()) +
                          data(startup("alice", "tx")))
    s["gss_request"] = seed(TRUST, ops=data(gss_request()) + data(ssl_request()) +
                            data(startup("alice", "sess")) + data(q("select 1")))
    s["cancel_unknown"] = seed(TRUST, ops=data(cancel(1234, 5678)))
    s["old_protocol"] = seed(TRUST, ops=data(startup("alice", "tx", version=(2, 0))))

    # simple queries, each pool mode
    for db in ("sess", "tx", "stmt", "fixed", "other"):
        s[f"queries_{db}"] = seed(TRUST, ops=login_ops("alice", db, TRUST) + data(
            q("select 1") + q("begin") + q("insert into t values (1)") + q("commit") +
            q("set application_name = 'x'") + q("select 1; select 2") + q("") + TERM))
    s["tx_error"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        q("begin") + q("select error") + q("select 1") + q("rollback") + q("select 1")))
    s["stmt_mode_begin"] = seed(TRUST, ops=login_ops("alice", "stmt", TRUST) + data(
        q("begin") + q("select 1") + q("commit")))
    s["session_state_tx"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        q("set search_path = a") + q("listen chan") + q("prepare p as select 1") +
        q("execute p") + q("deallocate p") + q("discard all") + q("reset all")))
    s["session_set_reset"] = seed(TRUST, ops=login_ops("carol", "sess", TRUST) + data(
        q("set TimeZone to 'Europe/Paris'") + q("set application_name = 'a''b'") +
        q("discard plans") + q("discard all") + q("notify chan") + q("select notice")))
    s["copy_in"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        q("copy t from stdin") + msg(b"d", b"1\n") + msg(b"d", b"2\n") + msg(b"c") +
        q("copy t from stdin") + msg(b"f", cstr("stop")) + q("copy t to stdout")))
    s["fatal_from_server"] = seed(TRUST, ops=login_ops("alice", "sess", TRUST) + data(
        q("select fatal")) + data(q("select 1")))
    s["function_call"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        msg(b"F", struct.pack("!IHHH", 1234, 0, 0, 0))))

    # extended protocol, transaction mode statement tracking
    s["ext_tx"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        EXT_BATCH + EXT_BATCH + bind("", "s1", [b"8"]) + execute() + SYNC +
        describe(b"S", "s1") + SYNC + close_stmt(b"S", "s1") + SYNC + EXT_UNNAMED))
    s["ext_tx_many"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        b"".join(parse(f"s{i}", f"select {i}") + bind("", f"s{i}") + execute() + SYNC
                 for i in range(7)) +
        b"".join(bind("", f"s{i}") + execute() + SYNC for i in range(7))))
    s["ext_tx_error"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        parse("bad", "select error") + bind("", "bad") + execute() + SYNC +
        bind("", "nosuch") + execute() + SYNC + parse("dup", "select 1") +
        parse("dup", "select 2") + SYNC + EXT_BATCH))
    s["ext_tx_flush"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        parse("f1", "select 1") + FLUSH) + data(bind("p1", "f1") + describe(b"P", "p1") +
                                                execute("p1", 1) + FLUSH) + data(SYNC))
    s["ext_session"] = seed(TRUST, ops=login_ops("bob", "sess", TRUST) + data(EXT_BATCH + EXT_BATCH))
    s["ext_split"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(EXT_BATCH * 2, split=5))
    s["ext_ddl"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(
        EXT_BATCH + q("alter table t add column c int") + EXT_BATCH +
        describe(b"S", "s1") + SYNC))

    # several clients on one transaction pool of two servers
    two = (login_ops("alice", "tx", TRUST) + data(q("begin")) +
           bytes([OP_SWITCH, 1]) + login_ops("alice", "tx", TRUST) + data(q("begin")) +
           bytes([OP_SWITCH, 2]) + login_ops("alice", "tx", TRUST) + data(q("select 1")))
    s["clients_wait"] = seed(TRUST, ops=two + bytes([OP_SWITCH, 0]) + data(q("commit")) +
                             bytes([OP_SWITCH, 1]) + data(q("commit")))
    s["clients_leave_in_tx"] = seed(TRUST, ops=two + bytes([OP_SWITCH, 0, OP_CLOSE, OP_JANITOR]))
    s["clients_prepared_share"] = seed(TRUST, ops=
        login_ops("alice", "tx", TRUST) + data(EXT_BATCH) + bytes([OP_SWITCH, 1]) +
        login_ops("alice", "tx", TRUST) + data(EXT_BATCH + q("begin")) +
        bytes([OP_SWITCH, 0]) + data(EXT_BATCH))

    # cancel: the server holds the query until the cancel request comes
    s["cancel_held"] = seed(TRUST, mode=S_HOLD, ops=login_ops("alice", "tx", TRUST) +
                            data(q("select pg_sleep(10)")) + bytes([OP_CANCEL]) +
                            bytes([OP_RELEASE]) + data(q("select 1")))
    s["cancel_session"] = seed(TRUST, mode=S_HOLD, ops=login_ops("alice", "sess", TRUST) +
                               data(EXT_BATCH) + bytes([OP_CANCEL, OP_CLOSE]))
    s["held_then_leave"] = seed(TRUST, mode=S_HOLD, ops=login_ops("alice", "tx", TRUST) +
                                data(q("select 1")) + bytes([OP_CLOSE, OP_RELEASE]))

    # admin console
    s["admin"] = seed(TRUST, ops=login_ops("admin", "sluice", TRUST) + data(
        q("show pools") + q("show databases") + q("show clients") + q("show servers") +
        q("show version") + q("reload") + q("nonsense") + q("") + TERM))
    s["admin_stats_user"] = seed(MD5, ops=login_ops("stats", "sluice", MD5) + data(
        q("show pools") + q("shutdown") + parse("", "show pools")))
    s["admin_scram"] = seed(SCRAM, ops=login_ops("admin", "pgbouncer", SCRAM) + data(
        q("SHOW SERVERS;") + q("shutdown")))
    s["admin_after_use"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(q("begin")) +
                                bytes([OP_SWITCH, 1]) + login_ops("admin", "sluice", TRUST) +
                                data(q("show clients") + q("show servers") + q("show pools")))

    # fake server logins
    for login, name in ((L_MD5, "md5"), (L_CLEAR, "cleartext"), (L_SCRAM, "scram"),
                        (L_ERROR, "error"), (L_CLOSE, "close")):
        for user, auth in (("alice", TRUST), ("carol", SCRAM), ("bob", MD5)):
            s[f"server_login_{name}_{user}"] = seed(auth, login=login, ops=login_ops(
                user, "tx", auth) + data(q("select 1")))
    s["server_login_raw"] = seed(TRUST, login=L_RAW, server=(
        msg(b"R", struct.pack("!I", 0)) + msg(b"S", cstr("client_encoding") + cstr("UTF8")) +
        msg(b"N", b"SWARNING\0C01000\0Mhi\0\0") + msg(b"K", struct.pack("!II", 1, 2)) +
        msg(b"Z", b"I")), ops=login_ops("alice", "tx", TRUST) + data(q("select 1")))
    s["server_login_raw_sasl"] = seed(TRUST, login=L_RAW, server=(
        msg(b"R", struct.pack("!I", 10) + cstr("SCRAM-SHA-256") + b"\0")),
        ops=login_ops("alice", "tx", TRUST))
    s["server_login_extra"] = seed(TRUST, mode=S_LOGIN_EXTRA, server=bytes([30]) + (
        msg(b"S", cstr("TimeZone") + cstr("x")) + msg(b"v", struct.pack("!II", 0x30000, 0))),
        ops=login_ops("alice", "sess", TRUST) + data(q("select 1")))

    # fake server misbehaving after login
    inject = bytes(range(0, 36)) + bytes(range(0x40, 0x40 + 36))
    s["inject_tx"] = seed(TRUST, mode=S_INJECT, server=inject,
                          ops=login_ops("alice", "tx", TRUST) +
                          data(q("select 1") * 8 + EXT_BATCH * 8 + q("begin") + q("commit")))
    s["inject_session"] = seed(TRUST, mode=S_INJECT, server=inject[::-1],
                               ops=login_ops("alice", "sess", TRUST) +
                               data(q("select 1") * 8 + EXT_BATCH * 8))
    s["inject_raw"] = seed(TRUST, mode=S_INJECT, server=bytes([0x80 | 6]) + msg(b"Z", b"I"),
                           ops=login_ops("alice", "tx", TRUST) + data(q("select 1") * 2))
    s["replace"] = seed(TRUST, mode=S_REPLACE, server=bytes([6]) + msg(b"Z", b"T") +
                        bytes([5]) + msg(b"1"), ops=login_ops("alice", "tx", TRUST) +
                        data(q("select 1") + EXT_BATCH + q("select 1")))
    s["close_after"] = seed(TRUST, mode=S_CLOSE_AFTER, server=bytes([2]),
                            ops=login_ops("alice", "tx", TRUST) +
                            data(q("select 1")) + data(q("begin")) + data(q("select 1")))
    s["trickle"] = seed(TRUST, trickle=1, ops=login_ops("alice", "tx", TRUST) +
                        data(q("select 1") + EXT_BATCH + q("copy t to stdout")))
    s["trickle_session"] = seed(TRUST, trickle=3, ops=login_ops("alice", "sess", TRUST) +
                                data(EXT_BATCH + q("select 1")))
    s["big_row_backpressure"] = seed(TRUST, mode=S_INJECT, server=bytes([28, 28, 28]),
                                     ops=login_ops("alice", "tx", TRUST) +
                                     bytes([OP_TOGGLE]) + data(q("select 1") * 3) +
                                     bytes([OP_TOGGLE]))
    s["kill_servers"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(q("begin")) +
                             bytes([OP_KILL]) + data(q("select 1")) +
                             login_ops("alice", "tx", TRUST) + data(q("select 1")))
    s["kill_idle"] = seed(TRUST, ops=login_ops("alice", "sess", TRUST) + data(q("select 1")) +
                          bytes([OP_KILL]) + data(q("select 1")))

    # DDL changes what a described statement returns
    described = parse("s1", "select * from t") + describe(b"S", "s1") + SYNC
    s["shape_stale"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(described) +
                            data(q("alter table t add column c int")) +
                            data(bind("", "s1") + execute() + SYNC) +
                            data(describe(b"S", "s1") + SYNC + bind("", "s1") + execute() + SYNC))
    s["shape_other_server"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(described) +
                                   data(q("begin")) + bytes([OP_SWITCH, 1]) +
                                   login_ops("alice", "tx", TRUST) + data(described) +
                                   data(q("create table u (a int)") + bind("", "s1") +
                                        execute() + SYNC) + bytes([OP_SWITCH, 0]) +
                                   data(q("commit") + bind("", "s1") + execute() + SYNC))

    # timeouts: login, wait, idle, server connect
    s["timer_login"] = seed(TRUST, ops=data(startup("alice", "tx")[:10]) + bytes([OP_TIMERS]))
    s["timer_auth"] = seed(SCRAM, ops=data(startup("alice", "tx")) + bytes([OP_TIMERS]))
    s["timer_wait_idle"] = seed(TRUST, ops=two + bytes([OP_TIMERS, OP_SWITCH, 0]) +
                                data(q("commit")) + bytes([OP_TIMERS]))
    # the server's login never ends (no ReadyForQuery): server_connect_timeout
    s["timer_server_login"] = seed(TRUST, login=L_RAW, server=msg(b"R", struct.pack("!I", 0)),
                                   ops=data(startup("alice", "tx")) + bytes([OP_TIMERS]) +
                                   bytes([OP_SWITCH, 1]) + data(startup("alice", "tx")))

    # sluice's writes to a client fall short: its buffer and write watcher
    s["small_bufs_big_row"] = seed(TRUST, mode=S_INJECT, trickle=SMALL_BUFS,
                                   server=bytes([28, 28, 0x40 | 28]),
                                   ops=login_ops("alice", "tx", TRUST) + bytes([OP_TOGGLE]) +
                                   data(q("select 1") + q("select 2")) + bytes([OP_TOGGLE]) +
                                   data(q("select 3")))
    s["small_bufs_session"] = seed(TRUST, mode=S_INJECT, trickle=SMALL_BUFS | 2,
                                   server=bytes([28, 28]),
                                   ops=login_ops("alice", "sess", TRUST) +
                                   data(q("select 1") + EXT_BATCH) + bytes([OP_CLOSE]))

    # reloads and shutdown with clients around
    s["reload"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(EXT_BATCH) +
                       bytes([OP_RELOAD, 1]) + data(EXT_BATCH + q("begin")) +
                       bytes([OP_RELOAD, 2, OP_RELOAD, 0, OP_JANITOR]) + data(q("commit")))
    s["reload_removed_db"] = seed(TRUST, ops=login_ops("alice", "fixed", TRUST) +
                                  data(q("select 1")) + bytes([OP_RELOAD, 1]) +
                                  data(q("select 1")) + bytes([OP_SWITCH, 1]) +
                                  login_ops("bob", "fixed", TRUST))
    s["shutdown"] = seed(TRUST, ops=login_ops("alice", "tx", TRUST) + data(q("begin")) +
                         bytes([OP_SHUTDOWN]) + data(q("commit")) +
                         bytes([OP_SWITCH, 1]) + login_ops("alice", "tx", TRUST))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_client")
    os.makedirs(out, exist_ok=True)
    for name, b in sorted(seeds().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(b)
    print(f"{len(seeds())} seeds in {out}")


if __name__ == "__main__":
    main()
