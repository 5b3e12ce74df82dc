"""The PgBouncer-compatible admin console.

Debian's PgBouncer 1.18 runs beside sluice: every view it has must come
back from sluice with its columns in the same order and with the same type
OIDs (PgBouncer 1.24 added columns, which may sit between them; the one it
renamed, reserve_pool -> reserve_pool_size, is checked as 1.24 names it).
A known pgbench workload must be counted exactly in SHOW STATS;
pgbouncer_exporter's query sequence must give numbers; the commands
(PAUSE/RESUME, RECONNECT, RELOAD, SET, KILL_CLIENT, DISABLE) must act, and
users other than admin_users must be refused what they may not run.
"""
import decimal
import os
import shutil
import signal
import subprocess
import threading
import time

import psycopg2

from harness import (PgError, check, free_port, m_bind, m_execute, m_parse, msg, pgbench,
                     test, wait_port, wait_until)

PGBOUNCER = "/usr/sbin/pgbouncer"

VIEWS_118 = ["VERSION", "CONFIG", "DATABASES", "POOLS", "CLIENTS", "SERVERS", "SOCKETS",
             "ACTIVE_SOCKETS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "TOTALS", "LISTS",
             "USERS", "MEM", "FDS", "DNS_HOSTS", "DNS_ZONES"]
# PgBouncer 1.24's additions (from its documentation), by view
ADDED_124 = {
    "DATABASES": ["reserve_pool_size", "server_lifetime", "load_balance_hosts",
                  "max_client_connections", "current_client_connections"],
    "POOLS": ["load_balance_hosts"],
    "CLIENTS": ["replication", "prepared_statements", "id"],
    "SERVERS": ["replication", "prepared_statements", "id"],
    "STATS": ["total_server_assignment_count", "total_client_parse_count",
              "total_server_parse_count", "total_bind_count", "avg_server_assignment_count",
              "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count"],
    "STATS_TOTALS": ["server_assignment_count", "client_parse_count", "server_parse_count",
                     "bind_count"],
    "USERS": ["pool_size", "reserve_pool_size", "max_user_connections",
              "current_connections", "max_user_client_connections",
              "current_client_connections"],
}
RENAMED_124 = {("DATABASES", "reserve_pool"): "reserve_pool_size"}


def admin(s, user="admin", **kw):
    return s.connect(user=user, dbname="sluice", **kw)


def run(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    if cur.description is None:
        return None, []
    return [(d[0], d[1]) for d in cur.description], cur.fetchall()


def rows(s, sql, user="admin"):
    c = admin(s, user)
    try:
        cols, data = run(c, sql)
        return [dict(zip([n for n, _ in cols], r)) for r in data]
    finally:
        c.close()


class PgBouncer:
    """Debian's PgBouncer, as postgres (it refuses root), on a free port."""

    def __init__(self, env):
        self.dir = os.path.join(env.root, f"pgbouncer{free_port()}")
        os.makedirs(self.dir)
        self.port = free_port()
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write('"admin" "admin"\n"app" "app"\n')
        with open(ini, "w") as f:
            f.write(f"[databases]\napp = host=127.0.0.1 port={env.pg.port} dbname=app\n"
                    f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
                    f"unix_socket_dir =\nauth_type = trust\nauth_file = {users}\n"
                    f"admin_users = admin\npool_mode = transaction\n"
                    f"logfile = {self.dir}/pgb.log\n")
        for p in (self.dir, ini, users):
            shutil.chown(p, "postgres", "postgres")
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", PGBOUNCER, ini],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check(wait_port(self.port, 10, self.proc), "pgbouncer did not start")

    def connect(self, dbname="pgbouncer", user="admin"):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname=dbname,
                             connect_timeout=10)
        c.autocommit = True
        return c

    def stop(self):
        # runuser forwards SIGTERM to pgbouncer
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def in_order(sub, full):
    """Is <sub> an ordered subsequence of <full>?"""
    it = iter(full)
    return all(x in it for x in sub)


