"""Configuration settings sluice does not implement, end to end: a value it
would not honour stops startup with exit status 2 and file:line on stderr,
and a reload with one keeps the running configuration; values that describe
what sluice does load."""
import os
import signal
import subprocess

from harness import TestFailure, check, free_port, test, wait_port, wait_until

CONF = """[databases]
app = host=127.0.0.1 port={pgport} dbname=app

[sluice]
listen_addr = 127.0.0.1
listen_port = {port}
auth_type = scram-sha-256
auth_file = {auth}
stats_listen =
{extra}
"""


def setup_dir(env, name):
    d = os.path.join(env.root, name)
    os.makedirs(d, exist_ok=True)
    auth = os.path.join(d, "userlist.txt")
    with open(auth, "w") as f:
        f.write('"app" "app"\n')
    return d, auth


def run_to_exit(env, path, wait=10):
    p = subprocess.Popen([env.sluice_bin, path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise TestFailure(f"sluice kept running with {os.path.basename(path)}")
    return p.returncode, err


@test("conf.unsupported_settings_stop_startup")
def t_unsupported_stop_startup(env):
    d, auth = setup_dir(env, "conf_refused")
    path = os.path.join(d, "conf.ini")
    # line 10 of the file is the extra setting
    for extra, key in (("auth_hba_file = /etc/pgbouncer/hba.conf", "auth_hba_file"),
                       ("client_tls_protocols = all", "client_tls_protocols"),
                       ("max_packet_size = 65536", "max_packet_size"),
                       ("auth_user = pgbouncer", "auth_user"),
                       ("unix_socket_group = postgres", "unix_socket_group")):
        with open(path, "w") as f:
            f.write(CONF.format(pgport=env.pg.port, port=free_port(), auth=auth, extra=extra))
        rc, err = run_to_exit(env, path)
        check(rc == 2, f"'{extra}': exit status {rc}, stderr {err.strip()[:200]!r}")
        want = f"conf.ini:10: {extra} is not supported by sluice ("
        check(want in err, f"'{extra}': {want!r} not in {err.strip()[:300]!r}")


@test("conf.sluice_behaviour_values_load")
def t_behaviour_values_load(env):
    d, auth = setup_dir(env, "conf_accepted")
    path = os.path.join(d, "conf.ini")
    port = free_port()
    extra = "\n".join(["unix_socket_dir =", "tcp_keepalive = 0", "log_pooler_errors = 1",
                       "client_tls_protocols = secure", "client_tls_dheparams = none",
                       "max_packet_size = 2147483647", "auth_hba_file =",
                       "listen_backlog = 1024", "dns_max_ttl = 15",
                       "autodb_idle_timeout = 60", "max_login_clients = 10"])
    with open(path, "w") as f:
        f.write(CONF.format(pgport=env.pg.port, port=port, auth=auth, extra=extra))
    p = subprocess.Popen([env.sluice_bin, path], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        check(wait_port(port, 10, p), f"sluice did not start (status {p.poll()})")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    check(p.returncode == 0, f"exit status {p.returncode}: {err.strip()[:300]!r}")


@test("conf.reload_with_unsupported_setting_keeps_running_config")
def t_reload_refused(env):
    s = env.sluice(fresh=True)
    c = s.connect()
    s.settings["auth_query"] = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
    s.reload()
    check(wait_until(lambda: "reload failed" in s.log_tail(50), 5),
          f"no reload failure logged:\n{s.log_tail()}")
    check("auth_query = SELECT" in s.log_tail(50), f"refused key not named:\n{s.log_tail()}")
    cur = c.cursor()
    cur.execute("SELECT 1")
    check(cur.fetchone()[0] == 1, "session broken by the refused reload")
    c2 = s.connect()
    c2.close()
    c.close()
    env.drop_sluice()
