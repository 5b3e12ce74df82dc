#!/usr/bin/python3
"""PostgreSQL's own regression and isolation suites, through sluice.

Runs each suite straight at a throwaway PostgreSQL 15 and then through
sluice (session and transaction mode), and reports every test whose result
through sluice differs from the direct run. A test that fails directly too
(locale, build options) says nothing about sluice and is only counted.

Needs PostgreSQL's source tree of the server's version, configured and with
src/test/regress and src/test/isolation built; `make pgregress` prepares it.

Usage: run.py --sluice ./sluice --pgsrc DIR [--suite regress|isolation|all]
              [--modes direct,session,transaction] [--keep]
"""
import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

PG_BIN = harness.PG_BIN

# pg_regress prints "ok", "FAILED" or "failed (ignored)" after each test name
RESULT_RE = re.compile(r"^(?:test\s+|\s+)?([\w-]+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))")


# Tests that fail through a transaction pool for a reason pooling itself
# explains (the README lists them under "What a transaction-mode client can
# still tell"). They are reported, not counted; anything else is.
KNOWN = {
    ("regress", "transaction"): {
        "stats": "pg_stat_database.sessions counts server logins; \\c reuses a pooled server",
        "triggers": "a C function's static variables (regress.so's ttdummy) live in one server "
                    "session; the next transaction may run on another",
        "constraints": "currval() in a later transaction than its nextval() (a column DEFAULT)",
        "sequence": "currval()/lastval() in a later transaction than their nextval()",
        "guc": "plpgsql, loaded by another client's session, already reserves its prefix "
               "when the test SETs plpgsql.extra_foo_warnings",
    },
}


def start_postgres(env):
    env.pg = harness.Postgres(env.root)
    env.pg.init()
    with open(os.path.join(env.pg.data, "postgresql.conf"), "a") as f:
        # the settings pg_regress' own temp instance runs with that an
        # installcheck depends on; everything else stays at its default
        f.write("max_prepared_transactions = 10\nmax_connections = 300\n"
                # pg_stat_statements turns on query ids, which EXPLAIN VERBOSE prints
                "shared_preload_libraries = ''\n")
    hba = os.path.join(env.pg.data, "pg_hba.conf")
    with open(hba) as f:
        old = f.read()
    with open(hba, "w") as f:
        # the suites log in as roles they create, without passwords
        f.write("host all all 127.0.0.1/32 trust\n" + old)
    env.pg.start()


def suite_roles(pgsrc):
    """Every role the suites log in as. sluice, like PgBouncer, admits only
    the users in its auth_file, also with auth_type = trust; the suites
    create their roles as they go, so the list is read off their sources."""
    names = {"postgres"}
    pat_create = re.compile(r"(?i)\b(?:create|alter)\s+(?:role|user|group)\s+(\"?)(\w+)\1")
    pat_regress = re.compile(r"\b(regress_\w+)")
    for sub, ext in (("src/test/regress/sql", ".sql"), ("src/test/isolation/specs", ".spec")):
        d = os.path.join(pgsrc, sub)
        for fn in os.listdir(d):
            if fn.endswith(ext):
                with open(os.path.join(d, fn), errors="replace") as f:
                    text = f.read()
                names.update(m.group(2) for m in pat_create.finditer(text))
                names.update(pat_regress.findall(text))
    return names


def start_sluice(env, mode, roles, extra=None):
    settings = {"auth_type": "trust", "pool_mode": mode,
                "min_pool_size": "0", "server_login_retry": "1"}
    settings.update(extra or {})
    s = harness.Sluice(env, settings=settings,
                       databases={"app": None, "*": "host=127.0.0.1 port=PGPORT"},
                       userlist={r: "" for r in roles})
    s.start()
    return s


def parse_results(text):
    res = {}
    for line in text.splitlines():
        m = RESULT_RE.match(line)
        if m:
            res[m.group(1)] = "ok" if m.group(2) == "ok" else "failed"
    return res


