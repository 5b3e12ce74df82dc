"""Integration test harness: a throwaway PostgreSQL 15, Redis and sluice.

Everything lives in one temporary directory (owned by `postgres`, since
PostgreSQL refuses to run as root) that is removed at the end. Processes are
always stopped by pid, also on Ctrl-C.
"""
import base64
import hashlib
import hmac
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import psycopg2
import psycopg2.extensions

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_SUPERUSER_PASSWORD = "postgres"

# users known to the sluice auth file, with their plaintext passwords
PASSWORDS = {"app": "app", "md5user": "md5pw", "admin": "admin", "stats": "stats"}


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    pass


TESTS = []


def test(name, timeout=60):
    """Register a test function taking the Env; timeout in seconds."""
    def deco(fn):
        TESTS.append((name, fn, timeout))
        return fn
    return deco


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout, proc=None):
    """Wait until 127.0.0.1:port accepts TCP; False if proc died or timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


def wait_until(pred, timeout, interval=0.05):
    """Call pred() until it returns a true value; return that value or None."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            return None
        time.sleep(interval)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

class Postgres:
    def __init__(self, root):
        self.root = root
        self.data = os.path.join(root, "pgdata")
        self.log = os.path.join(root, "postgres.log")
        self.sockdir = root
        self.port = free_port()
        self.running = False
        self.closed = False

    def _run_pg(self, args, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + args,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, **kw)

    def init(self):
        pwfile = os.path.join(self.root, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PG_SUPERUSER_PASSWORD + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        r = self._run_pg([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres",
                          "--auth-host=scram-sha-256", "--auth-local=trust",
                          f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                         timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
shared_buffers = 64MB
log_min_messages = warning
shared_preload_libraries = 'pg_stat_statements'
""")
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            old = f.read()
        with open(hba, "w") as f:
            f.write("host all md5user 127.0.0.1/32 md5\n" + old)

    def start(self):
        if self.closed:
            raise TestFailure("the run is being stopped")
        r = self._run_pg([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log,
                          "-w", "-t", "60", "start"], timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{tail(self.log)}")
        self.running = True

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Stop by pid: SIGINT = fast shutdown, SIGTERM = smart, SIGQUIT = immediate."""
        pid = self.postmaster_pid()
        self.running = False
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGQUIT)
                time.sleep(1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # the pid file goes away once the postmaster is gone
        wait_until(lambda: not os.path.exists(os.path.join(self.data, "postmaster.pid")), 5)

    def connect(self, dbname="postgres", user="postgres"):
        """Direct superuser connection over the unix socket (trust)."""
        c = psycopg2.connect(host=self.sockdir, port=self.port, user=user,
                             dbname=dbname, connect_timeout=10)
        c.autocommit = True
        return c

    def query(self, sql, args=None, dbname="postgres"):
        c = self.connect(dbname)
        try:
            cur = c.cursor()
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def setup_roles(self):
        c = self.connect()
        cur = c.cursor()
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute("CREATE ROLE app LOGIN PASSWORD 'app'")
        cur.execute("SET password_encryption = 'md5'")
        cur.execute("CREATE ROLE md5user LOGIN PASSWORD 'md5pw'")
        cur.execute("RESET password_encryption")
        cur.execute("CREATE DATABASE app OWNER app")
        c.close()

    def rolpassword(self, role):
        return self.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))[0][0]


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

class Redis:
    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.log = os.path.join(root, "redis.log")
        self.proc = None

    def start(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not installed")
        logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.root],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        if not wait_port(self.port, 10, self.proc):
            raise RuntimeError(f"redis did not start:\n{tail(self.log)}")
        if self.ping() != b"+PONG\r\n":
            raise RuntimeError("redis does not answer PING")

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            buf = b""
            while not buf.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                buf += chunk
            return buf

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------
# sluice
# --------------------------------------------------------------------------

DEFAULT_SETTINGS = {
    "listen_addr": "127.0.0.1",
    "auth_type": "scram-sha-256",
    "admin_users": "admin",
    "stats_users": "stats",
    "pool_mode": "session",
    "min_pool_size": "2",
    "default_pool_size": "50",
    "max_client_conn": "1000",
    "query_wait_timeout": "120",
    "server_login_retry": "1",
    "stats_listen": "",
    "verbose": "0",
}


class Sluice:
    """One sluice process with its own config file, auth file and log."""

    counter = 0

    def __init__(self, env, settings=None, databases=None, users=None, userlist=None):
        Sluice.counter += 1
        self.env = env
        self.name = f"sluice{Sluice.counter}"
        self.dir = os.path.join(env.root, self.name)
        os.makedirs(self.dir)
        shutil.chown(self.dir, "postgres", "postgres")
        self.conf = os.path.join(self.dir, "conf.ini")
        self.auth_file = os.path.join(self.dir, "userlist.txt")
        self.log = os.path.join(self.dir, "sluice.log")
        self.port = free_port()
        self.settings = dict(DEFAULT_SETTINGS)
        for k, v in (settings or {}).items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = str(v)
        self.settings["listen_port"] = str(self.port)
        self.settings["auth_file"] = self.auth_file
        pg = env.pg
        self.databases = {"app": f"host=127.0.0.1 port={pg.port} dbname=app"}
        for k, v in (databases or {}).items():
            if v is None:
                self.databases.pop(k, None)
            else:
                self.databases[k] = v.replace("PGPORT", str(pg.port))
        self.users = dict(users or {})
        self.userlist = dict(PASSWORDS)
        self.userlist.update(userlist or {})
        self.proc = None
        self.stopped_on_purpose = False
        self.killed = False
        self.write_config()

    # config ---------------------------------------------------------------
    def config_text(self):
        lines = ["[databases]"]
        lines += [f"{k} = {v}" for k, v in self.databases.items()]
        lines += ["", "[users]"]
        lines += [f"{k} = {v}" for k, v in self.users.items()]
        lines += ["", "[sluice]"]
        lines += [f"{k} = {v}" for k, v in self.settings.items()]
        lines += ["", "[cache]", "enabled = 0", ""]
        return "\n".join(lines)

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        with open(self.auth_file, "w") as f:
            for u, secret in self.userlist.items():
                f.write(f'"{u}" "{secret}"\n')

    # process --------------------------------------------------------------
    def start(self, timeout=15):
        with self.env.lock:
            if self.env.closing:
                raise TestFailure("the run is being stopped")
            logf = open(self.log, "ab")
            self.proc = subprocess.Popen([self.env.sluice_bin, self.conf], stdout=logf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir)
            logf.close()
            self.env.started.append(self)
        if not wait_port(self.port, timeout, self.proc):
            rc = self.proc.poll()
            self.kill()
            raise TestFailure(f"sluice did not start listening on {self.port} "
                              f"(exit status {rc}); log tail:\n{tail(self.log)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10):
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=15):
        return tail(self.log, n)

    # clients --------------------------------------------------------------
    def dsn(self, user="app", dbname="app", password=None):
        if password is None:
            password = PASSWORDS.get(user, "")
        return dict(host="127.0.0.1", port=self.port, user=user, dbname=dbname,
                    password=password, connect_timeout=10)

    def connect(self, user="app", dbname="app", password=None, autocommit=True, **kw):
        d = self.dsn(user, dbname, password)
        d.update(kw)
        c = psycopg2.connect(**d)
        c.autocommit = autocommit
        return c

    def pgenv(self, user="app", dbname="app", password=None):
        e = dict(os.environ)
        if password is None:
            password = PASSWORDS.get(user, "")
        e.update(PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user,
                 PGDATABASE=dbname, PGPASSWORD=password, PGCONNECT_TIMEOUT="10",
                 PGSSLMODE="disable")
        e.pop("PGSERVICE", None)
        return e

    def psql(self, *args, user="app", dbname="app", password=None, input=None, timeout=60):
        return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", *args],
                              env=self.pgenv(user, dbname, password), input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)

    def wire(self, user="app", dbname="app", password=None, **kw):
        """Raw protocol connection, logged in."""
        if password is None:
            password = PASSWORDS.get(user, "")
        return login_wire("127.0.0.1", self.port, user, dbname, password, **kw)


