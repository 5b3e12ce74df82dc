"""The result cache for the extended protocol (Parse/Bind/Execute) against
real PostgreSQL and Redis.

A marked statement sent as one group [Parse] Bind [Describe] Execute Sync
misses, then hits with no new pg_stat_statements call; every parameter
value is its own entry (two values, two right answers); a binary result
format is another entry than a text one; named statements in transaction
mode (a raw-protocol client, pgbench -M prepared and PgJDBC past its
prepareThreshold) hit, and a statement named through a hit still exists
at the server when a later Bind misses; the unnamed statement a hit
answered can still be bound, described and closed afterwards; an UPDATE
(simple or extended) makes the next read return the new value, an ALTER
under a named statement never gets rows of the old shape; an error is not
stored; forms not served are counted, not served. Session and transaction
mode.
"""
import os
import shutil
import struct
import subprocess

from harness import (M_FLUSH, M_SYNC, Skip, admin_rows, check, m_bind, m_close, m_describe,
                     m_execute, m_parse, parse_datarow, pgbench, test)
from test_cache import cache_row, calls, setup, start

READ = "SELECT /* sluice:cache */ v AS {m} FROM cache_t WHERE id = $1"


def group(sql, params, name="", describe=True, result_formats=(), parse=True, oids=()):
    """One statement as drivers send it: [Parse] Bind [Describe] Execute Sync."""
    out = m_parse(name, sql, oids) if parse else b""
    out += m_bind("", name, params, result_formats)
    if describe:
        out += m_describe(b"P", "")
    return out + m_execute("", 0) + M_SYNC


def run(w, data):
    """Send <data> (ending in one Sync); the reply's message types and rows."""
    w.send(data)
    msgs = w.collect(until_ready=1)
    types = b"".join(t for t, _ in msgs)
    rows = [p for t, p in msgs if t == b"D"]
    errs = [p for t, p in msgs if t == b"E"]
    return types, rows, errs


def vals(rows):
    return [parse_datarow(p)[0] for p in rows]


def hit_and_miss(env, mode):
    setup(env)
    s = start(env, mode=mode)
    w = s.wire()
    m = "ext_hit_" + mode
    q = READ.format(m=m)
    before = cache_row(s)
    seen = [run(w, group(q, ["7"])) for _ in range(4)]
    for types, rows, errs in seen:
        check(not errs, f"{mode}: errors {errs}")
        check(types == b"12TDCZ", f"{mode}: replied {types}, want ParseComplete, "
              "BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery")
        check(vals(rows) == ["7"], f"{mode}: rows {vals(rows)}")
    check(len({r[0][0] for r in seen}) == 1, "a hit's bytes differ from the miss's")
    check(calls(env, m) == 1, f"{mode}: PostgreSQL ran it {calls(env, m)} times, want 1")
    after = cache_row(s)
    check(after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 3,
          f"{mode}: hits/misses {before} -> {after}")
    # without Describe: another entry (no RowDescription in its reply)
    for _ in range(2):
        types, rows, errs = run(w, group(q, ["7"], describe=False))
        check(types == b"12DCZ" and vals(rows) == ["7"] and not errs,
              f"{mode}: no Describe: {types} {vals(rows)} {errs}")
    check(calls(env, m) == 2, f"{mode}: the Execute without Describe: {calls(env, m)} calls")
    # SHOW QUERIES: the statement's row counts the hits, not as calls
    rows = [r for r in admin_rows(s, "SHOW QUERIES") if f"AS {m} FROM" in r["query"]]
    check(len(rows) == 1 and rows[0]["cache_hits"] == 4 and rows[0]["calls"] == 2,
          f"{mode}: SHOW QUERIES rows {rows}")
    w.close()


@test("cache ext: a marked extended query misses, then hits without a server (session mode)")
def t_hit_session(env):
    hit_and_miss(env, "session")


@test("cache ext: a marked extended query misses, then hits without a server (transaction mode)")
def t_hit_tx(env):
    hit_and_miss(env, "transaction")