def run_suite(args, suite, port, outdir):
    src = args.pgsrc
    if suite == "regress":
        d = os.path.join(src, "src/test/regress")
        cmd = [os.path.join(d, "pg_regress"), f"--inputdir={d}",
               f"--dlpath={d}", "--max-concurrent-tests=20",
               f"--schedule={d}/parallel_schedule"]
    else:
        d = os.path.join(src, "src/test/isolation")
        cmd = [os.path.join(d, "pg_isolation_regress"), f"--inputdir={d}",
               f"--schedule={d}/isolation_schedule"]
    cmd += [f"--bindir={PG_BIN}", "--host=127.0.0.1", f"--port={port}",
            "--user=postgres", f"--outputdir={outdir}"]
    if args.tests:
        cmd = [c for c in cmd if not c.startswith("--schedule")] + args.tests
    os.makedirs(outdir, exist_ok=True)
    shutil.chown(outdir, "postgres", "postgres")
    t0 = time.time()
    # as postgres: the server writes COPY output files into outdir
    r = subprocess.run(["runuser", "-u", "postgres", "--"] + cmd, cwd=outdir,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=args.timeout)
    with open(os.path.join(outdir, "pg_regress.out"), "w") as f:
        f.write(r.stdout)
    return parse_results(r.stdout), time.time() - t0, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--pgsrc", required=True)
    ap.add_argument("--suite", default="all", choices=["regress", "isolation", "all"])
    ap.add_argument("--modes", default="direct,session,transaction")
    ap.add_argument("--out", default=None, help="where results and diffs are kept")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a sluice setting for the runs through it")
    ap.add_argument("tests", nargs="*", help="run only these tests")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    args.pgsrc = os.path.abspath(args.pgsrc)
    modes = args.modes.split(",")
    suites = ["regress", "isolation"] if args.suite == "all" else [args.suite]

    env = harness.Env(args.sluice, keep=args.keep)
    env.root = None
    out = os.path.abspath(args.out) if args.out else None
    try:
        import tempfile
        env.root = tempfile.mkdtemp(prefix="sluice-regress-", dir="/tmp")
        os.chmod(env.root, 0o755)
        shutil.chown(env.root, "postgres", "postgres")
        if out is None:
            out = os.path.join(env.root, "out")
        os.makedirs(out, exist_ok=True)
        shutil.chown(out, "postgres", "postgres")
        start_postgres(env)
        roles = suite_roles(args.pgsrc)
        results = {}
        for suite in suites:
            for mode in modes:
                if suite == "isolation" and mode == "transaction":
                    # every step of a permutation names its session: it needs
                    # one server per client, which is session mode
                    continue
                s = None
                port = env.pg.port
                if mode != "direct":
                    s = start_sluice(env, mode, roles, dict(x.split('=', 1) for x in args.set))
                    port = s.port
                res, secs, _ = run_suite(args, suite, port, os.path.join(out, f"{suite}-{mode}"))
                if s is not None:
                    alive = s.alive()
                    rc = s.stop(10)
                    if not alive or rc != 0:
                        print(f"!! sluice ({mode}) exit status {rc}\n{s.log_tail(30)}")
                        results[(suite, mode, "sluice")] = "crashed"
                results[(suite, mode)] = res
                nf = sum(1 for v in res.values() if v != "ok")
                print(f"{suite:9} {mode:11} {len(res):4} tests, {nf:3} failed, {secs:6.1f} s",
                      flush=True)
        bad = 0
        for suite in suites:
            base = results.get((suite, "direct"), {})
            for mode in modes:
                if mode == "direct" or (suite, mode) not in results:
                    continue
                res = results[(suite, mode)]
                known = KNOWN.get((suite, mode), {})
                failed = sorted(t for t, v in res.items() if v != "ok" and base.get(t) == "ok")
                diff = [t for t in failed if t not in known]
                explained = [t for t in failed if t in known]
                fixed = sorted(t for t, v in res.items() if v == "ok" and base.get(t) != "ok"
                               and t in base)
                missing = sorted(set(base) - set(res))
                # stricter than pass/fail: a test may pass by another of its
                # expected files (prepared_xacts_1.out, ...)
                same = differ = 0
                rdir = os.path.join(out, f"{suite}-direct", "results")
                mdir = os.path.join(out, f"{suite}-{mode}", "results")
                for fn in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
                    if not fn.endswith(".out"):
                        continue  # files the tests COPY out
                    a, b = os.path.join(rdir, fn), os.path.join(mdir, fn)
                    if os.path.exists(b) and filecmp.cmp(a, b, shallow=False):
                        same += 1
                    else:
                        differ += 1
                print(f"\n{suite} through sluice, {mode} mode: {len(diff)} fail only through "
                      f"sluice{': ' + ' '.join(diff) if diff else ''}")
                print(f"  result files identical to the direct run's: {same}, differing: {differ}")
                for t in explained:
                    print(f"  known: {t}: {known[t]}")
                if fixed:
                    print(f"  pass only through sluice: {' '.join(fixed)}")
                if missing:
                    print(f"  not run: {' '.join(missing)}")
                bad += len(diff) + len(missing)
                if results.get((suite, mode, "sluice")):
                    bad += 1
            if base:
                nf = sorted(t for t, v in base.items() if v != "ok")
                print(f"{suite} direct failures (not counted): {' '.join(nf) or 'none'}")
        print(f"\nresults and diffs in {out}")
        return 1 if bad else 0
    finally:
        if env.pg is not None:
            env.pg.closed = True
            env.pg.stop()
        for sl in env.started:
            sl.kill()
        if env.root and args.out and not args.keep:
            # the results live in --out; without it, in the root, which stays
            shutil.rmtree(env.root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