class Env:
    """The whole run: one PostgreSQL, one Redis, and the current sluice."""

    def __init__(self, sluice_bin, keep=False):
        self.sluice_bin = sluice_bin
        self.keep = keep
        self.root = None
        self.pg = None
        self.redis = None
        self.current = None
        self.extra = []           # sluices started by tests outside the cache
        self.cache_key = None
        self.pgbench_ready = False
        self.lock = threading.Lock()
        self.closing = False
        self.started = []         # every sluice process, to be sure none outlives the run
        self.shutdown_problems = []

    def setup(self):
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("no 'postgres' OS user (install postgresql-15)")
        self.root = tempfile.mkdtemp(prefix="sluice-it-", dir="/tmp")
        os.chmod(self.root, 0o755)
        shutil.chown(self.root, "postgres", "postgres")
        self.pg = Postgres(self.root)
        self.pg.init()
        self.pg.start()
        self.pg.setup_roles()
        self.redis = Redis(self.root)
        self.redis.start()

    def teardown(self):
        with self.lock:
            self.closing = True
        for s in [self.current] + self.extra:
            if s is not None:
                self.stop_checked(s)
        self.current = None
        self.extra = []
        for s in self.started:
            s.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.closed = True
            self.pg.stop()
        if self.root and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # sluice fixture -------------------------------------------------------
    def sluice(self, settings=None, databases=None, users=None, userlist=None, fresh=False):
        """A running sluice with these overrides; reused while they stay the same.

        fresh=True always starts a new one (for tests that change or stop it)."""
        key = repr((sorted((settings or {}).items()), sorted((databases or {}).items()),
                    sorted((users or {}).items()), sorted((userlist or {}).items())))
        cur = self.current
        if not fresh and cur is not None and self.cache_key == key and cur.alive() \
                and not cur.stopped_on_purpose:
            return cur
        self.drop_sluice()
        s = Sluice(self, settings, databases, users, userlist)
        s.start()
        self.current = s
        self.cache_key = None if fresh else key
        return s

    def drop_sluice(self):
        cur = self.current
        self.current = None
        self.cache_key = None
        if cur is not None:
            self.stop_checked(cur)
            # let the server connections of the old process go away
            self.wait_backends(lambda n: n == 0, 5)

    def stop_checked(self, s):
        """Stop s with SIGTERM; a status other than 0 is kept for the report
        (a crash or a sanitizer report at exit)."""
        if s.proc is None or s.stopped_on_purpose or s.killed:
            s.stop(5)
            return
        died_before = s.proc.poll() is not None
        rc = s.stop(5)
        if rc != 0 and not s.killed:
            why = "had exited" if died_before else "on SIGTERM"
            self.shutdown_problems.append((s.name, f"exit status {rc} ({why})",
                                           s.log_tail(25)))

    def start_extra(self, **kw):
        """A second sluice beside the current one (not cached)."""
        s = Sluice(self, **kw)
        self.extra.append(s)
        s.start()
        return s

    # PostgreSQL-side observations -------------------------------------------
    def backends(self, user="app", where=""):
        sql = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
               "AND usename = %s " + where)
        return self.pg.query(sql, (user,))[0][0]

    def wait_backends(self, pred, timeout, user="app"):
        return wait_until(lambda: pred(self.backends(user)), timeout, 0.1)

    def ensure_pgbench(self):
        """pgbench tables at scale 1, created directly in PostgreSQL if missing."""
        if self.pgbench_ready:
            return
        r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", self.pg.sockdir,
                            "-p", str(self.pg.port), "-U", "app", "app"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"pgbench -i failed:\n{r.stdout}")
        self.pgbench_ready = True


