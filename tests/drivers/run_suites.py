#!/usr/bin/python3
"""Drivers' own test suites, run directly against PostgreSQL and through sluice.

    /usr/bin/python3 tests/drivers/run_suites.py --sluice ./sluice [-k suite] [--modes ...]

No one on the team wrote these tests: they are the suites node-postgres'
packages (pg-cursor, pg-pool, pg-query-stream, pg-copy-streams) and
@databases/pg ship inside their npm tarballs, pinned in suites/package.json
and installed with `npm ci` into suites/node_modules (the only step that
needs the npm registry). The runner starts a throwaway PostgreSQL 15 with
tests/integration/harness.py, runs every suite straight against it, then
through sluice in session mode and in transaction mode, each run in a
database of its own, and prints per suite and mode the tests run, passed,
and those whose outcome differs from the direct run (with the failure).
Each differing test is run alone again, directly and in its mode: one
whose outcome then varies is reported as flaky (the suites time some
things to 100-200 ms on a machine that may be busy).
Exit status 1 if a test differs that pooling does not explain (KNOWN), 2
if the setup failed.

What the differences mean, and the ones pooling explains, is in README.md
("Drivers' own test suites").
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402

SUITES_DIR = os.path.join(HERE, "suites")
NODE_MODULES = os.path.join(SUITES_DIR, "node_modules")
WORK = os.path.join(SUITES_DIR, ".work")

# the role the suites run as: several of them create roles, schemas and
# extensions as they would on a developer's own PostgreSQL
USER, PASSWORD = "drv", "drv"
# roles the suites create themselves and then log in as
SUITE_ROLES = {"too_many_connections": "test_password"}
MODES = ["direct", "session", "transaction"]
# each differing test is run again alone this many times, directly and in
# the mode it differed in: one whose outcome then varies is timing-dependent
# ("flaky"), not a difference (the suites have 100 ms windows, on a shared
# machine)
RERUNS = 2
# Differences that pooling explains, each with its reason (README.md,
# "Drivers' own test suites"): reported as known, not failing the run.
KNOWN = {
    ("@databases/pg", "transaction",
     "too-many-connections-for-role.test.pg.js: Handling too many connections for role"):
        "clients share the pool's servers, so they wait for one instead of meeting "
        "the role's CONNECTION LIMIT (53300) the test expects some to meet",
}
# test name -> (file, title) to run it alone
ONLY = {}
# sluice's settings per mode beyond the pool mode. In transaction mode a
# startup parameter sluice does not carry over is refused at login, and
# the error says to name it in track_extra_parameters: @databases/pg sets
# these three at connect, so the suites run as a user would after reading it
MODE_SETTINGS = {
    "session": {},
    "transaction": {"track_extra_parameters":
                    "lock_timeout, idle_in_transaction_session_timeout, statement_timeout"},
}


class Suite:
    def __init__(self, name, kind, pkg, files=None, cmd=None, timeout=600):
        self.name = name
        self.kind = kind          # mocha, jest or script
        self.pkg = pkg            # directory under node_modules
        self.files = files        # mocha: globs, relative to the package
        self.cmd = cmd            # script: the command, run in the package
        self.timeout = timeout

    @property
    def dir(self):
        return os.path.join(NODE_MODULES, self.pkg)

    def slug(self):
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


SUITES = [
    Suite("pg-cursor", "mocha", "pg-cursor", ["test/*.js"]),
    Suite("pg-pool", "mocha", "pg-pool", ["test/*.js"]),
    Suite("pg-query-stream", "mocha", "pg-query-stream", ["test/*.js"]),
    # plain scripts whose checks throw: one outcome per script, its exit status
    Suite("pg-copy-streams", "script", "pg-copy-streams",
          cmd=[["node", f"test/{f}.js"] for f in ("copy-from", "copy-to", "binary")],
          timeout=30),
    Suite("@databases/pg", "jest", "@databases/pg"),
]


def npm_install():
    """node_modules as package-lock.json pins it: `npm ci` unless an install
    of this very lock file is there already."""
    lock = os.path.join(SUITES_DIR, "package-lock.json")
    stamp = os.path.join(NODE_MODULES, ".sluice-lock")
    with open(lock, "rb") as f:
        want = f.read()
    try:
        with open(stamp, "rb") as f:
            if f.read() == want:
                return
    except OSError:
        pass
    print("npm ci in tests/drivers/suites (needs the npm registry)", flush=True)
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SUITES_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"npm ci failed:\n{r.stdout[-3000:]}")
    with open(stamp, "wb") as f:
        f.write(want)


def first_line(text, n=200):
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line[:n]


def run_mocha(suite, env, out, only=None):
    if only:
        rel = [os.path.relpath(only[0], suite.dir), "--fgrep", only[1]]
    else:
        files = []
        for g in suite.files:
            files += sorted(glob.glob(os.path.join(suite.dir, g)))
        rel = [os.path.relpath(f, suite.dir) for f in files]
    cmd = [os.path.join(NODE_MODULES, ".bin", "mocha"), "--reporter", "json",
           "--reporter-option", f"output={out}", "--timeout", "10000", "--exit", *rel]
    return cmd, suite.dir


def parse_mocha(out):
    with open(out) as f:
        d = json.load(f)
    res = {}
    for kind, key in (("passed", "passes"), ("failed", "failures"), ("pending", "pending")):
        for t in d.get(key, []):
            name = f"{os.path.basename(t.get('file') or '?')}: {t['fullTitle']}"
            err = t.get("err") or {}
            # a hook failure and a test failure of the same name stay one
            if name in res and res[name][0] == "failed":
                continue
            res[name] = (kind, first_line(err.get("message", "")))
            ONLY[name] = (t.get("file"), t["fullTitle"])
    return res


def run_jest(suite, env, out, only=None):
    # jest never collects tests below node_modules; a copy of the package
    # beside it resolves its dependencies from suites/node_modules all the same
    dst = os.path.join(WORK, suite.slug())
    if not only:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(suite.dir, dst)
    cmd = [os.path.join(NODE_MODULES, ".bin", "jest"), "--rootDir", dst, "--runInBand",
           "--ci", "--json", f"--outputFile={out}", "--testRegex", r"\.test\.pg\.js$",
           "--testTimeout", "30000", "--forceExit"]
    if only:
        cmd += ["--testPathPattern", re.escape(os.path.basename(only[0])),
                "-t", "^" + re.escape(only[1]) + "$"]
    return cmd, dst


def parse_jest(out):
    with open(out) as f:
        d = json.load(f)
    res = {}
    for fr in d.get("testResults", []):
        base = os.path.basename(fr.get("name", "?"))
        results = fr.get("assertionResults", [])
        if not results:
            # the file failed before any test ran (a beforeAll, a require)
            res[f"{base}: (file)"] = ("failed", first_line(fr.get("message", "")))
        for t in results:
            status = {"passed": "passed", "failed": "failed"}.get(t["status"], "pending")
            msg = first_line("\n".join(t.get("failureMessages") or []))
            res[f"{base}: {t['fullName']}"] = (status, msg)
            ONLY[f"{base}: {t['fullName']}"] = (fr.get("name"), t["fullName"])
    return res


def run_suite(suite, mode, port, dbname, logdir, only=None):
    """Run <suite> (or only the test <only> names, as (file, title)) against
    127.0.0.1:<port>/<dbname>; returns {test: (outcome, message)}, the time
    it took and the path of its output log."""
    url = f"postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/{dbname}"
    env = dict(os.environ)
    env.pop("PGSERVICE", None)
    env.update(PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=USER, PGPASSWORD=PASSWORD,
               PGDATABASE=dbname, PGSSLMODE="disable", DATABASE_URL=url, PG_URL=url,
               NODE_ENV="test", CI="1", FORCE_COLOR="0", TZ=os.environ.get("TZ", "UTC"))
    tag = f"{suite.slug()}.{mode}" + (".rerun" if only else "")
    out = os.path.join(logdir, f"{tag}.json")
    log = os.path.join(logdir, f"{tag}.log")
    for f in (out, log):
        if os.path.exists(f):
            os.unlink(f)
    t0 = time.time()
    if suite.kind == "script":
        res = {}
        for cmd in suite.cmd:
            name = f"{suite.name}: {' '.join(cmd)}"
            if only and only != name:
                continue
            rc = run_logged(cmd, suite.dir, env, log, suite.timeout)
            res[name] = ("passed", "") if rc == 0 else \
                ("failed", f"exit status {rc}; " + harness.tail(log, 3).replace("\n", " | "))
        return res, time.time() - t0, log
    if suite.kind == "mocha":
        cmd, cwd = run_mocha(suite, env, out, only)
    else:
        cmd, cwd = run_jest(suite, env, out, only)
    rc = run_logged(cmd, cwd, env, log, suite.timeout)
    took = time.time() - t0
    try:
        res = parse_mocha(out) if suite.kind == "mocha" else parse_jest(out)
    except (OSError, ValueError) as e:
        res = {f"{suite.name}: (report)": ("failed", f"no report ({e}); exit status {rc}; "
                                          + harness.tail(log, 3).replace("\n", " | "))}
    if rc == "timeout":
        res[f"{suite.name}: (run)"] = ("failed", f"still running after {suite.timeout}s")
    return res, took, log


def run_logged(cmd, cwd, env, log, timeout):
    """Run <cmd>, its output appended to <log>; its exit status or "timeout"."""
    with open(log, "a") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        try:
            return subprocess.run(cmd, cwd=cwd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return "timeout"


def make_roles(pg):
    c = pg.connect()
    cur = c.cursor()
    cur.execute("SET password_encryption = 'scram-sha-256'")
    cur.execute(f"CREATE ROLE {USER} SUPERUSER LOGIN PASSWORD %s", (PASSWORD,))
    c.close()


def fresh_database(pg, dbname):
    """An empty database <dbname> owned by the suites' role, and none of the
    roles a suite made in an earlier run (they are cluster-wide)."""
    c = pg.connect()
    cur = c.cursor()
    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
    cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    for role in SUITE_ROLES:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchall():
            continue
        cur.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")
        for (db,) in cur.fetchall():
            d = pg.connect(dbname=db)
            try:
                d.cursor().execute(f"DROP OWNED BY {role}")
            finally:
                d.close()
        cur.execute(f"DROP ROLE {role}")
    cur.execute(f'CREATE DATABASE "{dbname}" OWNER {USER}')
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True, help="path to the sluice binary")
    ap.add_argument("-k", dest="pattern", default=None, help="only suites whose name contains this")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated: direct,session,transaction (direct always runs)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", default=None, help="write every outcome to this file")
    args = ap.parse_args()
    modes = ["direct"] + [m for m in args.modes.split(",") if m and m != "direct"]
    suites = [s for s in SUITES if not args.pattern or args.pattern in s.name]
    if not suites:
        print(f"no suite matches {args.pattern!r}")
        return 2
    try:
        npm_install()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"cannot install the suites: {e}")
        return 2
    os.makedirs(WORK, exist_ok=True)
    env = harness.Env(os.path.abspath(args.sluice), keep=args.keep)
    results = {}
    reruns = {}
    try:
        env.setup()
        make_roles(env.pg)
        logdir = os.path.join(WORK, "logs")
        os.makedirs(logdir, exist_ok=True)
        userlist = {USER: PASSWORD, **SUITE_ROLES}
        for mode in modes:
            sl = None
            if mode != "direct":
                dbs = {f"{s.slug()}_{mode}": f"host=127.0.0.1 port=PGPORT dbname={s.slug()}_{mode}"
                       for s in suites}
                for db in dbs:
                    fresh_database(env.pg, db)
                sl = env.sluice(settings={"pool_mode": mode, "min_pool_size": "0",
                                          "default_pool_size": "20", **MODE_SETTINGS[mode]},
                                databases=dbs, userlist=userlist, fresh=True)
            for s in suites:
                dbname = f"{s.slug()}_{mode}"
                if mode == "direct":
                    fresh_database(env.pg, dbname)
                port = env.pg.port if sl is None else sl.port
                res, took, log = run_suite(s, mode, port, dbname, logdir)
                results[(s.name, mode)] = res
                npass = sum(1 for o, _ in res.values() if o == "passed")
                print(f"{s.name} [{mode}]: {len(res)} tests, {npass} passed ({took:.0f}s)",
                      flush=True)
                if mode != "direct":
                    reruns[(s.name, mode)] = rerun_differences(
                            env, s, mode, sl.port, logdir, results[(s.name, "direct")], res)
            if sl is not None:
                if not sl.alive():
                    print(f"sluice exited during the {mode} run; log tail:\n{sl.log_tail(25)}")
                env.drop_sluice()
    finally:
        env.teardown()
        for p in env.shutdown_problems:
            print(f"shutdown of {p[0]}: {p[1]}\n{p[2]}")
    return report(suites, modes, results, reruns, args.json)


def differences(direct, res):
    """The tests whose outcome in <res> is not the one in <direct>."""
    out = []
    for name in sorted(set(direct) | set(res)):
        a = direct.get(name, ("missing", ""))
        b = res.get(name, ("missing", ""))
        if a[0] != b[0]:
            out.append((name, a, b))
    return out


def rerun_differences(env, suite, mode, port, logdir, direct, res):
    """Run each test that differs alone RERUNS more times, directly and in
    <mode> (sluice on <port>), each time in a fresh database. Returns
    {test: (direct outcomes, mode outcomes)}, first run included."""
    out = {}
    for name, a, b in differences(direct, res):
        seen = ([a[0]], [b[0]])
        only = name if suite.kind == "script" else ONLY.get(name)
        if only is None:
            out[name] = seen  # a whole file's failure: no way to run it alone
            continue
        for _ in range(RERUNS):
            for i, (m, p) in enumerate((("direct", env.pg.port), (mode, port))):
                dbname = f"{suite.slug()}_{mode}"
                fresh_database(env.pg, dbname)
                r, _, _ = run_suite(suite, m, p, dbname, logdir, only=only)
                if name in r:  # a hook's failure is not found by its title
                    seen[i].append(r[name][0])
        out[name] = seen
    return out


def report(suites, modes, results, reruns, json_path):
    """Per suite and mode: run, passed, differing from direct (the same way
    every time; of them, known: explained by pooling, see KNOWN) and flaky
    (outcome varied when run again, not counted as differing); then each
    of them. Returns the exit status: 1 if a test differs that is not known."""
    ndiff = 0
    lines = []
    print("\nsuite            mode          run  passed  differ  known  flaky")
    for s in suites:
        direct = results.get((s.name, "direct"), {})
        for mode in modes:
            res = results.get((s.name, mode), {})
            npass = sum(1 for o, _ in res.values() if o == "passed")
            diffs, known, flaky = [], [], []
            if mode != "direct":
                again = reruns.get((s.name, mode), {})
                for name, a, b in differences(direct, res):
                    da, db = again.get(name, ([a[0]], [b[0]]))
                    if len(set(da)) > 1 or len(set(db)) > 1:
                        flaky.append((name, da, db, b))
                    elif (s.name, mode, name) in KNOWN:
                        known.append((name, da, db, b))
                    else:
                        diffs.append((name, da, db, b))
            ndiff += len(diffs)
            print(f"{s.name:<16} {mode:<12} {len(res):>4} {npass:>7} "
                  f"{len(diffs) + len(known):>7} {len(known):>6} {len(flaky):>6}")
            for what, group in (("differs", diffs), ("known", known), ("flaky", flaky)):
                for name, da, db, b in group:
                    why = KNOWN.get((s.name, mode, name))
                    lines.append(f"  {what}: {s.name} [{mode}] {name}: direct {'/'.join(da)}, "
                                 f"{mode} {'/'.join(db)}" + (f": {b[1]}" if b[1] else "")
                                 + (f"\n      (pooling: {why})" if what == "known" else ""))
    if lines:
        print("\ndiffering from the direct run:")
        print("\n".join(lines))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({f"{k[0]} [{k[1]}]": v for k, v in results.items()}, f, indent=1,
                      sort_keys=True)
    return 1 if ndiff else 0


if __name__ == "__main__":
    sys.exit(main())