@test("cache ext: each parameter value is its own entry, never another's")
def t_params(env):
    setup(env)
    s = start(env, mode="transaction")
    w = s.wire()
    m = "ext_params"
    q = READ.format(m=m)
    for _ in range(3):
        for v in ("7", "8", "9"):
            types, rows, errs = run(w, group(q, [v]))
            check(not errs and vals(rows) == [v], f"id = {v} answered {vals(rows)} {errs}")
    check(calls(env, m) == 3, f"three values, {calls(env, m)} calls (want 3)")
    # a NULL parameter is not an empty one: no rows at all
    types, rows, errs = run(w, group(q, [None]))
    check(not errs and rows == [], f"NULL parameter: {vals(rows)} {errs}")
    # parameter types from the Parse: int4 declared gives the same rows, as
    # its own entry
    types, rows, errs = run(w, group(q, ["7"], oids=(23,)))
    check(not errs and vals(rows) == ["7"], f"typed parameter: {vals(rows)} {errs}")
    check(calls(env, m) == 5, f"NULL and typed are their own entries: {calls(env, m)} calls")
    w.close()


@test("cache ext: groups pipelined with other requests are answered in order")
def t_pipeline(env):
    from harness import m_query
    for mode in ("session", "transaction"):
        setup(env)
        s = start(env, mode=mode)
        w = s.wire()
        q = READ.format(m="ext_pipe_" + mode)
        run(w, group(q, ["7"]))
        run(w, group(q, ["8"]))
        batch = (group(q, ["7"]) + m_query("SELECT 1001") + group(q, ["8"]) + group(q, ["9"])
                 + group(q, ["7"], describe=False) + group(q, ["7"]))
        w.send(batch)
        msgs = w.collect(until_ready=6)
        got = [parse_datarow(p)[0] for t, p in msgs if t == b"D"]
        check(got == ["7", "1001", "8", "9", "7", "7"], f"{mode}: out of order: {got}")
        check(b"".join(t for t, _ in msgs) ==
              b"12TDCZ" b"TDCZ" b"12TDCZ" b"12TDCZ" b"12DCZ" b"12TDCZ",
              f"{mode}: messages {[t for t, _ in msgs]}")
        # 2 stored first; in the batch the first group is a hit, and the
        # groups behind the Query go to PostgreSQL (a hit must not overtake
        # what the server still answers)
        check(calls(env, "ext_pipe_" + mode) == 6,
              f"{mode}: {calls(env, 'ext_pipe_' + mode)} calls, want 6")
        # hits one after another, then a miss, and a group behind it that
        # waits for the miss's reply and runs
        w.send(group(q, ["8"]) + group(q, ["7"]) + group(q, ["8"]) + group(q, ["11"])
               + group(q, ["7"]))
        msgs = w.collect(until_ready=5)
        got = [parse_datarow(p)[0] for t, p in msgs if t == b"D"]
        check(got == ["8", "7", "8", "11", "7"], f"{mode}: out of order: {got}")
        check(calls(env, "ext_pipe_" + mode) == 8,
              f"{mode}: {calls(env, 'ext_pipe_' + mode)} calls, want 8")
        w.close()


@test("cache ext: a binary result format is its own entry")
def t_binary(env):
    setup(env)
    s = start(env, mode="session")
    w = s.wire()
    m = "ext_bin"
    q = READ.format(m=m)
    for _ in range(2):
        types, rows, errs = run(w, group(q, ["7"], result_formats=(1,)))
        check(not errs and len(rows) == 1, f"binary: {types} {errs}")
        n, ln = struct.unpack("!Hi", rows[0][:6])
        check(n == 1 and ln == 4 and struct.unpack("!i", rows[0][6:10])[0] == 7,
              f"binary int4 7 expected, got {rows[0]!r}")
    check(calls(env, m) == 1, f"binary: {calls(env, m)} calls, want 1")
    types, rows, errs = run(w, group(q, ["7"]))
    check(not errs and vals(rows) == ["7"], f"text after binary: {rows} {errs}")
    check(calls(env, m) == 2, "a text request was answered by the binary entry")
    w.close()


