"""Differential check (issue 12): an application cannot tell sluice from
PostgreSQL. Every script of tests/differential/ runs with psql straight
against PostgreSQL and through sluice in session mode, with the same psql
flags and environment; the two outputs must be the same byte for byte once
what must differ between two sessions is masked. Scripts marked
`-- sluice: transaction` also run through sluice in transaction mode with
pin_session_state = on, where they must match as well.

Besides the scripts: a psycopg2 and a node-postgres transcript
(tests/differential/drivers/) and a raw wire-protocol transcript
(WIRE_STEPS), compared the same way. In session mode a client first leaves
its server dirty in ways the reset undoes (PREDECESSOR_SQL), so the script
runs on a reused server; in transaction mode two neighbour clients share
the small pool and check that none of the script's session state reaches
them (Neighbours).

One test per script and mode (differential.session.temp, ...), so that a
failure names the area and shows its unified diff. SLUICE_DIFF_OUT=dir
keeps both outputs of each."""
import difflib
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import psycopg2

from harness import (M_FLUSH, M_SYNC, M_TERMINATE, Skip, TestFailure, login_wire, m_bind,
                     m_close, m_describe, m_execute, m_parse, m_query, msg, test)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(os.path.dirname(HERE), "differential")
DRIVERS = os.path.join(CORPUS, "drivers")
NODE_DIR = os.path.join(REPO, "tests", "drivers", "node")

# The only things masked, each because it differs between two sessions of
# the same PostgreSQL whoever is in between:
# - backend pids (psql's notification lines, PostgreSQL's "PID n" in
#   messages, and the scripts' own `\echo pid :x`). Each distinct pid
#   becomes a token numbered by first appearance, so a pid that must equal
#   an earlier one (a notification from ourselves, pg_backend_pid() later
#   in the session) still has to.
# - the number in a temporary schema's name (pg_temp_3), which is the
#   backend's slot and depends on what else is connected.
PID_RE = re.compile(r"\b(PID|pid) (\d+)\b")
TEMP_SCHEMA_RE = re.compile(r"\bpg_(toast_)?temp_\d+\b")


def mask(text):
    tokens = {}

    def pid(m):
        tok = tokens.setdefault(m.group(2), f"<pid{len(tokens) + 1}>")
        return f"{m.group(1)} {tok}"

    text = PID_RE.sub(pid, text)
    return TEMP_SCHEMA_RE.sub(lambda m: f"pg_{m.group(1) or ''}temp_<n>", text)


def script_marks(path):
    """The `-- sluice: word` marks in a script's opening comment lines."""
    marks = set()
    with open(path) as f:
        for line in f:
            if not line.startswith("--"):
                break
            m = re.match(r"--\s*sluice:\s*(.+?)\s*$", line)
            if m:
                marks.add(m.group(1))
    return marks