@test("console: every PgBouncer 1.18 view has its columns, order and types in sluice")
def views_match_pgbouncer(env):
    if not os.path.exists(PGBOUNCER):
        raise AssertionError(f"{PGBOUNCER} is missing (Debian package pgbouncer)")
    s = env.sluice(settings={"pool_mode": "transaction"})
    b = PgBouncer(env)
    try:
        pc, sc = b.connect(), admin(s)
        try:
            for view in VIEWS_118:
                theirs, _ = run(pc, f"SHOW {view}")
                ours, _ = run(sc, f"SHOW {view}")
                theirs = [(RENAMED_124.get((view, n), n), t) for n, t in theirs]
                check(in_order(theirs, ours),
                      f"SHOW {view}: PgBouncer 1.18 sends {theirs}, sluice {ours}")
                names = [n for n, _ in ours]
                for extra in ADDED_124.get(view, []):
                    check(extra in names, f"SHOW {view}: 1.24 column {extra} missing")
                check(len(names) == len(set(names)), f"SHOW {view}: duplicate columns")
            check("reserve_pool" not in [n for n, _ in run(sc, "SHOW DATABASES")[0]],
                  "SHOW DATABASES sends reserve_pool beside reserve_pool_size")
            # HELP: a notice, no result set, in both
            check(run(pc, "SHOW HELP")[0] is None and run(sc, "SHOW HELP")[0] is None,
                  "SHOW HELP should answer with a notice only")
            check(sc.notices and "SHOW" in sc.notices[-1], f"no help notice: {sc.notices}")
            cols, data = run(sc, "SHOW STATE")
            check([n for n, _ in cols] == ["key", "value"] and len(data) == 3,
                  f"SHOW STATE: {cols} {data}")
        finally:
            pc.close()
            sc.close()
    finally:
        b.stop()


@test("console: 500 pgbench transactions are 500 xacts and 3500 queries in SHOW STATS",
      timeout=120)
def stats_count_pgbench(env):
    env.ensure_pgbench()
    s = env.sluice(settings={"pool_mode": "transaction"}, fresh=True)
    # pgbench's own setup queries run on connections of their own: count
    # them by running it with no transactions first
    r = pgbench(s, "-n", "-c", "5", "-t", "1", "app")
    check(r.returncode == 0, r.stdout)
    base = {r["database"]: r for r in rows(s, "SHOW STATS")}["app"]
    r = pgbench(s, "-n", "-c", "5", "-t", "100", "app")
    check(r.returncode == 0, r.stdout)
    after = {r["database"]: r for r in rows(s, "SHOW STATS")}["app"]
    setup_x = int(base["total_xact_count"]) - 5
    setup_q = int(base["total_query_count"]) - 35
    xacts = int(after["total_xact_count"]) - int(base["total_xact_count"]) - setup_x
    queries = int(after["total_query_count"]) - int(base["total_query_count"]) - setup_q
    check(xacts == 500 and queries == 3500,
          f"expected 500 transactions and 3500 queries, got {xacts}, {queries} "
          f"(setup {setup_x}/{setup_q})")
    # pgbench's setup (the scale query and such) is a few statements, no more
    check(0 <= setup_x <= 5 and 0 <= setup_q <= 5, f"setup counts: {setup_x}/{setup_q}")
    for k in ("total_received", "total_sent", "total_xact_time", "total_query_time",
              "total_server_assignment_count"):
        check(int(after[k]) > int(base[k]) > 0, f"{k} did not grow: {base[k]} -> {after[k]}")
    check(int(after["total_xact_time"]) >= int(after["total_query_time"]) * 0.5,
          "transaction time should cover most query time")
    tot = {r["database"]: r for r in rows(s, "SHOW STATS_TOTALS")}["app"]
    check(int(tot["xact_count"]) == int(after["total_xact_count"]), "STATS_TOTALS differs")