@test("cache ext: named statements in transaction mode; one named by a hit still runs on a miss")
def t_named(env):
    setup(env)
    s = start(env, mode="transaction")
    m = "ext_named"
    q = READ.format(m=m)
    w = s.wire()
    # prepared once, then Bind/Describe/Execute/Sync as pgbench -M prepared
    types, _, errs = run(w, m_parse("s1", q) + M_SYNC)
    check(types == b"1Z" and not errs, f"Parse: {types} {errs}")
    for i in range(4):
        types, rows, errs = run(w, group(q, ["7"], name="s1", parse=False))
        check(types == b"2TDCZ" and vals(rows) == ["7"] and not errs,
              f"Bind s1 #{i}: {types} {vals(rows)} {errs}")
    # the first Describe went to PostgreSQL (it tells sluice the shape),
    # the second was stored, the others hit
    check(calls(env, m) == 2, f"named: {calls(env, m)} calls, want 2")
    check(cache_row(s)["hits"] >= 2, f"named: {cache_row(s)}")
    # Parse "s2" + Bind + Execute (no Describe) in one group, as PgJDBC
    g = group(q, ["8"], name="s2", describe=False)
    types, rows, errs = run(w, g)
    check(types == b"12DCZ" and vals(rows) == ["8"] and not errs, f"s2: {types} {errs}")
    w.close()
    n = calls(env, m)
    w2 = s.wire()
    types, rows, errs = run(w2, g)  # a hit answers the Parse of s2 too
    check(types == b"12DCZ" and vals(rows) == ["8"] and not errs, f"s2 hit: {types} {errs}")
    check(calls(env, m) == n, "the Parse+Bind+Execute of s2 was not a hit")
    # s2 was named only by the hit: a Bind of it that misses still runs
    types, rows, errs = run(w2, group(q, ["9"], name="s2", describe=False, parse=False))
    check(not errs and vals(rows) == ["9"], f"Bind of s2 after a hit: {types} {errs}")
    check(calls(env, m) == n + 1, "the miss did not run at PostgreSQL")
    w2.close()


@test("cache ext: the unnamed statement answered by a hit can still be bound (session mode)")
def t_unnamed_rebind(env):
    setup(env)
    s = start(env, mode="session")
    m = "ext_rebind"
    q = READ.format(m=m)
    w = s.wire()
    run(w, group(q, ["7"]))  # stored
    w.close()
    w = s.wire()
    types, rows, errs = run(w, group(q, ["7"]))
    check(vals(rows) == ["7"] and calls(env, m) == 1, f"not a hit: {calls(env, m)} calls")
    # Bind of the unnamed statement without a new Parse: PostgreSQL would
    # run the statement this session parsed last
    inv = cache_row(s)["invalidations"]
    for v in ("9", "9", "10"):
        types, rows, errs = run(w, group(q, [v], parse=False))
        check(not errs and vals(rows) == [v] and types == b"2TDCZ",
              f"Bind '' after a hit: {types} {vals(rows)} {errs}")
    # a Describe of the unnamed statement after a hit describes that one,
    # not the one the server parsed before
    # sluice knows what those Executes ran: reads, which drop nothing
    check(cache_row(s)["invalidations"] == inv, "Executes of a known read bumped generations")
    run(w, group(q, ["7"]))
    types, _, _ = run(w, m_parse("", "SELECT 1 AS ext_other") + M_SYNC)
    check(types == b"1Z", f"Parse of another: {types}")
    n = calls(env, m)
    run(w, group(q, ["7"]))
    check(calls(env, m) == n, "not a hit")
    w.send(m_describe(b"S", "") + M_SYNC)
    msgs = w.collect(until_ready=1)
    types = b"".join(t for t, _ in msgs)
    rd = [p for t, p in msgs if t == b"T"]
    check(types == b"tTZ" and rd and m.encode() in rd[0],
          f"Describe of the unnamed statement after a hit: {msgs}")
    # closed, it is gone, as at PostgreSQL
    w.close()
    w = s.wire()
    run(w, group(q, ["7"]))
    types, _, _ = run(w, m_close(b"S", "") + M_SYNC)
    check(types == b"3Z", f"Close: {types}")
    types, rows, errs = run(w, group(q, ["7"], parse=False))
    check(errs and b"26000" in errs[0], f"Bind of a closed unnamed statement: {types} {errs}")
    # 1 miss and the 3 Binds without a Parse; the rest were hits
    check(calls(env, m) == 4, f"{calls(env, m)} calls: the hits were not hits")
    w.close()


