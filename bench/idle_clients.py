#!/usr/bin/env python3
"""Many idle PostgreSQL clients for the memory part of `make bench`.

The tool opens thousands of client connections to a pooler, logs each in
(trust, cleartext, md5 or SCRAM-SHA-256, whatever the pooler asks for),
holds them open and idle, and closes them on command, so that the bench can
read the pooler's RSS with and without them. It speaks the wire protocol
itself over non-blocking sockets and one epoll selector: libpq would cost a
thread or a PBKDF2 per login, and 10,000 logins have to take seconds, not
minutes. SCRAM's salted password is computed once per (salt, iterations).

It is driven by lines on stdin and answers each with one line on stdout,
"ok ..." or "error ..." (diagnostics go to stderr):

    open PORT N          log N more clients in to PORT and keep them idle
    select PORT K        run `select 1` on K of the idle clients of PORT
    close PORT           all clients of PORT send Terminate; the answer comes
                         when the pooler has closed them (or after --close-wait)
    big PORT K MIB PID   K new clients each send one query of MIB MiB
                         (select length('xxx...')) at once; the answer gives
                         the peak VmRSS of PID sampled while they ran; then
                         they close
    count PORT           how many clients of PORT are open
    quit

Every command gives up after --timeout seconds (an "error" answer); then
the clients it was working on are closed. End of stdin closes everything.
"""

import argparse
import base64
import errno
import hashlib
import hmac
import os
import resource
import selectors
import socket
import struct
import sys
import time

PROTO_3_0 = 196608

# connection phases
CONNECTING, LOGIN, IDLE, QUERY, CLOSING, DONE, FAILED = range(7)


