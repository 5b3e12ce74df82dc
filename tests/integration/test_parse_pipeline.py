"""Transaction mode: a Parse of a name whose first Parse is still in flight
(pipelined) waits for that answer. Only it tells whether the name is taken
(42P05) or free again (the first failed): sluice used to fail the second
Parse with 42P05 although PostgreSQL accepts it. Each pipeline's replies
must be those of a direct connection.
"""
from harness import check, login_wire, m_bind, m_execute, m_parse, msg, parse_fields, test

SYNC = msg(b"S")

PIPELINES = {
    "failed, then again after Sync": m_parse("pp", "SELEC 1") + SYNC + m_parse("pp", "SELECT 1")
    + SYNC,
    "failed, then again before Sync (skipped)": m_parse("pp", "SELEC 1")
    + m_parse("pp", "SELECT 1") + SYNC + m_parse("pp", "SELECT 2") + SYNC,
    "accepted, then again after Sync": m_parse("pp", "SELECT 1") + SYNC
    + m_parse("pp", "SELECT 2") + SYNC,
    "accepted, then again before Sync": m_parse("pp", "SELECT 1") + m_parse("pp", "SELECT 2")
    + SYNC,
    "failed, then again and run": m_parse("pp", "SELEC 1") + SYNC + m_parse("pp", "SELECT 7")
    + m_bind("", "pp") + m_execute() + SYNC,
}


def transcript(w, data, syncs):
    w.send(data)
    out = []
    for t, p in w.collect(syncs):
        if t == b"E":
            out.append(("E", parse_fields(p).get("C")))
        elif t == b"D":
            out.append(("D", p))
        else:
            out.append((t.decode(), None))
    return out


@test("parse_pipeline.second_parse_waits_for_the_first", timeout=60)
def t_pipeline(env):
    s = env.sluice(settings={"pool_mode": "transaction"})
    for name, data in PIPELINES.items():
        syncs = data.count(SYNC)
        d = login_wire("127.0.0.1", env.pg.port, "app", "app", "app")
        w = s.wire()
        try:
            want = transcript(d, data, syncs)
            got = transcript(w, data, syncs)
            check(got == want, f"{name}: through sluice {got}, directly {want}")
        finally:
            d.close()
            w.close()