@test("cache ext: an UPDATE through sluice makes the next extended read return the new value")
def t_invalidate(env):
    for mode in ("session", "transaction"):
        # pg_stat_statements keys by query, not by alias: counts start anew
        setup(env)
        s = start(env, mode=mode)
        m = "ext_inv_" + mode
        q = READ.format(m=m)
        w = s.wire()
        check(vals(run(w, group(q, ["7"]))[1]) == ["7"], "first")
        check(vals(run(w, group(q, ["7"]))[1]) == ["7"], "hit")
        check(calls(env, m) == 1, f"{mode}: the second read was not a hit")
        w.query("UPDATE cache_t SET v = 70 WHERE id = 7")
        check(vals(run(w, group(q, ["7"]))[1]) == ["70"], f"{mode}: simple UPDATE not seen")
        check(vals(run(w, group(q, ["7"]))[1]) == ["70"], f"{mode}: cached again")
        # a write by the extended protocol bumps too
        _, _, errs = run(w, group("UPDATE cache_t SET v = $1 WHERE id = 7", ["700"],
                                  describe=False))
        check(not errs, f"{mode}: extended UPDATE: {errs}")
        check(vals(run(w, group(q, ["7"]))[1]) == ["700"], f"{mode}: extended UPDATE not seen")
        w.query("UPDATE cache_t SET v = 7 WHERE id = 7")
        check(vals(run(w, group(q, ["7"]))[1]) == ["7"], f"{mode}: reset not seen")
        # inside a transaction block the read sees its own write; after the
        # rollback the cached value is still the right one
        n = calls(env, m)
        w.query("BEGIN")
        w.query("UPDATE cache_t SET v = 77 WHERE id = 7")
        w.send(group(q, ["7"]))
        msgs = w.collect(until_ready=1)
        rows = [p for t, p in msgs if t == b"D"]
        check(vals(rows) == ["77"] and msgs[-1] == (b"Z", b"T"),
              f"{mode}: in a transaction: {msgs}")
        w.query("ROLLBACK")
        check(vals(run(w, group(q, ["7"]))[1]) == ["7"], f"{mode}: after ROLLBACK")
        check(calls(env, m) == n + 1, f"{mode}: only the read in the transaction ran")
        w.close()


@test("cache ext: an error reply is not stored; forms not served are counted")
def t_error_and_forms(env):
    setup(env)
    s = start(env, mode="session")
    m = "ext_err"
    err = "SELECT /* sluice:cache */ 1 / (v - v) AS " + m + " FROM cache_t WHERE id = $1"
    w = s.wire()
    for _ in range(2):
        types, rows, errs = run(w, group(err, ["1"]))
        check(errs and b"22012" in errs[0], f"division by zero expected: {types} {errs}")
    check(cache_row(s)["stores"] == 0, f"an error was stored: {cache_row(s)}")
    check(calls(env, m) == 0 or calls(env, m) == 2, "error calls")
    # a row limit, a Flush before the Sync: not served, counted
    f = "ext_form"
    q = READ.format(m=f)
    before = cache_row(s)["uncacheable"]
    for _ in range(2):
        data = m_parse("", q) + m_bind("", "", ["7"]) + m_execute("", 1) + M_SYNC
        types, rows, errs = run(w, data)
        check(vals(rows) == ["7"] and not errs, f"row limit: {types} {errs}")
        w.send(m_parse("", q) + m_bind("", "", ["7"]) + m_execute("", 0) + M_FLUSH)
        w.send(M_SYNC)
        msgs = w.collect(until_ready=1)
        check(vals([p for t, p in msgs if t == b"D"]) == ["7"], "flush form")
    check(calls(env, f) == 4, f"forms not served were served: {calls(env, f)} calls")
    after = cache_row(s)["uncacheable"]
    check("extended_protocol=4" in after, f"uncacheable {before} -> {after}")
    w.close()


@test("cache ext: pgbench -M prepared and -M extended reads marked by a table rule hit",
      timeout=120)
