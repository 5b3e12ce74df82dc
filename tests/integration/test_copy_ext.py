"""COPY FROM STDIN through the extended protocol, as libpq's PQexecParams
sends it: Parse, Bind, Describe, Execute and Sync at once, then the data,
CopyDone and a second Sync. PostgreSQL is in copy-in mode when the first
Sync comes and ignores it, so only the second gets a ReadyForQuery.
sluice counted both: in transaction mode the server was never released
(the next client waited for ever), in session mode the client's leaving
closed its server as if a query were still running.

libpq is driven through ctypes: psycopg2 copies with the simple protocol.
"""
import ctypes
import ctypes.util

from harness import check, test, wait_until

PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_IN, PGRES_FATAL_ERROR = 1, 2, 4, 7


def libpq():
    pq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    sigs = {
        "PQconnectdb": (vp, [cp]), "PQstatus": (i, [vp]), "PQerrorMessage": (cp, [vp]),
        "PQexecParams": (vp, [vp, cp, i, vp, vp, vp, vp, i]), "PQexec": (vp, [vp, cp]),
        "PQputCopyData": (i, [vp, cp, i]), "PQputCopyEnd": (i, [vp, cp]),
        "PQgetResult": (vp, [vp]), "PQresultStatus": (i, [vp]), "PQclear": (None, [vp]),
        "PQresultErrorField": (cp, [vp, i]), "PQgetvalue": (cp, [vp, i, i]),
        "PQfinish": (None, [vp]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(pq, name)
        f.restype, f.argtypes = res, args
    return pq


class Conn:
    def __init__(self, pq, port):
        self.pq = pq
        self.c = pq.PQconnectdb(
            f"host=127.0.0.1 port={port} dbname=app user=app password=app".encode())
        check(pq.PQstatus(self.c) == 0, f"login: {pq.PQerrorMessage(self.c)}")

    def copy_in(self, data):
        """COPY copy_ext FROM STDIN by PQexecParams; the final status and
        SQLSTATE."""
        pq = self.pq
        r = pq.PQexecParams(self.c, b"COPY copy_ext FROM STDIN", 0, None, None, None, None, 0)
        st = pq.PQresultStatus(r)
        pq.PQclear(r)
        check(st == PGRES_COPY_IN, f"COPY did not start copy-in: {st}")
        check(pq.PQputCopyData(self.c, data, len(data)) == 1, "PQputCopyData failed")
        check(pq.PQputCopyEnd(self.c, None) == 1, "PQputCopyEnd failed")
        final, state = None, None
        while True:
            r = pq.PQgetResult(self.c)
            if not r:
                break
            final = pq.PQresultStatus(r)
            code = pq.PQresultErrorField(r, ord("C"))
            state = code.decode() if code else None
            pq.PQclear(r)
        return final, state

    def scalar(self, sql):
        pq = self.pq
        r = pq.PQexec(self.c, sql.encode())
        st = pq.PQresultStatus(r)
        v = pq.PQgetvalue(r, 0, 0).decode() if st == PGRES_TUPLES_OK else None
        pq.PQclear(r)
        check(st == PGRES_TUPLES_OK, f"{sql}: status {st}")
        return v

    def close(self):
        self.pq.PQfinish(self.c)


def setup_table(s):
    c = s.connect()
    c.cursor().execute("DROP TABLE IF EXISTS copy_ext; CREATE TABLE copy_ext (a int)")
    c.close()


@test("copy_ext.transaction_mode_releases_the_server", timeout=60)
def t_tx(env):
    s = env.sluice(settings={"pool_mode": "transaction", "default_pool_size": "1",
                             "min_pool_size": "0"})
    setup_table(s)
    pq = libpq()
    a = Conn(pq, s.port)
    try:
        for i in range(3):
            check(a.copy_in(b"1\n2\n") == (PGRES_COMMAND_OK, None), f"round {i}: COPY failed")
            check(a.scalar("SELECT count(*) FROM copy_ext") == str(2 * (i + 1)),
                  f"round {i}: rows")
        # a COPY that fails on its data: the error, and the server goes on
        final, state = a.copy_in(b"x\n")
        check(final == PGRES_FATAL_ERROR and state == "22P02", f"bad data: {final} {state}")
        check(a.scalar("SELECT count(*) FROM copy_ext") == "6", "rows after the failed COPY")
        # the pool's one server must be free for another client now
        b = s.connect()
        try:
            cur = b.cursor()
            cur.execute("SET statement_timeout = 0; SELECT 1")
            check(cur.fetchone() == (1,), "the other client")
        finally:
            b.close()
    finally:
        a.close()


@test("copy_ext.session_mode_reuses_the_server", timeout=60)
def t_session(env):
    s = env.sluice(settings={"pool_mode": "session", "default_pool_size": "1",
                             "min_pool_size": "0"})
    setup_table(s)
    pq = libpq()
    a = Conn(pq, s.port)
    pid = a.scalar("SELECT pg_backend_pid()")
    check(a.copy_in(b"5\n") == (PGRES_COMMAND_OK, None), "COPY failed")
    a.close()
    # reset and pooled, not closed for "a query in progress"
    b = Conn(pq, s.port)
    try:
        check(wait_until(lambda: env.backends() == 1, 5), "servers")
        check(b.scalar("SELECT pg_backend_pid()") == pid,
              "the server was closed when its client left after the COPY")
    finally:
        b.close()