@test("console: SHOW STATS in the same run matches PgBouncer's counts", timeout=120)
def stats_match_pgbouncer(env):
    env.ensure_pgbench()
    s = env.sluice(settings={"pool_mode": "transaction"}, fresh=True)
    b = PgBouncer(env)
    try:
        r = pgbench(s, "-n", "-c", "5", "-t", "100", "app")
        check(r.returncode == 0, r.stdout)
        env_b = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(b.port), PGUSER="app",
                     PGPASSWORD="app", PGDATABASE="app")
        r = subprocess.run(["pgbench", "-n", "-c", "5", "-t", "100", "app"], env=env_b,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        check(r.returncode == 0, r.stdout)
        c = b.connect()
        try:
            theirs = {x[0]: x for x in run(c, "SHOW STATS")[1]}["app"]
        finally:
            c.close()
        ours = {r["database"]: r for r in rows(s, "SHOW STATS")}["app"]
        check(int(ours["total_xact_count"]) == int(theirs[1]) and
              int(ours["total_query_count"]) == int(theirs[2]),
              f"sluice {ours['total_xact_count']}/{ours['total_query_count']}, "
              f"PgBouncer {theirs[1]}/{theirs[2]}")
        check(int(ours["total_xact_count"]) >= 500, "fewer than 500 transactions")
    finally:
        b.stop()


@test("console: pgbouncer_exporter's query sequence yields numbers")
def exporter_sequence(env):
    s = env.sluice(settings={"pool_mode": "transaction"})
    app = s.connect()
    app.cursor().execute("SELECT 1")
    c = s.connect(user="admin", dbname="pgbouncer")  # the name the exporter uses
    try:
        check(run(c, "SHOW STATS")[0] is not None, "SHOW STATS as ping")
        cols, data = run(c, "SHOW VERSION;")
        check([n for n, _ in cols] == ["version"] and len(data) == 1, f"VERSION {cols}")
        cols, data = run(c, "SHOW LISTS;")
        check(len(cols) == 2, f"LISTS has {len(cols)} columns")
        check(all(isinstance(v, int) for _, v in data), f"LISTS items not int: {data}")
        cols, data = run(c, "SHOW CONFIG;")
        check(len(cols) in (3, 4), "CONFIG columns")
        conf = {r[0]: r[1] for r in data}
        for k in ("max_client_conn", "max_user_connections"):
            float(conf[k])
        number = (int, decimal.Decimal)
        for view, keys in (("CLIENTS", ["port", "wait"]),
                           ("DATABASES", ["pool_size", "max_connections", "current_connections",
                                          "paused", "disabled"]),
                           ("STATS_TOTALS", ["xact_count", "query_count", "bytes_received",
                                             "bytes_sent", "xact_time", "query_time",
                                             "wait_time"]),
                           ("POOLS", ["cl_active", "cl_waiting", "sv_active", "sv_idle",
                                      "sv_used", "sv_tested", "sv_login", "maxwait"])):
            cols, data = run(c, f"SHOW {view};")
            names = [n for n, _ in cols]
            check(data, f"SHOW {view}: no rows")
            for r in data:
                for k in keys:
                    v = r[names.index(k)]
                    check(isinstance(v, number), f"SHOW {view}.{k} = {v!r}: not a number")
        app_row = [r for r in run(c, "SHOW STATS_TOTALS")[1] if r[0] == "app"]
        check(app_row and app_row[0][2] >= 1, f"app queries not counted: {app_row}")
    finally:
        c.close()
        app.close()


@test("console: syntax, case, semicolons, driver chatter, and the extended protocol")
def console_syntax(env):
    s = env.sluice()
    c = admin(s)
    try:
        check(run(c, "  show   VERSION ;; ")[1][0][0].startswith("sluice"), "case/blanks")
        for sql in ("BEGIN", "COMMIT", "ROLLBACK", "SET client_encoding = 'UTF8'",
                    "SET datestyle TO 'ISO'"):
            run(c, sql)
        check(run(c, "SHOW client_encoding")[1] == [("UTF8",)], "SHOW client_encoding")
        check(run(c, "SHOW standard_conforming_strings")[1] == [("on",)], "std strings")
        try:
            run(c, "SHOW NONSENSE")
            check(False, "unknown view accepted")
        except psycopg2.Error as e:
            check(e.pgcode == "42601" and "SHOW HELP" in (e.diag.message_hint or ""),
                  f"unknown view: {e.pgcode} {e.diag.message_hint}")
        try:
            run(c, "FROBNICATE")
            check(False, "unknown command accepted")
        except psycopg2.Error as e:
            check(e.pgcode == "42601" and "SHOW HELP" in (e.diag.message_hint or ""),
                  f"unknown command: {e.pgcode}")
        check(run(c, "SHOW VERSION")[1], "connection lost after an error")
    finally:
        c.close()
    w = s.wire(user="admin", dbname="sluice")
    try:
        w.send(m_parse("", "SHOW POOLS") + m_bind("", "") + m_execute() + msg(b"S"))
        got = w.collect()
        errs = [p for t, p in got if t == b"E"]
        check(len(errs) == 1 and b"0A000" in errs[0] and b"simple query" in errs[0],
              f"extended protocol: {got}")
        check(w.query("SHOW VERSION")[0][0].startswith("sluice"), "session lost after it")
    finally:
        w.close()


@test("console: stats_users may SHOW only; others cannot log in")
def console_permissions(env):
    s = env.sluice()
    check(rows(s, "SHOW POOLS", user="stats") is not None, "stats user SHOW")
    c = admin(s, user="stats")
    try:
        for sql in ("PAUSE", "RELOAD", "SET default_pool_size = 3", "KILL_CLIENT 1",
                    "SHUTDOWN", "RECONNECT"):
            try:
                run(c, sql)
                check(False, f"stats user ran {sql}")
            except psycopg2.Error as e:
                check(e.pgcode == "42501", f"{sql}: {e.pgcode}")
    finally:
        c.close()
    try:
        admin(s, user="app").close()
        check(False, "app logged in to the console")
    except psycopg2.OperationalError as e:
        check("admin_users or stats_users" in str(e), str(e))


@test("console: PAUSE holds new queries until RESUME; RECONNECT replaces servers")
def pause_resume(env):
    s = env.sluice(settings={"pool_mode": "transaction", "min_pool_size": "1"}, fresh=True)
    app = s.connect()
    app.cursor().execute("SELECT 1")
    a = admin(s)
    try:
        run(a, "PAUSE app")
        check(rows(s, "SHOW DATABASES")[0]["paused"] == 1, "not shown paused")
        done = threading.Event()

        def q():
            app.cursor().execute("SELECT 2")
            done.set()
        t = threading.Thread(target=q, daemon=True)
        t.start()
        check(not done.wait(1.0), "a query ran while paused")
        waiting = [r for r in rows(s, "SHOW POOLS") if r["database"] == "app"]
        check(waiting and waiting[0]["cl_waiting"] == 1, f"not waiting: {waiting}")
        run(a, "RESUME app")
        check(done.wait(5), "query not released by RESUME")
        t.join()
        before = set(r["remote_pid"] for r in rows(s, "SHOW SERVERS"))
        run(a, "RECONNECT app")
        app.cursor().execute("SELECT 3")
        after = set(r["remote_pid"] for r in rows(s, "SHOW SERVERS"))
        check(before and not (before & after), f"servers not replaced: {before} {after}")
    finally:
        a.close()
        app.close()


@test("console: PAUSE waits for a running transaction to end")
def pause_waits(env):
    s = env.sluice(settings={"pool_mode": "transaction"}, fresh=True)
    app = s.connect(autocommit=False)
    app.cursor().execute("SELECT 1")  # a transaction is open now
    a = admin(s)
    answered = threading.Event()

    def pause():
        run(a, "PAUSE")
        answered.set()
    t = threading.Thread(target=pause, daemon=True)
    t.start()
    try:
        check(not answered.wait(0.7), "PAUSE answered while a transaction runs")
        app.commit()
        check(answered.wait(5), "PAUSE not answered after the transaction ended")
        check(rows(s, "SHOW STATE")[1]["value"] == "yes", "SHOW STATE paused")
        run(a, "RESUME")
        app.cursor().execute("SELECT 1")
        app.commit()
    finally:
        t.join(5)
        a.close()
        app.close()


@test("console: SUSPEND freezes client and server sockets until RESUME; logins and the "
      "console go on")
def suspend_resume(env):
    for mode in ("session", "transaction"):
        s = env.sluice(settings={"pool_mode": mode}, fresh=True)
        app = s.connect()
        app.cursor().execute("SELECT 1")
        a = admin(s)
        try:
            run(a, "SUSPEND")
            st = {r["key"]: r["value"] for r in rows(s, "SHOW STATE")}
            check(st["suspended"] == "yes" and st["active"] == "no", f"{mode}: {st}")
            try:
                run(a, "SUSPEND")
                check(False, "a second SUSPEND was accepted")
            except psycopg2.Error as e:
                check("already suspended" in e.pgerror, e.pgerror)
            done, got = threading.Event(), []

            def query(conn):
                cur = conn.cursor()
                cur.execute("SELECT 41 + 1")
                got.append(cur.fetchone()[0])
                done.set()
            t = threading.Thread(target=query, args=(app,), daemon=True)
            t.start()
            check(not done.wait(0.7), f"{mode}: a query ran while suspended")
            # a new client still logs in; its query waits too
            late = s.connect()
            done2 = threading.Event()

            def query2():
                late.cursor().execute("SELECT 1")
                done2.set()
            t2 = threading.Thread(target=query2, daemon=True)
            t2.start()
            check(not done2.wait(0.3), f"{mode}: a new client's query ran while suspended")
            run(a, "RESUME")
            check(done.wait(5) and got == [42], f"{mode}: the held query did not finish: {got}")
            check(done2.wait(5), f"{mode}: the new client's query did not finish")
            check(rows(s, "SHOW STATE")[2]["value"] == "no", "still suspended after RESUME")
            t.join(5)
            t2.join(5)
            late.close()
        finally:
            a.close()
            app.close()


@test("console: RELOAD of a bad file is an error and changes nothing; SET applies live")
def reload_and_set(env):
    s = env.sluice(fresh=True)
    a = admin(s)
    try:
        good = open(s.conf).read()
        with open(s.conf, "w") as f:
            f.write(good.replace("default_pool_size = 50", "default_pool_size = lots"))
        try:
            run(a, "RELOAD")
            check(False, "bad RELOAD reported success")
        except psycopg2.Error as e:
            check(e.pgcode == "F0000" and "default_pool_size" in e.pgerror, e.pgerror)
        with open(s.conf, "w") as f:
            f.write(good)
        conf = {r["key"]: r for r in rows(s, "SHOW CONFIG")}
        check(conf["default_pool_size"]["value"] == "50", "config changed by bad reload")
        run(a, "SET default_pool_size = 7")
        conf = {r["key"]: r for r in rows(s, "SHOW CONFIG")}
        check(conf["default_pool_size"]["value"] == "7", "SET not applied")
        app = s.connect()
        app.cursor().execute("SELECT 1")
        app.close()
        pools = [r for r in rows(s, "SHOW DATABASES") if r["name"] == "app"]
        check(pools[0]["pool_size"] == 7, f"pool_size {pools}")
        for bad, code in (("SET default_pool_size = -3", "22023"),
                          ("SET listen_port = 1", "22023"),
                          ("SET no_such_thing = 1", "22023")):
            try:
                run(a, bad)
                check(False, f"{bad} accepted")
            except psycopg2.Error as e:
                check(e.pgcode == code, f"{bad}: {e.pgcode}")
        run(a, "RELOAD")
        conf = {r["key"]: r for r in rows(s, "SHOW CONFIG")}
        check(conf["default_pool_size"]["value"] == "50", "RELOAD did not restore")
    finally:
        a.close()


@test("console: KILL_CLIENT, DISABLE/ENABLE, and SIGUSR1/SIGUSR2")
def kill_disable(env):
    s = env.sluice(fresh=True)
    a = admin(s)
    app = s.connect()
    try:
        ids = [r["id"] for r in rows(s, "SHOW CLIENTS") if r["user"] == "app"]
        check(len(ids) == 1, f"clients {ids}")
        run(a, f"KILL_CLIENT {ids[0]}")
        try:
            app.cursor().execute("SELECT 1")
            check(False, "killed client still works")
        except psycopg2.Error:
            pass
        run(a, "DISABLE app")
        try:
            s.connect().close()
            check(False, "login to a disabled database")
        except psycopg2.OperationalError as e:
            check("disabled" in str(e), str(e))
        run(a, "ENABLE app")
        s.connect().close()
        s.signal(signal.SIGUSR1)
        check(wait_until(lambda: rows(s, "SHOW STATE")[1]["value"] == "yes", 3),
              "SIGUSR1 did not pause")
        s.signal(signal.SIGUSR2)
        check(wait_until(lambda: rows(s, "SHOW STATE")[1]["value"] == "no", 3),
              "SIGUSR2 did not resume")
    finally:
        a.close()
        app.close()
