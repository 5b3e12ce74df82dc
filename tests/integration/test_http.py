"""HTTP on stats_listen: /metrics and /health.

/metrics after a known pgbench workload is read by a strict exposition
checker written here (every sample under a TYPE, valid names, counters
ending in _total, histograms cumulative to +Inf with _count equal to the
+Inf bucket, no duplicate series) and by promtool when it is installed;
the statement counts it shows are the workload's. /health is 200, turns 503
when PostgreSQL stops and 200 again when it is back. Unknown paths get 404,
other methods 405, malformed requests 400. Slow or idle HTTP clients and a
flood of connections past the limit do not slow SQL through sluice.
"""
import http.client
import json
import math
import re
import shutil
import socket
import subprocess
import threading
import time

import psycopg2

from harness import check, free_port, pgbench, test, wait_until

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|})')


def http_sluice(env, fresh=True, **settings):
    port = free_port()
    base = {"stats_listen": f"127.0.0.1:{port}", "pool_mode": "transaction"}
    base.update(settings)
    s = env.sluice(settings=base, fresh=fresh)
    s.http_port = port
    check(wait_port_http(port), "nothing listens on stats_listen")
    return s


def wait_port_http(port, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def get(s, path, method="GET", timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
    finally:
        c.close()


def admin_rows(s, sql):
    c = s.connect(user="admin", dbname="sluice")
    try:
        cur = c.cursor()
        cur.execute(sql)
        cols = [d[0] for d in cur.description]
        types = [d[1] for d in cur.description]
        return cols, types, [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()


def parse_labels(text, where):
    """'{a="x",b="y"}' -> (dict, rest of the line)."""
    labels = {}
    if not text.startswith("{"):
        return labels, text
    pos = 1
    if text[pos] == "}":
        return labels, text[2:]
    while True:
        m = LABEL_RE.match(text, pos)
        check(m is not None, f"bad labels in {where!r}")
        name, val = m.group(1), m.group(2)
        check(name not in labels, f"label {name} twice in {where!r}")
        labels[name] = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), val)
        pos = m.end()
        if m.group(3) == "}":
            return labels, text[pos:]


def strict_check(body):
    """Check the exposition strictly; return {(name, frozenset(labels)): value}."""
    check(body.endswith("\n"), "body must end with a newline")
    families = {}        # name -> type
    order = []           # families as they come
    helps = set()
    samples = {}
    hist = {}            # (family, labels without le) -> [(le, value)]
    counts = {}
    for line in body.split("\n")[:-1]:
        check(line != "", "empty line in the exposition")
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            check(NAME_RE.match(name), f"bad family name {name}")
            check(name not in helps, f"HELP twice for {name}")
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4, f"bad TYPE line {line!r}")
            name, typ = parts[2], parts[3]
            check(name in helps, f"TYPE before HELP for {name}")
            check(name not in families, f"TYPE twice for {name}")
            check(typ in ("counter", "gauge", "histogram", "summary"), f"type {typ}")
            if typ == "counter":
                check(name.endswith("_total"), f"counter {name} does not end in _total")
            families[name] = typ
            order.append(name)
            continue
        check(not line.startswith("#"), f"stray comment {line!r}")
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$", line)
        check(m is not None, f"bad sample {line!r}")
        name, rest = m.group(1), m.group(2)
        labels, rest = parse_labels(rest, line)
        check(rest.startswith(" "), f"no value in {line!r}")
        value = float(rest[1:])
        fam, suffix = name, ""
        if name not in families:
            for sfx in ("_bucket", "_sum", "_count"):
                if name.endswith(sfx) and name[:-len(sfx)] in families:
                    fam, suffix = name[:-len(sfx)], sfx
        check(fam in families, f"sample {name} has no TYPE")
        check(order[-1] == fam, f"sample {name} away from its family")
        typ = families[fam]
        if suffix:
            check(typ == "histogram" or (typ == "summary" and suffix != "_bucket"),
                  f"{name} in a {typ}")
        key = (name, frozenset(labels.items()))
        check(key not in samples, f"duplicate series {name}{labels}")
        samples[key] = value
        if typ == "histogram":
            base = frozenset((k, v) for k, v in labels.items() if k != "le")
            if suffix == "_bucket":
                check("le" in labels, f"bucket without le: {line!r}")
                hist.setdefault((fam, base), []).append((labels["le"], value))
            elif suffix == "_count":
                counts[(fam, base)] = value
    for key, buckets in hist.items():
        les = [float("inf") if le == "+Inf" else float(le) for le, _ in buckets]
        check(les == sorted(les), f"buckets of {key} not in order")
        check(math.isinf(les[-1]), f"histogram {key} does not end with +Inf")
        vals = [v for _, v in buckets]
        check(all(a <= b for a, b in zip(vals, vals[1:])), f"histogram {key} not cumulative")
        check(key in counts, f"histogram {key} has no _count")
        check(counts[key] == vals[-1], f"{key}: _count {counts[key]} != +Inf {vals[-1]}")
    return samples, families


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool(body):
    """Run promtool check metrics on body; None when promtool is not installed."""
    tool = shutil.which("promtool")
    if not tool:
        return None
    r = subprocess.run([tool, "check", "metrics"], input=body, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r


def check_promtool(body):
    r = promtool(body)
    if r is None:
        print("  (promtool not installed: strict checker only)")
        return
    # promtool exits non-zero on errors; lint remarks are printed too, and
    # sluice's exposition must not draw any
    check(r.returncode == 0 and r.stdout.strip() == "", f"promtool check metrics:\n{r.stdout}")


@test("http.metrics_after_workload", timeout=120)
def t_metrics(env):
    env.ensure_pgbench()
    s = http_sluice(env)
    c = s.connect(user="admin", dbname="sluice")
    c.cursor().execute("RESET STATS")
    c.close()
    r = pgbench(s, "-n", "-c", "2", "-t", "50", "-M", "simple")
    check(r.returncode == 0, f"pgbench failed:\n{r.stdout}")
    status, hdr, raw = get(s, "/metrics")
    check(status == 200, f"/metrics gave {status}")
    check(hdr.get("content-type", "").startswith("text/plain; version=0.0.4"),
          f"content-type {hdr.get('content-type')}")
    # HTTP/1.1 keeps the connection, as Prometheus uses it (http.keep_alive)
    check(hdr.get("connection") == "keep-alive", f"Connection: {hdr.get('connection')}")
    body = raw.decode("utf-8")
    check(len(body) > 1000, "body is nearly empty")
    samples, families = strict_check(body)
    check_promtool(body)
    check(not any(f.startswith("pgbouncer_") for f in families), "pgbouncer_* without asking")
    # 100 TPC-B transactions: 3 updates, 1 insert, 1 select each
    upd = value(samples, "sluice_statement_class_duration_seconds_count", **{"class": "update"})
    ins = value(samples, "sluice_statement_class_duration_seconds_count", **{"class": "insert"})
    sel = value(samples, "sluice_statement_class_duration_seconds_count", **{"class": "select"})
    check(upd == 300, f"updates {upd}")
    check(ins == 100, f"inserts {ins}")
    check(sel is not None and sel >= 100, f"selects {sel}")
    pool_count = value(samples, "sluice_pool_statement_duration_seconds_count",
                       database="app", user="app")
    check(pool_count is not None and pool_count >= 500, f"pool histogram count {pool_count}")
    idle = value(samples, "sluice_pool_servers", database="app", user="app", state="idle")
    check(idle is not None and idle >= 1, f"idle servers {idle}")
    check(value(samples, "sluice_up") == 1, "sluice_up")
    check(value(samples, "sluice_health_status", check="backend_reachable") == 0,
          "backend_reachable not ok")
    # top statements: bounded, and the update of pgbench_accounts is there
    tops = [k for k in samples if k[0] == "sluice_statement_duration_seconds_count"]
    check(0 < len(tops) <= 50, f"{len(tops)} statement series")
    check(any(dict(k[1]).get("class") == "update" and samples[k] == 100 for k in tops),
          "no statement series for an update run 100 times")
    check(not any("pgbench_accounts" in str(k[1]) for k in samples), "query text in labels")
    # HEAD: the same headers, no body
    status, hdr, raw = get(s, "/metrics", method="HEAD")
    check(status == 200 and raw == b"", f"HEAD gave {status}, {len(raw)} bytes")
    check(int(hdr["content-length"]) > 1000, "HEAD without the body's length")
    # a query string is not part of the path
    status, _, _ = get(s, "/metrics?debug=1")
    check(status == 200, f"/metrics?debug=1 gave {status}")
    # pgbouncer_exporter's names, switched on by a reload
    s.settings["metrics_pgbouncer_names"] = "on"
    s.reload()

    def has_pgb():
        return b"\npgbouncer_up 1\n" in get(s, "/metrics")[2]
    check(wait_until(has_pgb, 5), "metrics_pgbouncer_names = on did not apply")
    body = get(s, "/metrics")[2].decode("utf-8")
    samples, families = strict_check(body)
    check_promtool(body)
    for f in ("pgbouncer_pools_client_active_connections", "pgbouncer_pools_server_idle_connections",
              "pgbouncer_stats_queries_pooled_total", "pgbouncer_stats_sent_bytes_total",
              "pgbouncer_pools_client_maxwait_seconds"):
        check(f in families, f"{f} missing")


@test("http.health_follows_postgres", timeout=120)
def t_health(env):
    s = http_sluice(env, min_pool_size=2, server_login_retry=1)
    status, hdr, raw = get(s, "/health")
    check(status == 200, f"/health gave {status}: {raw[:300]}")
    check(hdr.get("content-type") == "application/json", f"type {hdr.get('content-type')}")
    doc = json.loads(raw)
    names = [c["check"] for c in doc["checks"]]
    check(names == ["backend_reachable", "pool_saturation", "wait_queue", "error_rate",
                    "p95_latency", "slow_rate", "cache_hit_ratio", "redis"], f"checks {names}")
    check(doc["status"] in ("ok", "warn"), f"status {doc['status']}")
    for c in doc["checks"]:
        check(set(c) == {"check", "status", "value", "unit", "warn", "critical", "fails",
                         "detail"}, f"keys {sorted(c)}")
    cache = doc["checks"][6]
    check(cache["status"] == "ok" and cache["value"] is None and cache["detail"] == "not enabled",
          f"cache {cache}")
    p95 = doc["checks"][4]
    check(p95["warn"] == 100 and p95["critical"] == 500, f"p95 thresholds {p95}")
    # the console shows the same checks, typed
    cols, types, rows = admin_rows(s, "SHOW HEALTH")
    check(cols == ["check", "status", "value", "unit", "warn", "critical", "fails", "detail"],
          f"SHOW HEALTH columns {cols}")
    check(types[2] == 701 and types[4] == 701 and types[5] == 701, f"types {types}")
    check([r["check"] for r in rows] == names, "SHOW HEALTH rows")
    check(rows[4]["warn"] == 100.0 and rows[0]["value"] == 0.0, f"rows {rows[:5]}")
    cols, types, rows = admin_rows(s, "SHOW CACHE")
    check(cols == ["hits", "misses", "hit_ratio", "stores", "bytes", "evictions",
                   "invalidations", "uncacheable", "redis"], f"SHOW CACHE columns {cols}")
    check(types[0] == 20 and types[2] == 701, f"SHOW CACHE types {types}")
    check(len(rows) == 1 and rows[0]["redis"] == "not enabled" and rows[0]["hits"] == 0
          and rows[0]["hit_ratio"] is None, f"SHOW CACHE {rows}")
    # PostgreSQL goes away: critical, 503
    try:
        env.pg.stop()
        try:
            c = s.connect()
            c.cursor().execute("SELECT 1")
            c.close()
        except psycopg2.Error:
            pass

        def down():
            st, _, b = get(s, "/health")
            return st == 503 and json.loads(b)["checks"][0]["status"] == "critical"
        check(wait_until(down, 10, 0.2), "/health did not turn 503 with PostgreSQL down")
        st, _, b = get(s, "/health")
        doc = json.loads(b)
        check(doc["status"] == "critical", f"status {doc['status']}")
        check("app/app" in doc["checks"][0]["detail"], f"detail {doc['checks'][0]['detail']}")
        _, _, rows = admin_rows_down(s)
        check(rows[0]["status"] == "critical", f"SHOW HEALTH with PostgreSQL down: {rows[0]}")
    finally:
        if not env.pg.running:
            env.pg.start()

    def up():
        return get(s, "/health")[0] == 200
    check(wait_until(up, 15, 0.2), "/health did not come back to 200 with PostgreSQL up")


def admin_rows_down(s):
    """The admin console needs no server: it answers with PostgreSQL down."""
    return admin_rows(s, "SHOW HEALTH")


def read_response(sock):
    """One HTTP response from <sock>: (status line, headers dict, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {buf[:80]!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = dict((k.strip().lower(), v.strip()) for k, v in
                (l.split(":", 1) for l in lines[1:]))
    n = int(hdrs["content-length"])
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    check(len(rest) == n, f"{len(rest) - n} bytes past the body")
    return lines[0], hdrs, rest


def closed_by_server(sock, timeout=3):
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@test("http.keep_alive", timeout=60)
def t_keep_alive(env):
    s = http_sluice(env)
    # HTTP/1.1: one connection answers request after request
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=5)
    try:
        for path in (b"/metrics", b"/health", b"/nothing", b"/metrics"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            st, hdrs, body = read_response(sock)
            want = b"404" if path == b"/nothing" else b"200"
            check(st.split()[1].encode() == want, f"{path!r} on a kept connection: {st}")
            check(hdrs.get("connection") == "keep-alive", f"{path!r}: {hdrs}")
            check(path != b"/metrics" or b"sluice_up 1" in body, "no /metrics body")
        # asking to close is honoured
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
        st, hdrs, _ = read_response(sock)
        check(hdrs.get("connection") == "close", f"Connection: close asked, got {hdrs}")
        check(closed_by_server(sock), "the connection stayed open after Connection: close")
    finally:
        sock.close()
    # HTTP/1.0 closes unless asked to keep; with keep-alive asked it stays
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        st, hdrs, _ = read_response(sock)
        check(hdrs.get("connection") == "keep-alive", f"HTTP/1.0 keep-alive: {hdrs}")
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        st, hdrs, _ = read_response(sock)
        check(hdrs.get("connection") == "close", f"HTTP/1.0: {hdrs}")
        check(closed_by_server(sock), "an HTTP/1.0 connection stayed open")
    finally:
        sock.close()
    # two requests in one write (pipelined), a body, and a bad request close
    for req in (b"GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
                b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
                b"GET nonsense\r\n\r\n"):
        sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=5)
        try:
            sock.sendall(req)
            st, hdrs, _ = read_response(sock)
            check(hdrs.get("connection") == "close", f"{req!r}: {st} {hdrs}")
            check(closed_by_server(sock), f"{req!r}: the connection stayed open")
        finally:
            sock.close()
    check(s.alive(), "sluice died")


def raw_request(port, data, timeout=5):
    """Send bytes, read until the server closes; the response bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        sock.close()


@test("http.status_codes")
def t_codes(env):
    s = http_sluice(env)
    st, _, b = get(s, "/nope")
    check(st == 404, f"/nope gave {st}")
    st, _, _ = get(s, "/")
    check(st == 404, f"/ gave {st}")
    st, hdr, _ = get(s, "/metrics", method="POST")
    check(st == 405 and hdr.get("allow") == "GET, HEAD", f"POST gave {st} {hdr}")
    st, _, _ = get(s, "/health", method="DELETE")
    check(st == 405, f"DELETE gave {st}")
    st, _, b = get(s, "/health", method="HEAD")
    check(st == 200 and b == b"", f"HEAD /health {st} {b!r}")
    out = raw_request(s.http_port, b"NONSENSE\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 400 "), f"malformed request: {out[:60]!r}")
    out = raw_request(s.http_port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 431 ") or out == b"", f"huge headers: {out[:60]!r}")
    # bare \n line ends are accepted, as HTTP/1.1 allows
    out = raw_request(s.http_port, b"GET /health HTTP/1.0\n\n")
    check(out.startswith(b"HTTP/1.1 200 "), f"\\n\\n request: {out[:60]!r}")
    check(s.alive(), "sluice died")


def sql_latencies(s, n):
    """Run n SELECT 1 through sluice; the slowest round trip in seconds."""
    c = s.connect()
    cur = c.cursor()
    worst = 0.0
    try:
        for _ in range(n):
            t0 = time.time()
            cur.execute("SELECT 1")
            cur.fetchone()
            worst = max(worst, time.time() - t0)
    finally:
        c.close()
    return worst


@test("http.slow_clients_do_not_stall", timeout=60)
def t_slow(env):
    s = http_sluice(env)
    silent = [socket.create_connection(("127.0.0.1", s.http_port)) for _ in range(10)]
    trickle = [socket.create_connection(("127.0.0.1", s.http_port)) for _ in range(5)]
    stop = threading.Event()

    def trickler():
        i = 0
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 500
        while not stop.is_set():
            for t in trickle:
                try:
                    t.send(req[i % len(req):i % len(req) + 1])
                except OSError:
                    pass
            i += 1
            time.sleep(0.2)
    th = threading.Thread(target=trickler, daemon=True)
    th.start()
    try:
        t0 = time.time()
        worst = sql_latencies(s, 300)
        check(worst < 0.5, f"a SELECT 1 took {worst:.3f} s with slow HTTP clients")
        # a scrape still gets through beside them
        st, _, _ = get(s, "/metrics", timeout=3)
        check(st == 200, f"/metrics beside slow clients gave {st}")
        # the read timeout (5 s from accept) closes them, trickle or not
        time.sleep(max(0, 6.5 - (time.time() - t0)))
        for sock in silent + trickle:
            sock.settimeout(2)
            try:
                data = sock.recv(100)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                data = None
            check(data == b"", f"a slow client was not closed after the timeout ({data!r})")
    finally:
        stop.set()
        th.join(2)
        for sock in silent + trickle:
            sock.close()
    check(s.alive(), "sluice died")


@test("http.connection_limit", timeout=60)
def t_limit(env):
    s = http_sluice(env)
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(("127.0.0.1", s.http_port), timeout=5))
        time.sleep(0.3)
        # the ones past 64 are answered 503 and closed at once
        refused = 0
        for sock in socks:
            sock.settimeout(0.05)
            try:
                data = sock.recv(200)
                if data == b"" or data.startswith(b"HTTP/1.1 503 "):
                    refused += 1
            except (socket.timeout, BlockingIOError):
                pass
            except ConnectionResetError:
                refused += 1
        check(refused >= 36, f"only {refused} of 100 connections refused past the limit of 64")
        check(sql_latencies(s, 100) < 0.5, "SQL slowed by the HTTP connections")
    finally:
        for sock in socks:
            sock.close()

    def scrape_ok():
        try:
            return get(s, "/metrics", timeout=2)[0] == 200
        except OSError:
            return False
    check(wait_until(scrape_ok, 5), "/metrics did not come back after the flood")
    samples, _ = strict_check(get(s, "/metrics")[2].decode())
    check(value(samples, "sluice_http_refused_connections_total") >= 36,
          "refused connections not counted")
    check(s.alive(), "sluice died")


def listening_ports(pid):
    """TCP ports process <pid> listens on (from /proc)."""
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].split(":")[1], 16))
    return ports


@test("http.off_when_empty")
def t_off(env):
    s = env.sluice(settings={"stats_listen": ""}, fresh=True)
    check(listening_ports(s.proc.pid) == {s.port},
          f"listening on {listening_ports(s.proc.pid)} with stats_listen empty")
    h = http_sluice(env)
    check(listening_ports(h.proc.pid) == {h.port, h.http_port},
          f"listening on {listening_ports(h.proc.pid)} with stats_listen set")


@test("http.port_in_use_stops_startup")
def t_in_use(env):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        from harness import Sluice
        s = Sluice(env, settings={"stats_listen": f"127.0.0.1:{port}"})
        logf = open(s.log, "ab")
        p = subprocess.Popen([env.sluice_bin, s.conf], stdout=logf, stderr=subprocess.STDOUT,
                             cwd=s.dir)
        logf.close()
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
        check(rc != 0, "sluice started though stats_listen was taken")
        check("stats_listen" in s.log_tail(), f"log does not say why:\n{s.log_tail()}")
    finally:
        busy.close()

