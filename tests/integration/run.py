#!/usr/bin/python3
"""sluice integration tests against a throwaway PostgreSQL 15 and Redis.

    /usr/bin/python3 tests/integration/run.py --sluice ./sluice [-k substring]

Prints "ok NAME (1.2s)" or "FAIL NAME: reason" per test, then
"N passed, N failed"; exit status 1 if any test failed.
"""
import argparse
import atexit
import os
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIRST = ["test_session", "test_tx"]


def load_tests():
    """Import the test modules (they register their tests); session and
    transaction mode first, then any other test_*.py. Returns import errors."""
    import importlib
    others = sorted(f[:-3] for f in os.listdir(HERE)
                    if f.startswith("test_") and f.endswith(".py") and f[:-3] not in FIRST)
    errors = []
    for mod in FIRST + others:
        try:
            importlib.import_module(mod)
        except Exception:  # noqa: BLE001
            errors.append((mod, traceback.format_exc().strip().splitlines()[-1]))
    return errors


def indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.splitlines())


def run_one(env, name, fn, timeout):
    """Run one test in a thread; returns (status, detail)."""
    result = {}

    def body():
        try:
            fn(env)
            result["status"] = "ok"
        except harness.Skip as e:
            result["status"] = "skip"
            result["detail"] = str(e)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            result["status"] = "fail"
            if isinstance(e, AssertionError) and str(e):
                result["detail"] = str(e)
            else:
                result["detail"] = "".join(traceback.format_exception_only(type(e), e)).strip()
            result["trace"] = traceback.format_exc()

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # unblock whatever the test waits for: its sluice goes away
        log = env.current.log_tail() if env.current else ""
        for s in [env.current] + env.extra:
            if s is not None:
                s.kill()
        t.join(15)
        return "fail", f"timed out after {timeout}s", log
    # the extra sluices a test started go with it: left running, their
    # server connections made every later restart of the shared sluice wait
    # its 5 s for PostgreSQL's backends to go (their exit status is still
    # checked, as at the end)
    for s in env.extra:
        env.stop_checked(s)
    env.extra = []
    log = ""
    status = result.get("status", "fail")
    detail = result.get("detail", "")
    cur = env.current
    if status != "skip" and cur is not None and not cur.stopped_on_purpose and not cur.alive():
        if status == "ok":
            status = "fail"
            detail = f"sluice exited with status {cur.proc.returncode} during the test"
        else:
            detail += f" (sluice exited with status {cur.proc.returncode})"
    if status == "fail":
        if cur is not None:
            log = cur.log_tail()
        if os.environ.get("SLUICE_IT_TRACE") and result.get("trace"):
            detail += "\n" + result["trace"]
    return status, detail, log


def report_shutdowns(env):
    """One FAIL line per sluice that did not exit cleanly when stopped."""
    n = 0
    while env.shutdown_problems:
        name, why, log = env.shutdown_problems.pop(0)
        n += 1
        print(f"FAIL shutdown of {name}: {why}", flush=True)
        print(indent("sluice log:\n" + log), flush=True)
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True, help="path to the sluice binary")
    ap.add_argument("-k", dest="pattern", default=None,
                    help="run only tests whose name contains this substring")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--list", action="store_true", help="list test names and exit")
    args = ap.parse_args()
    import_errors = load_tests()

    tests = [t for t in harness.TESTS if args.pattern is None or args.pattern in t[0]]
    if args.list:
        for name, _, _ in tests:
            print(name)
        return 0
    sluice_bin = os.path.abspath(args.sluice)
    if not os.access(sluice_bin, os.X_OK):
        print(f"FAIL setup: {args.sluice} is not an executable", flush=True)
        print("0 passed, 1 failed")
        return 1
    if os.geteuid() != 0:
        print("FAIL setup: run as root (PostgreSQL is started as the postgres user)")
        print("0 passed, 1 failed")
        return 1

    env = harness.Env(sluice_bin, keep=args.keep)
    done = []

    def cleanup():
        if not done:
            done.append(True)
            env.teardown()

    atexit.register(cleanup)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    passed = failed = skipped = 0
    t_start = time.time()
    for mod, err in import_errors:
        if args.pattern is None or args.pattern in mod:
            failed += 1
            print(f"FAIL import {mod}: {err}", flush=True)
    try:
        try:
            env.setup()
        except Exception as e:  # noqa: BLE001
            print(f"FAIL setup: {e}", flush=True)
            print("0 passed, 1 failed")
            return 1
        for name, fn, timeout in tests:
            t0 = time.time()
            status, detail, log = run_one(env, name, fn, timeout)
            dt = time.time() - t0
            if status == "ok":
                passed += 1
                print(f"ok {name} ({dt:.1f}s)", flush=True)
            elif status == "skip":
                skipped += 1
                print(f"skip {name}: {detail}", flush=True)
            else:
                failed += 1
                print(f"FAIL {name}: {detail} ({dt:.1f}s)", flush=True)
                if log:
                    print(indent("sluice log:\n" + log), flush=True)
                # the next test gets a new sluice
                env.drop_sluice()
            failed += report_shutdowns(env)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        failed += 1
    finally:
        cleanup()
    failed += report_shutdowns(env)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(f"total time {time.time() - t_start:.0f}s", flush=True)
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