def log(msg):
    print(f"idle_clients: {msg}", file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log(f"cannot raise the open-file limit from {soft} to {hard}: {e}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def vmrss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def msg(t, body):
    return t + struct.pack("!I", len(body) + 4) + body


def error_text(body):
    """The severity, code and message fields of an ErrorResponse."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return f'{fields.get(b"S", "?")} {fields.get(b"C", "?")} {fields.get(b"M", "")}'


class Scram:
    """The client side of SCRAM-SHA-256 without channel binding."""

    salted = {}  # (password, salt, iterations) -> SaltedPassword

    def __init__(self, password):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_sig = None

    def first(self):
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        it = int(attrs["i"])
        key = (self.password, salt, it)
        sp = Scram.salted.get(key)
        if sp is None:
            sp = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, it)
            if len(Scram.salted) > 64:
                Scram.salted.clear()
            Scram.salted[key] = sp
        ck = hmac.digest(sp, b"Client Key", "sha256")
        stored = hashlib.sha256(ck).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.digest(stored, auth, "sha256")
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        sk = hmac.digest(sp, b"Server Key", "sha256")
        self.server_sig = hmac.digest(sk, auth, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final):
        attrs = dict(a.split("=", 1) for a in server_final.decode().split(","))
        if "v" not in attrs or base64.b64decode(attrs["v"]) != self.server_sig:
            raise ValueError("server signature does not match")


class Conn:
    __slots__ = ("sock", "fd", "port", "phase", "inbuf", "out", "scram", "err",
                 "want", "queries", "row", "group")

    def __init__(self, sock, port):
        self.sock = sock
        self.fd = sock.fileno()
        self.port = port
        self.phase = CONNECTING
        self.inbuf = bytearray()
        self.out = []  # memoryviews still to send
        self.scram = None
        self.err = None
        self.want = 0  # selector events registered
        self.queries = 0  # ReadyForQuery still expected
        self.row = None  # the first column of the last DataRow
        self.group = None  # the set of the command that waits for this one


class Tool:
    def __init__(self, args):
        self.a = args
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # port -> list of logged-in idle Conn
        self.live = {}  # fd -> Conn
        self.dropped = {}  # port -> count of idle clients the pooler closed
        self.first_drop = {}
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        self.stdin_buf = b""
        self.stdin_eof = False

    # ---- socket plumbing -----------------------------------------------

    def startup_packet(self):
        body = struct.pack("!I", PROTO_3_0)
        for k, v in (("user", self.a.user), ("database", self.a.dbname),
                     ("application_name", "idle_clients")):
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        return struct.pack("!I", len(body) + 4) + body

    def arm(self, c):
        ev = selectors.EVENT_READ
        if c.out or c.phase == CONNECTING:
            ev |= selectors.EVENT_WRITE
        if ev != c.want:
            if c.want:
                self.sel.modify(c.fd, ev, c)
            else:
                self.sel.register(c.fd, ev, c)
            c.want = ev

    def send(self, c, data):
        c.out.append(memoryview(data))
        self.flush(c)

    def flush(self, c):
        while c.out:
            try:
                n = c.sock.send(c.out[0])
            except BlockingIOError:
                break
            except OSError as e:
                self.fail(c, f"send: {e}")
                return
            if n == len(c.out[0]):
                c.out.pop(0)
            else:
                c.out[0] = c.out[0][n:]
        if c.phase not in (DONE, FAILED):
            self.arm(c)

    def forget(self, c):
        if c.want:
            try:
                self.sel.unregister(c.fd)
            except (KeyError, ValueError):
                pass
            c.want = 0
        self.live.pop(c.fd, None)
        try:
            c.sock.close()
        except OSError:
            pass

    def fail(self, c, why):
        if c.phase in (DONE, FAILED):
            return
        was = c.phase
        c.phase = FAILED
        c.err = why
        self.forget(c)
        if was == IDLE:
            # the pooler closed an idle client: it is no longer counted
            lst = self.conns.get(c.port, [])
            if c in lst:
                lst.remove(c)
            self.dropped[c.port] = self.dropped.get(c.port, 0) + 1
            self.first_drop.setdefault(c.port, why)
        if c.group is not None:
            c.group.discard(c)

    def connect(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(s, port)
        self.live[c.fd] = c
        rc = s.connect_ex((self.a.host, port))
        if rc not in (0, errno.EINPROGRESS):
            self.fail(c, f"connect: {os.strerror(rc)}")
            return c
        self.arm(c)
        return c

    # ---- protocol ------------------------------------------------------

    def on_event(self, c, ev):
        if c.phase == CLOSING:
            try:
                more = c.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                more = b""
            if not more:
                self.finish(c)
            return
        if c.phase == CONNECTING and ev & selectors.EVENT_WRITE:
            rc = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                self.fail(c, f"connect: {os.strerror(rc)}")
                return
            c.phase = LOGIN
            self.send(c, self.startup_packet())
            if c.phase == FAILED:
                return
        elif ev & selectors.EVENT_WRITE:
            self.flush(c)
            if c.phase in (DONE, FAILED):
                return
        if ev & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as e:
                self.fail(c, f"recv: {e}")
                return
            if not data:
                self.fail(c, "the pooler closed the connection")
                return
            c.inbuf += data
            self.parse(c)

    def parse(self, c):
        buf = c.inbuf
        pos = 0
        while len(buf) - pos >= 5:
            t = buf[pos:pos + 1]
            (n,) = struct.unpack_from("!I", buf, pos + 1)
            if len(buf) - pos < 1 + n:
                break
            body = bytes(buf[pos + 5:pos + 1 + n])
            pos += 1 + n
            self.handle(c, t, body)
            if c.phase in (DONE, FAILED):
                return
        if pos:
            del buf[:pos]

    def handle(self, c, t, body):
        if t == b"E":
            self.fail(c, error_text(body))
        elif t == b"R":
            self.auth(c, body)
        elif t == b"Z":
            if c.phase == LOGIN:
                c.phase = IDLE
                if c.group is not None:
                    c.group.discard(c)
            elif c.phase == QUERY:
                c.queries -= 1
                if c.queries <= 0:
                    c.phase = IDLE
                    if c.group is not None:
                        c.group.discard(c)
        elif t == b"D" and c.phase == QUERY:
            (ncol,) = struct.unpack_from("!H", body)
            (n,) = struct.unpack_from("!i", body, 2)
            c.row = body[6:6 + n] if ncol and n >= 0 else None
        # S, K, N, T, C: nothing to do

    def auth(self, c, body):
        (code,) = struct.unpack_from("!I", body)
        pw = self.a.password
        try:
            if code == 0:
                return
            if code == 3:
                self.send(c, msg(b"p", pw.encode() + b"\0"))
            elif code == 5:
                inner = hashlib.md5((pw + self.a.user).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                self.send(c, msg(b"p", b"md5" + outer.encode() + b"\0"))
            elif code == 10:
                if b"SCRAM-SHA-256\0" not in body[4:]:
                    self.fail(c, "the pooler offers no SCRAM-SHA-256")
                    return
                c.scram = Scram(pw)
                first = c.scram.first()
                self.send(c, msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
            elif code == 11:
                self.send(c, msg(b"p", c.scram.final(body[4:])))
            elif code == 12:
                c.scram.check(body[4:])
                c.scram = None
            else:
                self.fail(c, f"authentication request {code} is not supported")
        except (ValueError, KeyError, AttributeError) as e:
            self.fail(c, f"SCRAM: {e}")

    # ---- the event loop --------------------------------------------------

    def run_until(self, done, deadline, tick=None):
        """Serve sockets until done() or the deadline; tick() runs each pass."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, ev in self.sel.select(min(left, 0.01 if tick else 0.5)):
                if key.data is None:
                    self.read_stdin()
                else:
                    self.on_event(key.data, ev)
            if tick:
                tick()
        return True

    def read_stdin(self):
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return
        if not data:
            self.stdin_eof = True
            self.sel.unregister(sys.stdin.fileno())
        self.stdin_buf += data

    def next_command(self):
        while b"\n" not in self.stdin_buf:
            if self.stdin_eof:
                return None
            self.run_until(lambda: b"\n" in self.stdin_buf or self.stdin_eof,
                           time.monotonic() + 3600)
        line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
        return line.decode().split()

    def login(self, port, n, deadline):
        """Log n clients in to port, at most --inflight at a time."""
        pending = set()
        ok, failed = [], []
        started = 0
        while started < n or pending:
            while started < n and len(pending) < self.a.inflight:
                c = self.connect(port)
                c.group = pending
                started += 1
                if c.phase == FAILED:
                    failed.append(c)
                else:
                    pending.add(c)
            before = set(pending)
            if not self.run_until(lambda: len(pending) < len(before) or not pending,
                                  deadline):
                for c in list(pending):
                    self.fail(c, "timed out logging in")
                    failed.append(c)
                return ok, failed, started
            for c in before - pending:
                c.group = None
                (ok if c.phase == IDLE else failed).append(c)
        return ok, failed, started

    def finish(self, c):
        c.phase = DONE
        self.forget(c)
        if c.group is not None:
            c.group.discard(c)
            c.group = None

    def close_all(self, conns):
        """Send Terminate, as libpq's PQfinish does, and wait (a bounded
        time) for the pooler to close. Its side then holds the TIME_WAIT,
        so that bursts of logins do not run out of ephemeral ports here,
        and when this returns the pooler has let go of every client."""
        term = msg(b"X", b"")
        waiting = set()
        for c in conns:
            if c.phase in (DONE, FAILED):
                continue
            c.out = []
            try:
                c.sock.send(term)
            except OSError:
                self.finish(c)
                continue
            c.phase = CLOSING
            c.group = waiting
            waiting.add(c)
            self.arm(c)
        self.run_until(lambda: not waiting, time.monotonic() + self.a.close_wait)
        if waiting:
            log(f"{len(waiting)} connections not closed by the pooler after "
                f"{self.a.close_wait:g}s; closing them here")
        for c in list(waiting):
            self.finish(c)

    # ---- commands --------------------------------------------------------

    def cmd_open(self, port, n):
        t0 = time.monotonic()
        ok, failed, _ = self.login(port, n, t0 + self.a.timeout)
        self.conns.setdefault(port, []).extend(ok)
        secs = time.monotonic() - t0
        total = len(self.conns[port])
        if failed:
            why = failed[0].err or "?"
            return f"error {len(failed)} of {n} logins failed in {secs:.1f}s (first: {why}); {total} open"
        return f"ok opened {n} in {secs:.1f}s, {total} open"

    def cmd_select(self, port, k):
        idle = [c for c in self.conns.get(port, []) if c.phase == IDLE][:k]
        if len(idle) < k:
            return f"error only {len(idle)} idle clients on {port}"
        pending = set(idle)
        q = msg(b"Q", b"select 1\0")
        for c in idle:
            c.group = pending
            c.phase = QUERY
            c.queries = 1
            self.send(c, q)
        done = self.run_until(lambda: not pending, time.monotonic() + self.a.timeout)
        bad = [c for c in idle if c.phase != IDLE]
        for c in idle:
            c.group = None
        if not done or bad:
            why = bad[0].err if bad and bad[0].err else "timed out"
            for c in bad:
                self.fail(c, why)
            return f"error {len(bad)} of {k} queries failed (first: {why})"
        return f"ok {k} queries"

    def cmd_close(self, port):
        lst = self.conns.pop(port, [])
        self.close_all(lst)
        d = self.dropped.pop(port, 0)
        why = self.first_drop.pop(port, "")
        if d:
            return f"error closed {len(lst)}, but the pooler had closed {d} idle clients before (first: {why})"
        return f"ok closed {len(lst)}"

    def cmd_count(self, port):
        return f"ok {len(self.conns.get(port, []))} open, {self.dropped.get(port, 0)} dropped"

    def cmd_big(self, port, k, mib, pid):
        t0 = time.monotonic()
        deadline = t0 + self.a.timeout
        ok, failed, _ = self.login(port, k, deadline)
        if failed:
            self.close_all(ok)
            return f"error {len(failed)} of {k} logins failed (first: {failed[0].err})"
        payload = b"x" * (mib << 20)
        head = b"select length('"
        tail = b"')\0"
        body_len = len(head) + len(payload) + len(tail)
        hdr = b"Q" + struct.pack("!I", body_len + 4) + head
        base = vmrss_kb(pid)
        peak = [base or 0]

        def sample():
            r = vmrss_kb(pid)
            if r is not None and r > peak[0]:
                peak[0] = r

        pending = set(ok)
        for c in ok:
            c.group = pending
            c.phase = QUERY
            c.queries = 1
            c.out += [memoryview(hdr), memoryview(payload), memoryview(tail)]
            self.flush(c)
        t1 = time.monotonic()
        done = self.run_until(lambda: not pending, deadline, tick=sample)
        sample()
        secs = time.monotonic() - t1
        want = str(len(payload)).encode()
        for c in ok:
            if c.phase == IDLE and c.row != want:
                c.err = f"the query returned {c.row!r}, not {want.decode()}"
        bad = [c for c in ok if c.phase != IDLE or c.row != want]
        why = (bad[0].err or "timed out") if bad else ""
        for c in ok:
            c.group = None
        self.close_all(ok)
        if not done or bad:
            return f"error {len(bad)} of {k} big queries failed (first: {why})"
        return f"ok peak_kb {peak[0]} before_kb {base} secs {secs:.1f}"

    def serve(self):
        print("ok ready", flush=True)
        while True:
            words = self.next_command()
            if words is None or words == ["quit"]:
                break
            if not words:
                continue
            try:
                op = words[0]
                if op == "open":
                    ans = self.cmd_open(int(words[1]), int(words[2]))
                elif op == "select":
                    ans = self.cmd_select(int(words[1]), int(words[2]))
                elif op == "close":
                    ans = self.cmd_close(int(words[1]))
                elif op == "count":
                    ans = self.cmd_count(int(words[1]))
                elif op == "big":
                    ans = self.cmd_big(int(words[1]), int(words[2]), int(words[3]),
                                       int(words[4]))
                else:
                    ans = f"error unknown command {op!r}"
            except (IndexError, ValueError) as e:
                ans = f"error bad command {' '.join(words)!r}: {e}"
            print(ans, flush=True)
        for lst in self.conns.values():
            self.close_all(lst)
        for c in list(self.live.values()):
            self.forget(c)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--user", default="app")
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    p.add_argument("--dbname", default="app")
    p.add_argument("--inflight", type=int, default=128,
                   help="logins in progress at once (the listen backlog is small)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per command")
    p.add_argument("--close-wait", type=float, default=30,
                   help="seconds to wait for the pooler to close after Terminate")
    a = p.parse_args()
    limit = raise_nofile()
    log(f"open-file limit {limit}")
    os.set_blocking(sys.stdin.fileno(), False)
    Tool(a).serve()


if __name__ == "__main__":
    main()
