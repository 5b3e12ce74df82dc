"""TLS on both sides (certificates made by the test) and memory use under a
large result."""
import os
import shutil
import subprocess

import psycopg2

from harness import check, test

_certs = {}


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}")


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_leaf(d, ca, name, san):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName = {san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
            "-out", f"{name}.crt", cwd=d)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)


def certs(env):
    """A CA, a certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    if _certs.get("root") == env.root:
        return _certs
    d = os.path.join(env.root, "tls")
    os.makedirs(d, exist_ok=True)
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_leaf(d, "ca", "server", "IP:127.0.0.1,DNS:localhost")
    for f in os.listdir(d):
        shutil.chown(os.path.join(d, f), "postgres", "postgres")
    shutil.chown(d, "postgres", "postgres")
    _certs.clear()
    _certs.update(root=env.root, dir=d, ca=f"{d}/ca.crt", other=f"{d}/otherca.crt",
                  cert=f"{d}/server.crt", key=f"{d}/server.key")
    return _certs


def tls_settings(c, mode="require"):
    return {"client_tls_sslmode": mode, "client_tls_cert_file": c["cert"],
            "client_tls_key_file": c["key"]}


@test("tls.client_verify_full")
def t_client_verify_full(env):
    c = certs(env)
    s = env.sluice(settings=tls_settings(c))
    conn = s.connect(sslmode="verify-full", sslrootcert=c["ca"])
    check(conn.info.ssl_in_use, "psycopg2 reports no TLS")
    cur = conn.cursor()
    cur.execute("select 40 + 2")
    check(cur.fetchone()[0] == 42, "query over TLS")
    conn.close()
    # psql with verify-full, as an operator would
    e = s.pgenv()
    e.update(PGSSLMODE="verify-full", PGSSLROOTCERT=c["ca"])
    r = subprocess.run(["psql", "-X", "-Atc", "select 'tls ok'"], env=e, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(r.returncode == 0 and r.stdout.strip() == "tls ok", f"psql verify-full: {r.stderr}")


@test("tls.client_wrong_ca_and_plaintext_refused")
def t_client_refusals(env):
    c = certs(env)
    s = env.sluice(settings=tls_settings(c))
    try:
        s.connect(sslmode="verify-full", sslrootcert=c["other"]).close()
        check(False, "a certificate from another CA was accepted")
    except psycopg2.OperationalError as e:
        check("certificate verify failed" in str(e), f"unexpected error: {e}")
    try:
        s.connect(sslmode="disable").close()
        check(False, "plaintext accepted with client_tls_sslmode=require")
    except psycopg2.OperationalError as e:
        check("TLS is required" in str(e), f"unclear refusal: {e}")
    # the TLS listener still serves others
    conn = s.connect(sslmode="require")
    conn.cursor().execute("select 1")
    conn.close()


@test("tls.server_side_verify_full")
def t_server_side(env):
    c = certs(env)
    # PostgreSQL takes TLS with the same certificate
    env.pg.query("ALTER SYSTEM SET ssl = on")
    env.pg.query(f"ALTER SYSTEM SET ssl_cert_file = '{c['cert']}'")
    env.pg.query(f"ALTER SYSTEM SET ssl_key_file = '{c['key']}'")
    env.pg.query("SELECT pg_reload_conf()")
    try:
        s = env.sluice(settings={"server_tls_sslmode": "verify-full",
                                 "server_tls_ca_file": c["ca"]}, fresh=True)
        conn = s.connect()
        cur = conn.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        check(cur.fetchone()[0] is True, "sluice reached PostgreSQL without TLS")
        conn.close()
        # a CA that did not sign PostgreSQL's certificate: login fails clearly
        s2 = env.sluice(settings={"server_tls_sslmode": "verify-full",
                                  "server_tls_ca_file": c["other"]}, fresh=True)
        try:
            s2.connect().close()
            check(False, "server certificate from another CA accepted")
        except psycopg2.OperationalError as e:
            check("08006" in str(e) or "certificate" in str(e) or "TLS" in str(e),
                  f"unclear error: {e}")
    finally:
        env.drop_sluice()
        env.pg.query("ALTER SYSTEM RESET ssl")
        env.pg.query("SELECT pg_reload_conf()")


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


@test("big.result_streams_with_bounded_memory", timeout=180)
def t_big_result(env):
    s = env.sluice(settings={"pool_mode": "transaction"})
    warm = s.psql("-Atc", "select count(*) from generate_series(1, 1000)")
    check(warm.returncode == 0, warm.stderr)
    before = vm_hwm_kb(s.proc.pid)
    # 1 GB through COPY TO STDOUT, read by psql and thrown away
    sql = ("COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000)) TO STDOUT")
    p = subprocess.Popen(["psql", "-X", "-c", sql], env=s.pgenv(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    got = 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    err = p.stderr.read().decode(errors="replace")
    rc = p.wait(60)
    check(rc == 0, err[-500:])
    check(got >= 1_000_000 * 1001, f"only {got} bytes arrived")
    after = vm_hwm_kb(s.proc.pid)
    check(after - before < 16 * 1024,
          f"sluice peak RSS grew by {(after - before) // 1024} MB relaying 1 GB "
          f"({before} kB -> {after} kB)")


@test("tx.tracked_parameters_follow_each_client")
def t_tracked_parameters(env):
    """search_path given at connect (track_extra_parameters) and DateStyle set
    with SET follow their client on a one-server pool; another client on the
    same server never sees them."""
    from harness import Wire, PASSWORDS
    env.pg.query("CREATE SCHEMA IF NOT EXISTS tracked AUTHORIZATION app", dbname="app")
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                             "min_pool_size": "1",
                             "track_extra_parameters": "search_path"}, fresh=True)
    a = Wire("127.0.0.1", s.port)
    a.user_for_md5 = "app"
    a.login("app", "app", PASSWORDS["app"], extra={"search_path": "tracked, public"})
    b = s.wire()
    check(b.query("SET DateStyle = 'SQL, DMY'") is not None, "SET failed")
    for _ in range(5):
        check(a.query("SHOW search_path") == [["tracked, public"]],
              "client A lost the search_path it connected with")
        check(b.query("SHOW search_path") == [['"$user", public']],
              "client B sees client A's search_path")
        check(a.query("SHOW DateStyle") == [["ISO, MDY"]], "client A sees B's DateStyle")
        check(b.query("SHOW DateStyle") == [["SQL, DMY"]], "client B lost its DateStyle")
    a.close()
    b.close()
    env.drop_sluice()
