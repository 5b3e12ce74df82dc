"""The unix-socket listener (unix_socket_dir), for application and admin
databases: where libpq looks for it, its mode, replaced when stale, refused
when another process accepts on it, removed at exit."""
import os
import socket
import stat
import subprocess

from harness import Sluice, TestFailure, check, test


def psql_unix(s, sockdir, sql, user="app", dbname="app"):
    env = dict(os.environ, PGPASSWORD=user)
    return subprocess.run(["psql", "-X", "-A", "-t", "-h", sockdir, "-p", str(s.port),
                           "-U", user, "-d", dbname, "-c", sql],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=30)


@test("unix.socket_serves_app_and_admin", timeout=60)
def t_unix(env):
    sockdir = os.path.join(env.root, "sock")
    os.makedirs(sockdir, exist_ok=True)
    s = env.sluice({"unix_socket_dir": sockdir, "unix_socket_mode": "0770"}, fresh=True)
    path = os.path.join(sockdir, f".s.PGSQL.{s.port}")
    st = os.stat(path)
    check(stat.S_ISSOCK(st.st_mode), f"{path} is not a socket")
    check(stat.S_IMODE(st.st_mode) == 0o770, f"mode {oct(stat.S_IMODE(st.st_mode))}")
    r = psql_unix(s, sockdir, "SELECT 40 + 2")
    check(r.returncode == 0 and r.stdout.strip() == "42", f"app over the socket: {r.stdout}")
    r = psql_unix(s, sockdir, "SHOW VERSION", user="admin", dbname="sluice")
    check(r.returncode == 0 and "sluice" in r.stdout, f"admin over the socket: {r.stdout}")
    # TCP still works beside it
    c = s.connect()
    c.cursor().execute("SELECT 1")
    c.close()
    env.drop_sluice()
    check(not os.path.exists(path), "the socket file is left after sluice stopped")


@test("unix.stale_socket_replaced_live_one_refused", timeout=60)
def t_unix_stale(env):
    sockdir = os.path.join(env.root, "sock2")
    os.makedirs(sockdir, exist_ok=True)
    env.drop_sluice()
    # another process accepts on the path: sluice refuses to start, and
    # leaves that process's socket alone
    s = Sluice(env, {"unix_socket_dir": sockdir})
    path = os.path.join(sockdir, f".s.PGSQL.{s.port}")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(1)
    try:
        try:
            s.start(timeout=5)
            started = True
        except TestFailure:
            started = False
        check(not started, "sluice started on a socket another process accepts on")
        try:
            rc = s.proc.wait(10)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            rc = None
        check(rc not in (None, 0), f"sluice did not exit with an error: {rc}")
        check("another process accepts connections on" in open(s.log).read(),
              f"log: {s.log_tail()}")
        check(os.path.exists(path), "sluice removed the other process's socket")
    finally:
        live.close()
        s.stop()
    # the socket file is stale now (nobody accepts on it): it is replaced
    s = Sluice(env, {"unix_socket_dir": sockdir})
    os.unlink(path)
    path = os.path.join(sockdir, f".s.PGSQL.{s.port}")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()
    try:
        s.start()
        r = psql_unix(s, sockdir, "SELECT 7")
        check(r.returncode == 0 and r.stdout.strip() == "7", f"after a stale socket: {r.stdout}")
    finally:
        s.stop()
    check(not os.path.exists(path), "the socket file is left after sluice stopped")
