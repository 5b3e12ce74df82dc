from harness import test, check


@test("session.smoke")
def t_smoke(env):
    s = env.sluice()
    r = s.psql("-Atc", "select 1")
    check(r.returncode == 0 and r.stdout.strip() == "1", f"psql: {r.returncode} {r.stdout!r} {r.stderr!r}")