# --------------------------------------------------------------------------
# Raw protocol client
# --------------------------------------------------------------------------

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        self.code = fields.get("C")
        super().__init__(f"{fields.get('S', '?')} {self.code}: {fields.get('M', '')}")


class Closed(Exception):
    pass


def cstr(s):
    return s.encode() + b"\0"


def startup_packet(params, version=PROTOCOL_3):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(t, payload=b""):
    return t + struct.pack("!I", len(payload) + 4) + payload


def m_query(sql):
    return msg(b"Q", cstr(sql))


def m_parse(name, sql, oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(oids))
               + b"".join(struct.pack("!I", o) for o in oids))


def m_bind(portal, stmt, params=(), result_formats=()):
    p = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for v in params:
        if v is None:
            p += struct.pack("!i", -1)
        else:
            b = v.encode() if isinstance(v, str) else v
            p += struct.pack("!i", len(b)) + b
    p += struct.pack("!H", len(result_formats))
    p += b"".join(struct.pack("!H", f) for f in result_formats)
    return msg(b"B", p)


def m_execute(portal="", maxrows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", maxrows))


def m_describe(kind, name):
    return msg(b"D", kind + cstr(name))


def m_close(kind, name):
    return msg(b"C", kind + cstr(name))


M_SYNC = msg(b"S")
M_FLUSH = msg(b"H")
M_TERMINATE = msg(b"X")


def parse_fields(payload):
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def parse_datarow(payload):
    n = struct.unpack("!H", payload[:2])[0]
    off = 2
    vals = []
    for _ in range(n):
        ln = struct.unpack("!i", payload[off:off + 4])[0]
        off += 4
        if ln < 0:
            vals.append(None)
        else:
            vals.append(payload[off:off + ln].decode())
            off += ln
    return vals


class Scram:
    """Client side of SCRAM-SHA-256 (no channel binding)."""

    def __init__(self, password):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"

    def first(self):
        return ("n,," + self.first_bare).encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise TestFailure("server nonce does not extend the client nonce")
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_server_sig = hmac.new(server_key, auth_msg, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        if base64.b64decode(attrs.get("v", "")) != self.expected_server_sig:
            raise TestFailure("bad SCRAM server signature")


class Wire:
    """A minimal PostgreSQL v3 protocol client over a plain socket."""

    def __init__(self, host, port, timeout=10, trickle=False):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.trickle = trickle      # send one byte at a time
        self.params = {}
        self.backend_key = None
        self.status = None
        self.auth_codes = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        if self.trickle:
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                time.sleep(0.0005)
        else:
            self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed by peer")
            self.buf += chunk

    def read_byte(self):
        self._fill(1)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self):
        self._fill(5)
        t = self.buf[:1]
        ln = struct.unpack("!I", self.buf[1:5])[0]
        self._fill(1 + ln)
        payload = self.buf[5:1 + ln]
        self.buf = self.buf[1 + ln:]
        return t, payload

    def at_eof(self, timeout=3):
        """True if the peer closes within timeout (any pending data is dropped)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # login ----------------------------------------------------------------
    def startup(self, params, version=PROTOCOL_3):
        self.send(startup_packet(params, version))

    def login(self, user, database, password, extra=None):
        params = {"user": user, "database": database}
        params.update(extra or {})
        self.startup(params)
        return self.finish_login(password)

    def finish_login(self, password):
        scram = None
        while True:
            t, p = self.read_msg()
            if t == b"E":
                raise PgError(parse_fields(p))
            if t == b"R":
                code = struct.unpack("!I", p[:4])[0]
                self.auth_codes.append(code)
                if code == 0:
                    continue
                if code == 3:
                    self.send(msg(b"p", cstr(password)))
                elif code == 5:
                    salt = p[4:8]
                    inner = hashlib.md5((password + self.user_for_md5).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(msg(b"p", cstr("md5" + outer)))
                elif code == 10:
                    mechs = [m.decode() for m in p[4:].split(b"\0") if m]
                    if "SCRAM-SHA-256" not in mechs:
                        raise TestFailure(f"no SCRAM-SHA-256 in {mechs}")
                    scram = Scram(password)
                    first = scram.first()
                    self.send(msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!I", len(first))
                                  + first))
                elif code == 11:
                    self.send(msg(b"p", scram.final(p[4:])))
                elif code == 12:
                    scram.verify(p[4:])
                else:
                    raise TestFailure(f"unsupported auth request {code}")
            elif t == b"S":
                k, v, _ = p.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif t == b"K":
                self.backend_key = struct.unpack("!II", p)
            elif t == b"Z":
                self.status = p
                return self
            elif t == b"N":
                continue
            else:
                raise TestFailure(f"unexpected message {t!r} during login")

    user_for_md5 = ""

    # queries --------------------------------------------------------------
    def collect(self, until_ready=1):
        """Read messages until until_ready ReadyForQuery; returns the list."""
        out = []
        seen = 0
        while seen < until_ready:
            try:
                t, p = self.read_msg()
            except (Closed, ConnectionResetError) as e:
                # an error sent just before closing still counts
                for t, p in out:
                    if t == b"E":
                        raise PgError(parse_fields(p)) from e
                raise Closed(str(e)) from e
            out.append((t, p))
            if t == b"Z":
                seen += 1
                self.status = p
        return out

    def query(self, sql):
        """Simple query; returns rows (lists of str). Raises PgError on error."""
        self.send(m_query(sql))
        msgs = self.collect()
        rows = []
        err = None
        for t, p in msgs:
            if t == b"D":
                rows.append(parse_datarow(p))
            elif t == b"E" and err is None:
                err = PgError(parse_fields(p))
        if err:
            raise err
        return rows


def login_wire(host, port, user, database, password, **kw):
    w = Wire(host, port, **kw)
    w.user_for_md5 = user
    try:
        w.login(user, database, password)
    except BaseException:
        w.close()
        raise
    return w


def sqlstate_of_connect(fn):
    """Run fn (which should fail); return the SQLSTATE of the PgError it raised."""
    try:
        r = fn()
    except PgError as e:
        return e.code
    if isinstance(r, Wire):
        r.close()
    raise TestFailure("expected an error, got success")


def send_cancel(host, port, key):
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack("!IIII", 16, CANCEL_REQUEST, key[0], key[1]))
        try:
            s.recv(1)
        except OSError:
            pass


# --------------------------------------------------------------------------
# Helpers shared by the tests
# --------------------------------------------------------------------------

def pgcode_of(fn):
    """Run fn, which must raise a psycopg2 error; return its SQLSTATE."""
    try:
        fn()
    except psycopg2.Error as e:
        return e.pgcode
    raise TestFailure("expected an error, got success")


def run_with_deadline(fn, seconds, what):
    """Run fn in a thread; fail if it takes longer than seconds. Returns its result."""
    box = {}

    def body():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["e"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise TestFailure(f"{what}: no answer within {seconds}s")
    if "e" in box:
        raise box["e"]
    return box.get("r")


class BackendSampler:
    """Samples the number of PostgreSQL client backends of a user every 50 ms."""

    def __init__(self, env, user="app", where=""):
        self.env = env
        self.user = user
        self.where = where
        self.samples = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        c = self.env.pg.connect()
        cur = c.cursor()
        sql = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
               "AND usename = %s " + self.where)
        while not self.stop_ev.is_set():
            cur.execute(sql, (self.user,))
            self.samples.append(cur.fetchone()[0])
            time.sleep(0.05)
        c.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop_ev.set()
        self.thread.join(5)

    @property
    def max(self):
        return max(self.samples) if self.samples else 0


def run_threads(n, fn):
    """Run fn(i) in n threads; return the list of exceptions (as strings)."""
    errors = []

    def body(i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return errors


def pgbench(s, *args, timeout=40):
    try:
        return subprocess.run(["pgbench", *args], env=s.pgenv(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise TestFailure(f"pgbench {' '.join(args)} still running after {timeout}s "
                          f"(hung); output:\n{out[-1000:]}")


def pgbench_stats(out):
    """(tps, failed transactions) from pgbench's report."""
    import re
    m = re.search(r"tps = ([0-9.]+)", out)
    tps = float(m.group(1)) if m else 0.0
    m = re.search(r"number of failed transactions: (\d+)", out)
    failed = int(m.group(1)) if m else 0
    return tps, failed


def killed_client_releases_locks(env, s, marker):
    """A psql holding an exclusive lock inside pg_sleep is killed: the lock and
    the query must be gone within 3 s."""
    env.ensure_pgbench()
    try:
        _killed_client(env, s, marker)
    finally:
        # whatever happened, leave no sleeping lock holder to the next tests
        env.pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE query LIKE '%{marker}%' AND pid <> pg_backend_pid()")


def _killed_client(env, s, marker):
    p = subprocess.Popen(["psql", "-X", "-q"], env=s.pgenv(), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        p.stdin.write("BEGIN;\nLOCK TABLE pgbench_accounts IN ACCESS EXCLUSIVE MODE;\n"
                      f"SELECT '{marker}', pg_sleep(30);\n")
        p.stdin.flush()
        active_sql = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                      f"AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()")
        ok = wait_until(lambda: env.pg.query(active_sql)[0][0] == 1, 10)
        check(ok, "the sleeping query never showed up in pg_stat_activity")
    finally:
        p.kill()
        p.wait()
    t0 = time.time()
    c = s.connect(autocommit=False)
    got = False
    last = None
    while time.time() - t0 < 3.0:
        try:
            c.cursor().execute("LOCK TABLE pgbench_accounts IN ACCESS EXCLUSIVE MODE NOWAIT")
            got = True
            c.rollback()
            break
        except psycopg2.Error as e:
            last = e.pgcode
            c.rollback()
            time.sleep(0.1)
    c.close()
    check(got, f"lock still held 3 s after the client was killed (last SQLSTATE {last})")
    left = wait_until(lambda: env.pg.query(active_sql)[0][0] == 0, max(0.1, 3.0 - (time.time() - t0)))
    check(left, "the killed client's query is still running in PostgreSQL")
    c = s.connect()
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM pgbench_branches")
    check(cur.fetchone()[0] >= 1, "pool unusable after the kill")
    c.close()


def cancel_reaches_own_query(env, s):
    """conn.cancel() interrupts only that client's query."""
    a = s.connect()
    b = s.connect()
    b_result = {}

    def run_b():
        try:
            cur = b.cursor()
            cur.execute("SELECT pg_sleep(1.5), 'b-done'")
            b_result["v"] = cur.fetchone()[1]
        except Exception as e:  # noqa: BLE001
            b_result["e"] = e

    tb = threading.Thread(target=run_b, daemon=True)
    tb.start()
    time.sleep(0.1)
    timer = threading.Timer(0.5, a.cancel)
    timer.start()
    t0 = time.time()
    code = pgcode_of(lambda: a.cursor().execute("SELECT pg_sleep(10)"))
    dt = time.time() - t0
    timer.join()
    check(code == "57014", f"expected SQLSTATE 57014, got {code}")
    check(dt < 2.0, f"cancel took {dt:.1f}s")
    cur = a.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone() == (1,), "client unusable after its query was cancelled")
    tb.join(10)
    check("e" not in b_result, f"the other client was hit: {b_result.get('e')!r}")
    check(b_result.get("v") == "b-done", "the other client got no result")
    a.close()
    b.close()


def under_asan(s):
    """Is this sluice built with AddressSanitizer (make asan)? Its quarantine
    keeps freed memory and its checks cost CPU: RSS and CPU bounds say
    nothing there."""
    with open(f"/proc/{s.proc.pid}/maps") as f:
        return any("libasan" in line for line in f)


def error_or_close(w, timeout=3):
    """Read until an ErrorResponse or EOF: ('E', its fields), ('closed', None)
    or ('timeout', None)."""
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


def admin_rows(s, sql, user="admin"):
    """The rows of an admin console command on sluice <s>, as dicts."""
    c = s.connect(user=user, dbname="sluice")
    try:
        cur = c.cursor()
        cur.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()