def psql_env(port, extra=None):
    """The same environment both ways but for the port: a fixed locale and
    client encoding, nothing from the caller's PG* variables, and the
    script's own `-- sluice: env NAME=VALUE` marks (<extra>)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8", PGHOST="127.0.0.1", PGPORT=str(port),
               PGUSER="app", PGDATABASE="app", PGPASSWORD="app", PGSSLMODE="disable",
               PGCLIENTENCODING="UTF8", PGCONNECT_TIMEOUT="10", TZ="UTC")
    env.update(extra or {})
    return env


def script_env(marks):
    """NAME=VALUE of each `env NAME=VALUE` mark."""
    return dict(m[4:].split("=", 1) for m in marks if m.startswith("env ") and "=" in m)


def run_psql(path, port):
    """Run a script with psql; stdout and stderr in one stream, stdout
    unbuffered so that errors and notices stay where they happened."""
    r = subprocess.run(["stdbuf", "-o0", "-e0", "psql", "-X", "-a", "-v", "ON_ERROR_STOP=0",
                        "-f", path],
                       env=psql_env(port, script_env(script_marks(path))),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return r.stdout.decode("utf-8", "backslashreplace")


def cleanup(env):
    """Leave the app database as a script expects to find it, so that each
    run starts alike even after one that failed half way."""
    c = env.pg.connect(dbname="app")
    cur = c.cursor()
    cur.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'diff\\_%'")
    for (gid,) in cur.fetchall():
        cur.execute(f"ROLLBACK PREPARED '{gid}'")
    cur.execute("SELECT format('DROP %s IF EXISTS %I.%I CASCADE', "
                "CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, "
                "n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname LIKE 'diff\\_%' AND c.relkind IN ('r', 'S', 'v') "
                "AND n.nspname NOT LIKE 'pg\\_%'")
    for (sql,) in cur.fetchall():
        cur.execute(sql)
    cur.execute("DROP SCHEMA IF EXISTS diff_sp CASCADE")
    # roles.sql's role, which app may SET ROLE to
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'diff_member'")
    if not cur.fetchall():
        cur.execute("CREATE ROLE diff_member NOLOGIN")
        cur.execute("GRANT diff_member TO app")
    for proc in ("diff_proc(int)", "diff_inout(int, text)", "diff_fail()"):
        cur.execute(f"DROP PROCEDURE IF EXISTS {proc}")
    cur.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata "
                "WHERE oid BETWEEN 917000 AND 917999")
    c.close()


def set_prepared_transactions(env, n):
    """Restart PostgreSQL with max_prepared_transactions = <n> unless it
    has it already (it can only change at server start). Ends the current
    sluice first, whose servers the restart would cut."""
    if env.pg.query("SHOW max_prepared_transactions")[0][0] == str(n):
        return
    env.drop_sluice()
    if n:
        env.pg.query(f"ALTER SYSTEM SET max_prepared_transactions = {n}")
    else:
        env.pg.query("ALTER SYSTEM RESET max_prepared_transactions")
    env.pg.stop()
    env.pg.start()


# What a transaction-mode client must never find on the server it lands
# on: another client's session state. One row, compared with the first.
STATE_SQL = """
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_objects,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema()) AS temp_functions,
       (SELECT count(*) FROM pg_listening_channels()) AS listening,
       (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')
         AS advisory_locks,
       (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS sql_prepared,
       (SELECT count(*) FROM pg_cursors) AS cursors,
       current_user, session_user,
       current_setting('DateStyle') AS datestyle, current_setting('IntervalStyle') AS intervalstyle,
       current_setting('TimeZone') AS timezone, current_setting('search_path') AS search_path,
       current_setting('statement_timeout') AS statement_timeout,
       current_setting('client_min_messages') AS client_min_messages,
       current_setting('work_mem') AS work_mem, current_setting('lock_timeout') AS lock_timeout,
       current_setting('enable_seqscan') AS enable_seqscan,
       current_setting('application_name') AS application_name,
       current_setting('client_encoding') AS client_encoding,
       current_setting('default_transaction_isolation') AS isolation
"""


# Session mode: what the client before leaves on its server, all of it
# undone by the reset (DISCARD ALL), so that sluice keeps the server and
# hands it to the script's client, whose output must still be that of a
# brand-new backend. (State that makes sluice close the server instead,
# temporary objects, LISTEN, locks, is the scripts' own business.)
PREDECESSOR_SQL = """
SET ROLE diff_member;
SET work_mem = '1234kB';
SET search_path = pg_catalog;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SET DateStyle = 'German';
SET IntervalStyle = sql_standard;
SET TimeZone = 'Pacific/Chatham';
SET extra_float_digits = 0;
SET statement_timeout = '1min';
SET client_min_messages = error;
SET application_name = 'diff predecessor';
SET client_encoding = 'LATIN1';
SET standard_conforming_strings = off;
PREPARE diff_pre AS SELECT 1;
DECLARE diff_pre_c CURSOR WITH HOLD FOR SELECT 1;
SELECT pg_backend_pid();
"""


def predecessor(port):
    """Run PREDECESSOR_SQL through sluice and leave; its pid."""
    r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"],
                       input=PREDECESSOR_SQL.encode(), env=psql_env(port),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    text = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        raise TestFailure(f"the predecessor client failed:\n{text}")
    return int(text.split()[-1])


class Neighbours:
    """Transaction-mode clients that run beside the script on the same
    small pool, so that the script's transactions move between servers
    unless it is pinned, and that check on every server they land on that
    nothing of the script's session state reached them."""

    def __init__(self, s, n=2):
        self.s = s
        self.n = n
        self.stop = threading.Event()
        self.leaks = []
        self.errors = []
        self.queries = 0
        self.ready = threading.Semaphore(0)
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]

    def run(self):
        try:
            c = self.s.connect(application_name="diff neighbour")
            cur = c.cursor()
            cur.execute(STATE_SQL)
            cols = [d[0] for d in cur.description]
            first = cur.fetchone()
            self.ready.release()
            while not self.stop.is_set():
                cur.execute(STATE_SQL)
                row = cur.fetchone()
                self.queries += 1
                if row != first:
                    self.leaks.append(", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b
                                                in zip(cols, first, row) if a != b))
                    first = row
                time.sleep(0.002)
            c.close()
        except psycopg2.Error as e:
            self.errors.append(repr(e))
            self.ready.release()

    def __enter__(self):
        for t in self.threads:
            t.start()
        # the script starts once every neighbour is logged in and running
        for _ in self.threads:
            if not self.ready.acquire(timeout=20):
                raise TestFailure("a neighbour client did not log in within 20 s")
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def compare(env, name, path, mode):
    """Run psql script <path> straight and through sluice in <mode>."""
    marks = script_marks(path)
    differ(env, f"{name}.sql", lambda port: mask(run_psql(path, port)), mode,
           "needs max_prepared_transactions" in marks)


