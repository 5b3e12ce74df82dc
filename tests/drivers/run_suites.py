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
Exit status 1 if any test differs, 2 if the setup failed.

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
    # a plain script whose checks throw: one outcome, its exit status
    Suite("pg-copy-streams", "script", "pg-copy-streams", cmd=["node", "test"]),
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


def run_mocha(suite, env, out):
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
    return res


def run_jest(suite, env, out):
    # jest never collects tests below node_modules; a copy of the package
    # beside it resolves its dependencies from suites/node_modules all the same
    dst = os.path.join(WORK, suite.slug())
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(suite.dir, dst)
    cmd = [os.path.join(NODE_MODULES, ".bin", "jest"), "--rootDir", dst, "--runInBand",
           "--ci", "--json", f"--outputFile={out}", "--testRegex", r"\.test\.pg\.js$",
           "--testTimeout", "30000", "--forceExit"]
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
    return res


def run_suite(suite, mode, port, dbname, logdir):
    """Run <suite> against 127.0.0.1:<port>/<dbname>; returns {test: (outcome,
    message)} and the path of its output log."""
    url = f"postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/{dbname}"
    env = dict(os.environ)
    env.pop("PGSERVICE", None)
    env.update(PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=USER, PGPASSWORD=PASSWORD,
               PGDATABASE=dbname, PGSSLMODE="disable", DATABASE_URL=url, PG_URL=url,
               NODE_ENV="test", CI="1", FORCE_COLOR="0", TZ=os.environ.get("TZ", "UTC"))
    out = os.path.join(logdir, f"{suite.slug()}.{mode}.json")
    log = os.path.join(logdir, f"{suite.slug()}.{mode}.log")
    if os.path.exists(out):
        os.unlink(out)
    if suite.kind == "mocha":
        cmd, cwd = run_mocha(suite, env, out)
    elif suite.kind == "jest":
        cmd, cwd = run_jest(suite, env, out)
    else:
        cmd, cwd = suite.cmd, suite.dir
    t0 = time.time()
    with open(log, "w") as logf:
        try:
            p = subprocess.run(cmd, cwd=cwd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=suite.timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    took = time.time() - t0
    if suite.kind == "script":
        res = {f"{suite.name}: node test": ("passed", "") if rc == 0 else
               ("failed", f"exit status {rc}; " + harness.tail(log, 3).replace("\n", " | "))}
    else:
        try:
            res = parse_mocha(out) if suite.kind == "mocha" else parse_jest(out)
        except (OSError, ValueError) as e:
            res = {f"{suite.name}: (report)": ("failed", f"no report ({e}); exit status {rc}; "
                                              + harness.tail(log, 3).replace("\n", " | "))}
        if rc == "timeout":
            res[f"{suite.name}: (run)"] = ("failed", f"still running after {suite.timeout}s")
    return res, took, log


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
                                          "default_pool_size": "20"},
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
            if sl is not None:
                if not sl.alive():
                    print(f"sluice exited during the {mode} run; log tail:\n{sl.log_tail(25)}")
                env.drop_sluice()
    finally:
        env.teardown()
        for p in env.shutdown_problems:
            print(f"shutdown of {p[0]}: {p[1]}\n{p[2]}")
    return report(suites, modes, results, args.json)


def report(suites, modes, results, json_path):
    """Per suite and mode: run, passed, differing from direct; then each
    difference. Returns the exit status."""
    ndiff = 0
    lines = []
    print("\nsuite            mode          run  passed  differ")
    for s in suites:
        direct = results.get((s.name, "direct"), {})
        for mode in modes:
            res = results.get((s.name, mode), {})
            npass = sum(1 for o, _ in res.values() if o == "passed")
            diffs = []
            if mode != "direct":
                for name in sorted(set(direct) | set(res)):
                    a = direct.get(name, ("missing", ""))
                    b = res.get(name, ("missing", ""))
                    if a[0] != b[0]:
                        diffs.append((name, a, b))
            ndiff += len(diffs)
            print(f"{s.name:<16} {mode:<12} {len(res):>4} {npass:>7} {len(diffs):>7}")
            for name, a, b in diffs:
                lines.append(f"  {s.name} [{mode}] {name}: direct {a[0]}, {mode} {b[0]}"
                             + (f": {b[1]}" if b[1] else (f" (direct: {a[1]})" if a[1] else "")))
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