def t_pgbench(env):
    setup(env)
    # pgbench takes ":cache" in a comment hint for a variable: a [cache] rule
    # marks the read instead
    s = start(env, mode="transaction", **{"table.cache_t": "60"})
    script = os.path.join(env.root, "ext_bench.sql")
    with open(script, "w") as fh:
        fh.write("\\set id random(1, 20)\n"
                 "SELECT v AS ext_bench FROM cache_t WHERE id = :id;\n")
    for proto in ("prepared", "extended"):
        r = pgbench(s, "-n", "-M", proto, "-c", "2", "-t", "100", "-f", script, "app")
        check(r.returncode == 0, f"pgbench -M {proto}: {r.stdout[-500:]}")
    n = calls(env, "ext_bench")
    # 400 reads of 20 keys; the first Describe of each named statement and
    # each key's first read per protocol run at PostgreSQL
    check(n <= 60, f"pgbench: {n} of 400 reads ran at PostgreSQL")
    check(cache_row(s)["hits"] >= 340, f"pgbench: {cache_row(s)}")


JDBC_JAR = "/usr/share/java/postgresql.jar"

# PgJDBC sends a statement unnamed (Parse "" / Bind / Describe / Execute /
# Sync) until prepareThreshold executions, then as a named one: Parse "S_n"
# with its Bind once, then Bind "S_n" / Execute / Sync; it decodes those
# rows by the shape it was told. After an ALTER that changes the column's
# type the answer must be the new one (or PostgreSQL's error), never rows
# of the old shape from the cache.
JDBC_SRC = r"""
import java.sql.*;

public class CacheExt {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + System.getenv("PGPORT") + "/app"
                + "?sslmode=disable&prepareThreshold=3";
        int bad = 0;
        try (Connection c = DriverManager.getConnection(url, "app", System.getenv("PGPASSWORD"));
             PreparedStatement ps = c.prepareStatement(
                     "SELECT /* sluice:cache */ v AS ext_jdbc FROM cache_t WHERE id = ?")) {
            for (int i = 0; i < 40; i++) {
                int id = 7 + (i % 2);
                ps.setInt(1, id);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next() || rs.getInt(1) != id) { bad++; System.out.println("FAIL value " + i); }
                }
            }
            try (Statement st = c.createStatement()) {
                st.execute("ALTER TABLE cache_t ALTER v TYPE text USING 'v' || v");
            }
            for (int i = 0; i < 6; i++) {
                ps.setInt(1, 7);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next() || !"v7".equals(rs.getString(1))) {
                        bad++;
                        System.out.println("FAIL after ALTER " + i);
                    }
                } catch (SQLException e) {
                    // PostgreSQL's own answer to a statement whose result changed
                    if (!"0A000".equals(e.getSQLState())) throw e;
                    System.out.println("stale " + i);
                }
            }
        }
        System.out.println(bad == 0 ? "ok jdbc" : "FAIL jdbc");
        System.exit(bad == 0 ? 0 : 1);
    }
}
"""


def jdbc_reads(env, mode):
    """Run JDBC_SRC through a sluice in <mode>: how many of its reads ran
    at PostgreSQL (its own checks of every answer must pass), and the
    sluice's SHOW CACHE row."""
    java = shutil.which("java")
    if java is None or not os.path.exists(JDBC_JAR):
        raise Skip("java or PgJDBC not installed")
    setup(env)
    s = start(env, mode=mode)
    src = os.path.join(env.root, "CacheExt.java")
    with open(src, "w") as fh:
        fh.write(JDBC_SRC)
    r = subprocess.run([java, "-cp", JDBC_JAR, src], env=s.pgenv(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=150)
    check(r.returncode == 0 and "ok jdbc" in r.stdout, f"PgJDBC: {r.stdout[-1500:]}")
    return calls(env, "ext_jdbc"), cache_row(s)


@test("cache ext: PgJDBC, unnamed then named statements, and an ALTER under them "
      "(transaction mode)", timeout=180)
def t_jdbc(env):
    n, row = jdbc_reads(env, "transaction")
    # 46 reads of 2 keys: a few misses per key and form (unnamed, the first
    # Describe of the named statement, named) and after the ALTER, the rest
    # hits
    check(n <= 12, f"PgJDBC: {n} of 46 reads ran at PostgreSQL")
    check(row["hits"] >= 34, f"PgJDBC: {row}")