def differ(env, what, runner, mode, two_phase=False):
    """<runner>(port) gives an output; it must be the same straight
    against PostgreSQL and through a sluice in pool mode <mode>."""
    name = what
    if two_phase:
        set_prepared_transactions(env, 10)
    try:
        cleanup(env)
        direct = runner(env.pg.port)
        settings = {"pool_mode": mode}
        if mode == "transaction":
            settings.update(pin_session_state="on", default_pool_size="4")
        s = env.sluice(settings=settings)
        cleanup(env)
        if mode == "transaction":
            with Neighbours(s) as nb:
                through = runner(s.port)
            if nb.errors or nb.leaks:
                raise TestFailure(f"{name} in transaction mode: clients beside it saw "
                                  f"errors {nb.errors[:3]} and its state: {nb.leaks[:5]}")
            if nb.queries < 2 * nb.n:
                raise TestFailure(f"the clients beside {name}.sql ran only {nb.queries} queries")
        else:
            pid = predecessor(s.port)
            # it has to be reset and kept, not closed, to mean anything:
            # then it is the warmest idle server, the one the next client
            # with the same startup parameters gets
            time.sleep(0.2)
            kept = env.pg.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if kept[0][0] != 1:
                raise TestFailure(f"sluice closed the predecessor's server {pid} instead "
                                  "of resetting it")
            through = runner(s.port)
    finally:
        if two_phase:
            cleanup(env)
            set_prepared_transactions(env, 0)
    keep = os.environ.get("SLUICE_DIFF_OUT")
    if keep:
        # to read the outputs themselves: SLUICE_DIFF_OUT=/some/dir
        os.makedirs(keep, exist_ok=True)
        for who, text in (("postgresql", direct), (f"sluice-{mode}", through)):
            with open(os.path.join(keep, f"{name}.{who}.out"), "w") as f:
                f.write(text)
    if not direct or direct.startswith("psql: error:"):
        raise TestFailure(f"{name} did not run directly:\n{direct[:2000]}")
    if direct != through:
        diff = list(difflib.unified_diff(direct.splitlines(), through.splitlines(),
                                         "postgresql", f"sluice ({mode} mode)", lineterm="", n=3))
        shown = "\n".join(diff[:200])
        more = f"\n... {len(diff) - 200} more diff lines" if len(diff) > 200 else ""
        raise TestFailure(f"{name}: output through sluice in {mode} mode differs from "
                          f"PostgreSQL's:\n{shown}{more}")


def run_driver(cmd, port, mode, extra_env=None):
    """A driver transcript: the program's stdout and stderr."""
    env = psql_env(port)
    env["DIFF_MODE"] = mode
    env.update(extra_env or {})
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120, cwd=REPO)
    text = r.stdout.decode("utf-8", "backslashreplace")
    if r.returncode != 0 or not text.endswith("done\n"):
        raise TestFailure(f"{' '.join(cmd)} exited with {r.returncode} on port {port}:\n"
                          f"{text[-3000:]}")
    return text


