"""Fidelity: what real clients found sluice doing differently from a direct
PostgreSQL connection (issue 12, item 2), each checked against PostgreSQL
itself where it can be."""
import socket
import struct
import time

import psycopg2

from harness import PgError, check, login_wire, test, wait_until

# "IX-" then U+2168 ROMAN NUMERAL NINE, which SASLprep (NFKC) makes "IX-IX"
SASLPREP_PW = "IX-\u2168"


def ensure_role(env, role, password):
    """A login role made directly in PostgreSQL (which SASLprep's the
    password itself before storing its SCRAM keys)."""
    c = env.pg.connect()
    cur = c.cursor()
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if not cur.fetchall():
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    c.close()


@test("fidelity.saslprep_plaintext_password")
def t_saslprep(env):
    """A plaintext password with a non-ASCII character in auth_file logs in
    by SCRAM both ways: libpq SASLprep's it on the client side and
    PostgreSQL stored it SASLprep'd, so sluice must prepare it too, for the
    keys it checks the client against and for those it logs in with."""
    ensure_role(env, "saslprep", SASLPREP_PW)
    # sanity: PostgreSQL itself takes it over TCP (SCRAM, host rule)
    d = psycopg2.connect(host="127.0.0.1", port=env.pg.port, user="saslprep",
                         dbname="app", password=SASLPREP_PW, connect_timeout=10)
    d.close()
    s = env.sluice(settings={"auth_type": "scram-sha-256", "min_pool_size": "0"},
                   userlist={"saslprep": SASLPREP_PW})
    c = s.connect(user="saslprep", password=SASLPREP_PW)
    cur = c.cursor()
    cur.execute("SELECT current_user")
    check(cur.fetchone()[0] == "saslprep", "logged in through sluice")
    c.close()
    # the prepared form is the password itself, for SCRAM
    c = s.connect(user="saslprep", password="IX-IX")
    c.close()
    try:
        s.connect(user="saslprep", password="IX-X").close()
        raise AssertionError("a wrong password was accepted")
    except psycopg2.OperationalError as e:
        check("password authentication failed" in str(e), f"wrong password: {e}")


@test("fidelity.saslprep_towards_postgresql")
def t_saslprep_server(env):
    """The server side alone: with auth_type = plain the client's password
    is compared as it is, and only sluice's SCRAM login to PostgreSQL
    needs the prepared password."""
    ensure_role(env, "saslprep", SASLPREP_PW)
    s = env.sluice(settings={"auth_type": "plain", "min_pool_size": "0"},
                   userlist={"saslprep": SASLPREP_PW})
    c = s.connect(user="saslprep", password=SASLPREP_PW)
    cur = c.cursor()
    cur.execute("SELECT current_user")
    check(cur.fetchone()[0] == "saslprep", "server login with the prepared password")
    c.close()
