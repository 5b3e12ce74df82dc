"""What the drivers' own test suites (make drivers, tests/drivers/) found
sluice doing differently from a direct connection, each checked against
PostgreSQL itself first."""
import time

from harness import PgError, TestFailure, check, login_wire, run_with_deadline, test

LIMITED = "limited"
LIMITED_PW = "limited-pw"


def ensure_limited_role(env):
    """A login role PostgreSQL lets have one connection at a time."""
    c = env.pg.connect()
    cur = c.cursor()
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (LIMITED,))
    if not cur.fetchall():
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute(f"CREATE ROLE {LIMITED} LOGIN CONNECTION LIMIT 1 PASSWORD %s", (LIMITED_PW,))
    c.close()


def refused_login(port):
    """Log in as the limited role at 127.0.0.1:<port>; the PgError it must
    raise."""
    try:
        w = login_wire("127.0.0.1", port, LIMITED, "app", LIMITED_PW)
    except PgError as e:
        return e
    w.close()
    raise TestFailure("the second login of a role with CONNECTION LIMIT 1 succeeded")


@test("drivers_found.session_role_connection_limit")
def t_role_connection_limit(env):
    """@databases/pg's "too many connections for role" test: with the role's
    CONNECTION LIMIT reached, a direct login fails at once with FATAL 53300,
    and the driver's pool retries on the connections it has. In session mode
    sluice kept such a client waiting, retrying the server login every
    server_login_retry, until another client of the role left, so the
    driver's connect timed out instead. The client gets PostgreSQL's own
    error now, at once, and the pool is not marked as failing."""
    ensure_limited_role(env)
    # PostgreSQL itself, for the words the client must get
    held = login_wire("127.0.0.1", env.pg.port, LIMITED, "app", LIMITED_PW)
    direct = refused_login(env.pg.port)
    held.close()
    check(direct.code == "53300", f"direct: {direct}")
    s = env.sluice(settings={"pool_mode": "session", "min_pool_size": "0"},
                   userlist={LIMITED: LIMITED_PW})
    time.sleep(0.2)  # the direct session above is gone
    a = s.wire(user=LIMITED, password=LIMITED_PW)
    try:
        check(a.query("SELECT current_user") == [[LIMITED]], "first client logged in")
        t0 = time.time()
        e = run_with_deadline(lambda: refused_login(s.port), 10, "second login")
        took = time.time() - t0
        check(e.code == "53300", f"through sluice: {e}")
        check(e.fields.get("S") == "FATAL", f"severity {e.fields.get('S')}")
        check(e.fields.get("M") == direct.fields.get("M"),
              f"message {e.fields.get('M')!r}, direct {direct.fields.get('M')!r}")
        check(took < 2.0, f"the refused client waited {took:.1f}s")
        # the first client is not hurt
        check(a.query("SELECT 1") == [["1"]], "first client after the refusal")
    finally:
        a.close()
    # the pool is fine: the next client of the role logs in at once
    b = run_with_deadline(lambda: s.wire(user=LIMITED, password=LIMITED_PW), 5,
                          "login once the first client left")
    check(b.query("SELECT current_user") == [[LIMITED]], "login after the first client left")
    b.close()