def node_modules():
    """tests/drivers/node/node_modules, installed with npm ci if missing."""
    nm = os.path.join(NODE_DIR, "node_modules")
    if not os.path.isdir(nm):
        npm = shutil.which("npm")
        if npm is None:
            raise Skip("node_modules missing and npm not installed")
        r = subprocess.run([npm, "ci", "--prefix", NODE_DIR, "--no-audit", "--no-fund"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise TestFailure(f"npm ci failed: {r.stdout[-1000:]}")
    return nm


def driver_psycopg2(env, mode):
    script = os.path.join(DRIVERS, "psycopg2_transcript.py")
    differ(env, "psycopg2 transcript",
           lambda port: mask(run_driver(["/usr/bin/python3", script], port, mode)), mode)


def driver_node(env, mode):
    node = shutil.which("node")
    if node is None:
        raise Skip("node is not installed")
    nm = node_modules()
    script = os.path.join(DRIVERS, "node_transcript.js")
    differ(env, "node-postgres transcript",
           lambda port: mask(run_driver([node, script], port, mode, {"NODE_PATH": nm})), mode)


# The wire protocol itself, message by message: each step is what a
# driver may send (pipelines, named and unnamed statements and portals,
# portal suspension, Flush, errors in the middle of a pipeline, COPY in
# both protocols, a fast-path FunctionCall) and, as a count of
# ReadyForQuery or of messages after a Flush, how much answer it waits for.
def fn_call(oid, *args):
    """FunctionCall of function <oid> with int4 arguments, binary result."""
    p = struct.pack("!IHHH", oid, 1, 1, len(args))
    for a in args:
        p += struct.pack("!ii", 4, a)
    return msg(b"F", p + struct.pack("!H", 1))


WIRE_STEPS = [
    ("simple query", m_query("SELECT 1 AS one, 'two'::text AS two"), 1),
    ("empty simple query", m_query(""), 1),
    ("simple batch with an error", m_query("SELECT 1; SELECT 1/0; SELECT 3"), 1),
    ("unnamed statement", m_parse("", "SELECT $1::int + 1 AS n", [23])
     + m_bind("", "", ["41"]) + m_describe(b"P", "") + m_execute("") + M_SYNC, 1),
    ("describe a statement", m_parse("", "SELECT $1::text, $2::numeric", [0, 0])
     + m_describe(b"S", "") + M_SYNC, 1),
    ("named statement", m_parse("diff_s1", "SELECT $1::text || '!' AS shout")
     + m_describe(b"S", "diff_s1") + M_SYNC, 1),
    ("execute it twice", m_bind("", "diff_s1", ["a"]) + m_execute("")
     + m_bind("", "diff_s1", ["b"]) + m_execute("") + M_SYNC, 1),
    # a name already in use: 42P05, the rest skipped up to Sync, and the
    # name keeps its first text (in transaction mode sluice keeps the
    # client's names itself; its error lacks PostgreSQL's source file and
    # line, which sluice cannot know, so those two fields are not shown)
    ("parse the same name again", m_parse("diff_s1", "SELECT 2") + m_bind("", "diff_s1", ["x"])
     + m_execute("") + M_SYNC, 1, "no file"),
    ("the name keeps its first text", m_bind("", "diff_s1", ["kept"]) + m_execute("") + M_SYNC,
     1),
    ("the same in a block", m_query("BEGIN") + m_parse("diff_s1", "SELECT 3") + M_SYNC
     + m_query("SELECT 1") + m_query("ROLLBACK"), 4, "no file"),
    ("and without a server in between", m_parse("diff_s1", "SELECT $1::text || '!' AS shout")
     + M_SYNC, 1, "no file"),
    ("a named Parse that fails defines nothing", m_parse("diff_bad", "SELECT nosuch") + M_SYNC, 1),
    ("so the name can be parsed again", m_parse("diff_bad", "SELECT 'ok' AS v")
     + m_bind("", "diff_bad") + m_execute("") + M_SYNC, 1),
    ("nor does one skipped after an error", m_parse("", "SELECT 1/0") + m_bind("", "")
     + m_execute("") + m_parse("diff_skipped", "SELECT 1") + M_SYNC, 1),
    ("which is then free", m_parse("diff_skipped", "SELECT 2 AS two")
     + m_bind("", "diff_skipped") + m_execute("") + M_SYNC, 1),
    ("close it, and one that does not exist",
     m_close(b"S", "diff_s1") + m_close(b"S", "diff_nosuch") + M_SYNC, 1),
    ("use the closed one", m_bind("", "diff_s1", ["c"]) + m_execute("") + M_SYNC, 1),
    ("describe one that does not exist", m_describe(b"S", "diff_nosuch") + M_SYNC, 1),
    ("error in the middle of a pipeline",
     m_parse("", "SELECT 1") + m_bind("", "") + m_execute("")
     + m_parse("", "SELECT nosuch") + m_bind("", "") + m_execute("")
     + m_parse("", "SELECT 3") + m_bind("", "") + m_execute("") + M_SYNC, 1),
    ("two statements in one Parse", m_parse("", "SELECT 1; SELECT 2") + M_SYNC, 1),
    ("wrong parameter count", m_parse("", "SELECT $1::int") + m_bind("", "", ["1", "2"])
     + M_SYNC, 1),
    ("bad parameter value", m_parse("", "SELECT $1::int") + m_bind("", "", ["x"]) + M_SYNC, 1),
    ("portal suspended", m_parse("", "SELECT g FROM generate_series(1, 5) g")
     + m_bind("diff_p", "") + m_execute("diff_p", 2) + m_execute("diff_p", 2)
     + m_execute("diff_p", 2) + M_SYNC, 1),
    ("portal gone after sync", m_execute("diff_p", 1) + M_SYNC, 1),
    ("portal across syncs in a block", m_query("BEGIN")
     + m_parse("", "SELECT g FROM generate_series(1, 4) g") + m_bind("diff_p2", "")
     + m_execute("diff_p2", 3) + M_SYNC, 2),
    ("rest of it", m_execute("diff_p2", 0) + m_close(b"P", "diff_p2") + M_SYNC, 1),
    ("error in the block", m_parse("", "SELECT 1/0") + m_bind("", "") + m_execute("")
     + M_SYNC, 1),
    ("statement in the failed block", m_query("SELECT 1"), 1),
    ("end of the failed block", m_query("COMMIT"), 1),
    ("empty extended query", m_parse("", "") + m_bind("", "") + m_execute("") + M_SYNC, 1),
    ("sync alone", M_SYNC, 1),
    ("notice in extended", m_parse("", "DO $$ BEGIN RAISE NOTICE 'hi'; END $$")
     + m_bind("", "") + m_execute("") + M_SYNC, 1),
    ("set through extended", m_parse("", "SET application_name = 'diff wire'")
     + m_bind("", "") + m_execute("") + M_SYNC, 1),
    ("table for the copies", m_query("CREATE TABLE diff_wire (a int, b text)"), 1),
    ("copy in", m_query("COPY diff_wire (a, b) FROM STDIN"),
     ("copy", msg(b"d", b"1\tone\n2\ttwo\n") + msg(b"c"))),
    ("copy in failed by the client", m_query("COPY diff_wire (a, b) FROM STDIN"),
     ("copy", msg(b"d", b"3\tthree\n") + msg(b"f", b"diff gave up\0"))),
    ("copy in with a bad row", m_query("COPY diff_wire (a, b) FROM STDIN"),
     ("copy", msg(b"d", b"x\tbad\n") + msg(b"c"))),
    ("rows copied", m_query("SELECT * FROM diff_wire ORDER BY a"), 1),
    ("copy out in extended", m_parse("", "COPY (SELECT 1, 'x') TO STDOUT")
     + m_bind("", "") + m_execute("") + M_SYNC, 1),
    ("named statement over the table", m_parse("diff_s2", "SELECT * FROM diff_wire")
     + m_bind("", "diff_s2") + m_execute("") + M_SYNC, 1),
    ("table changed", m_query("ALTER TABLE diff_wire ADD COLUMN c int"), 1),
    # session mode only: in transaction mode sluice prepares the statement
    # anew after DDL, and a client that never described it gets rows of
    # the new shape instead of 0A000 (README)
    ("statement after the change", m_bind("", "diff_s2") + m_execute("") + M_SYNC, 1,
     "session"),
    ("fast-path call of int4pl", fn_call(177, 40, 2), 1),
    ("fast-path call of a missing function", fn_call(4000000000, 1), 1),
    ("flush", m_parse("diff_s3", "SELECT 3") + M_FLUSH, "1 message"),
    ("sync after flush", m_bind("", "diff_s3") + m_execute("") + M_SYNC, 1),
    ("close all", m_query("DEALLOCATE ALL"), 1),
    ("gone", m_bind("", "diff_s3") + m_execute("") + M_SYNC, 1),
    ("drop the table", m_query("DROP TABLE diff_wire"), 1),
]
def wire_transcript(port, mode):
    """Every message PostgreSQL (or sluice) sends back to each step, one
    line each; a notification's pid and a RowDescription's table OID (the
    table is made anew each run) as tokens, like the psql masks."""
    w = login_wire("127.0.0.1", port, "app", "app", "app")
    lines = []
    oids = {}
    try:
        w.settimeout(20)
        for what, data, wait, *only in WIRE_STEPS:
            if only and only[0] in ("session", "transaction") and only[0] != mode:
                continue
            first = len(lines)
            wire_step(w, lines, what, data, wait, oids)
            if only and only[0] == "no file":
                lines[first:] = [re.sub(r"\\x00F[^\\]*\\x00L\d+", "", ln) if ln.startswith("E ")
                                 else ln for ln in lines[first:]]
        w.send(M_TERMINATE)
        lines.append(f"closed after Terminate: {w.at_eof(5)}")
    except (OSError, socket.timeout) as e:
        lines.append(f"connection: {e!r}")
    finally:
        w.close()
    return mask("\n".join(lines) + "\n")


def wire_step(w, lines, what, data, wait, oids):
    lines.append(f"-- {what}")
    w.send(data)
    if wait == "1 message":
        wire_line(lines, *w.read_msg(), oids)
    elif isinstance(wait, tuple):
        # COPY FROM STDIN: the rest (data, then CopyDone or CopyFail) once
        # the server asked for it
        t, p = w.read_msg()
        wire_line(lines, t, p, oids)
        if t == b"G":
            w.send(wait[1])
        wire_read(w, lines, 1, oids)
    else:
        wire_read(w, lines, wait, oids)


def wire_read(w, lines, ready, oids):
    seen = 0
    while seen < ready:
        t, p = w.read_msg()
        wire_line(lines, t, p, oids)
        if t == b"Z":
            seen += 1


def wire_line(lines, t, p, oids):
    """One message as a line; all of its bytes but the masked fields."""
    if t == b"A":
        pid = struct.unpack("!I", p[:4])[0]
        lines.append(f"A pid {pid} {p[4:]!r}")
    elif t == b"T":
        n = struct.unpack("!H", p[:2])[0]
        off, cols = 2, []
        for _ in range(n):
            end = p.index(b"\0", off)
            name = p[off:end]
            table, attnum, typ, size, mod, fmt = struct.unpack("!IhIhiH", p[end + 1:end + 19])
            off = end + 19
            if table:
                table = oids.setdefault(table, f"<table{len(oids) + 1}>")
            cols.append((name, table, attnum, typ, size, mod, fmt))
        lines.append(f"T {cols!r} {p[off:]!r}")
    else:
        lines.append(f"{t.decode()} {p!r}")


def register():
    for fname in sorted(os.listdir(CORPUS)):
        if not fname.endswith(".sql"):
            continue
        name = fname[:-4]
        path = os.path.join(CORPUS, fname)
        modes = ["session"]
        if "transaction" in script_marks(path):
            modes.append("transaction")
        for mode in modes:
            def fn(env, name=name, path=path, mode=mode):
                compare(env, name, path, mode)
            test(f"differential.{mode}.{name}", timeout=120)(fn)
    for mode in ("session", "transaction"):
        test(f"differential.{mode}.wire", timeout=120)(
            lambda env, mode=mode: differ(env, "wire transcript",
                                          lambda port: wire_transcript(port, mode), mode))
        test(f"differential.{mode}.driver_psycopg2", timeout=120)(
            lambda env, mode=mode: driver_psycopg2(env, mode))
        test(f"differential.{mode}.driver_node", timeout=180)(
            lambda env, mode=mode: driver_node(env, mode))


register()
