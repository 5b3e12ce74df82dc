#!/usr/bin/env bash
# make bench: sluice beside PgBouncer and a direct connection, all against
# the same throwaway PostgreSQL 15 (fsync off, pgbench scale 10).
#
# PostgreSQL and both poolers run on CPU 0, pgbench on CPU 1. Every scenario
# is run ROUNDS times, interleaved (sluice, pgbouncer, direct, next scenario,
# ..., in an order rotated each round); the tables show medians. Pooler CPU is the run time
# /proc/PID/schedstat counts (in ns) around each run, divided by the transactions pgbench
# made; the user part of it is utime's share of utime+stime in /proc/PID/stat.
# The tx-extended scenarios also run against sluice with a scraper beside
# pgbench (sluice-scraped: GET /metrics and SHOW QUERIES every 100 ms), to
# show what reading the counters costs per transaction, scrapes included.
#
#   ROUNDS=3         rounds per scenario
#   DURATION=10      seconds per pgbench run (-T)
#   BENCH_QUICK=1    1 round of 5 s (pgbench -T counts the logins, and 100
#                    SCRAM logins can take seconds on a busy 2-core machine)
#   SCALE=10         pgbench -i scale
#   SLUICE_BIN       binary to benchmark (default ./sluice)
#   PGBOUNCER_BIN    default /usr/sbin/pgbouncer
#   KEEP=1           keep the work directory
#   BENCH_ONLY=tps|tracking|memory|shapes|cache   run one part only; tracking:
#                    tracking on/off and scraped/not at 10 clients, 7 rounds
#                    unless ROUNDS is given (bench/memory.sh is
#                    BENCH_ONLY=memory); shapes: sluice's RSS while
#                    SHAPES_STATEMENTS statements (1,000,000) of
#                    SHAPES_DISTINCT shapes (100,000) pass (bench/shapes.py);
#                    cache: the result cache with Redis (bench/cache.sh)
#
# The memory part (bench/memory.sh alone) measures, for both poolers in
# transaction mode with a small pool, the RSS per idle logged-in client at
# MEM_CLIENTS clients, the RSS after each of MEM_BURSTS bursts of
# MEM_CLIENTS clients that log in and leave, and the peak RSS while
# BIG_CLIENTS clients each send one BIG_MIB MiB query. bench/idle_clients.py
# makes the clients.
#
#   MEM_CLIENTS=10000  MEM_BURSTS=5  MEM_SETTLE=2 (seconds after clients
#   leave)  MEM_POOL=5 (default_pool_size)  BIG_CLIENTS=3  BIG_MIB=100
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/pg.sh

SLUICE_BIN=${SLUICE_BIN:-./sluice}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
PGBENCH=${PGBENCH:-$(command -v pgbench || echo "$PG_BIN/pgbench")}
ROUNDS_SET=${ROUNDS:-}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SCALE=${SCALE:-10}
BENCH_ONLY=${BENCH_ONLY:-}
case $BENCH_ONLY in
"" | tps | memory | shapes | cache) ;;
tracking) ROUNDS=${ROUNDS_SET:-7} ;;
*) echo "bench: BENCH_ONLY must be tps, tracking, memory, shapes or cache, got \"$BENCH_ONLY\"" >&2; exit 2 ;;
esac
MEM_CLIENTS=${MEM_CLIENTS:-10000}
MEM_BURSTS=${MEM_BURSTS:-5}
MEM_SETTLE=${MEM_SETTLE:-2}
MEM_POOL=${MEM_POOL:-5}
BIG_CLIENTS=${BIG_CLIENTS:-3}
BIG_MIB=${BIG_MIB:-100}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	ROUNDS=1
	DURATION=5
fi
TX_POOL=50       # default_pool_size in transaction mode
SESSION_POOL=100 # session mode needs a server connection per client
export PG_MAX_CONNECTIONS=500 # direct c100 and both poolers' pools at once

case "$SLUICE_BIN" in */*) ;; *) SLUICE_BIN=$(command -v "$SLUICE_BIN") ;; esac
[ -x "$SLUICE_BIN" ] || { echo "bench: $SLUICE_BIN not found; build it with make" >&2; exit 1; }
[ -x "$PGBOUNCER_BIN" ] || { echo "bench: $PGBOUNCER_BIN not found" >&2; exit 1; }
SLUICE_BIN=$(cd "$(dirname "$SLUICE_BIN")" && pwd)/$(basename "$SLUICE_BIN")

# Pin servers to CPU 0 and the load generator to CPU 1 when there are two.
if [ "$(nproc)" -ge 2 ]; then
	SRV_CPU=0
	PIN_SRV="taskset -c 0"
	PIN_CLI="taskset -c 1"
else
	SRV_CPU=
	PIN_SRV=
	PIN_CLI=
	echo "bench: only one CPU, not pinning" >&2
fi

# The poolers inherit this shell's open-file limit, and the memory part
# needs MEM_CLIENTS client sockets in each pooler and in the load tool.
_need=$((MEM_CLIENTS + 1000))
[ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$_need" ] &&
	ulimit -Hn "$_need" 2>/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if { [ "$BENCH_ONLY" = "" ] || [ "$BENCH_ONLY" = memory ]; } && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$_need" ]; then
	echo "bench: the open-file limit is $(ulimit -n), the memory part needs $_need (MEM_CLIENTS $MEM_CLIENTS)" >&2
	exit 1
fi

TICKS=$(getconf CLK_TCK)
W=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$W"
mkdir -p bench/out
OUT=$ROOT/bench/out/bench-$(date +%Y%m%d-%H%M%S)
RESULTS=$OUT.tsv
REPORT=$OUT.txt
: >"$RESULTS"

SLUICE_PID=
PGB_PID=
MEMTOOL_PID=
cleanup() {
	trap - INT TERM EXIT
	[ -n "${MEMTOOL_PID:-}" ] && kill -KILL "$MEMTOOL_PID" 2>/dev/null
	[ -n "${SCRAPER_PID:-}" ] && kill -KILL "$SCRAPER_PID" 2>/dev/null
	[ -n "$SLUICE_PID" ] && stop_pid "$SLUICE_PID" 10
	[ -n "${SLUICEOFF_PID:-}" ] && stop_pid "$SLUICEOFF_PID" 10
	[ -n "$PGB_PID" ] && stop_pid "$PGB_PID" 10
	pg_stop "$W/pg"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "work directory kept: $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "$*" | tee -a "$REPORT" >&2; }

# cpu_ticks PID: utime+stime (fields 14 and 15 of /proc/PID/stat). The
# command name is cut off first: it is in parentheses and may hold spaces.
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13, $12 }'
}

# cpu_ns PID: the nanoseconds PID has run (the first field of
# /proc/PID/schedstat). utime and stime are counted in clock ticks by
# sampling: over an 8 s run of ~1.5 s of CPU that is ~150 ticks, a few per
# cent of noise in every figure; the scheduler's own count has none. The
# poolers are single-threaded, so the process's main thread is all of it.
cpu_ns() {
	awk '{ print $1 }' "/proc/$1/schedstat"
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---- PostgreSQL -----------------------------------------------------------

PG_PORT=$(free_port)
log "PostgreSQL 15 on 127.0.0.1:$PG_PORT, fsync off, CPU ${SRV_CPU:-any}"
pg_init "$W/pg" "$PG_PORT" fast || exit 1
pg_start "$W/pg" "$SRV_CPU" || exit 1
pg_create_app "$W/pg" app app app || exit 1
if [ "$BENCH_ONLY" = "" ] || [ "$BENCH_ONLY" = tps ] || [ "$BENCH_ONLY" = tracking ] ||
	[ "$BENCH_ONLY" = cache ]; then
	log "pgbench -i -s $SCALE"
	PGPASSWORD=app "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U app app \
		>"$W/pgbench-init.log" 2>&1 || { cat "$W/pgbench-init.log" >&2; exit 1; }
fi

# ---- poolers --------------------------------------------------------------

mkdir -p "$W/sluice"
pg_owned_dir "$W/pgb"
chmod 755 "$W/pgb"
USERLIST='"app" "app"
"admin" "admin"'
printf '%s\n' "$USERLIST" >"$W/sluice/userlist.txt"
printf '%s\n' "$USERLIST" >"$W/pgb/userlist.txt"
chown postgres:postgres "$W/pgb/userlist.txt" 2>/dev/null
chmod 600 "$W/sluice/userlist.txt" "$W/pgb/userlist.txt"

SLUICE_PORT=
PGB_PORT=
# What the start functions put in the configuration besides mode and pool
# size; the memory part changes them.
START_AUTH_TYPE=scram-sha-256
START_AUTH_FILE=userlist.txt # in $W/sluice and $W/pgb
START_MIN_POOL=5
START_MAX_CLIENTS=1000

# start_sluice MODE POOLSIZE [off]: "off" starts the second sluice, with
# track_statements = off (SLUICEOFF_PORT, SLUICEOFF_PID), which runs beside
# the first so that what statement tracking costs is measured in one run.
start_sluice() {
	_mode=$1 _pool=$2 _off=${3:-}
	_port=$(free_port)
	_track=on
	[ "$_off" = off ] && _track=off
	_hport=
	[ "$_track" = on ] && _hport=$(free_port) && SLUICE_HTTP_PORT=$_hport
	_cfg=$W/sluice/sluice-$_mode-$_track.ini
	cat >"$_cfg" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[sluice]
listen_addr = 127.0.0.1
listen_port = $_port
auth_type = $START_AUTH_TYPE
auth_file = $W/sluice/$START_AUTH_FILE
admin_users = admin
pool_mode = $_mode
min_pool_size = $START_MIN_POOL
default_pool_size = $_pool
max_client_conn = $START_MAX_CLIENTS
track_statements = $_track
stats_listen = ${_hport:+127.0.0.1:$_hport}

[cache]
enabled = 0
redis_host = 127.0.0.1
redis_port = 6379
EOF
	$PIN_SRV "$SLUICE_BIN" "$_cfg" >"$W/sluice/sluice-$_mode-$_track.log" 2>&1 &
	_pid=$!
	if ! wait_port "$_port" "$_pid" 15; then
		echo "bench: sluice did not start ($SLUICE_BIN $_cfg); its log:" >&2
		cat "$W/sluice/sluice-$_mode-$_track.log" >&2
		exit 1
	fi
	if [ "$_track" = off ]; then
		SLUICEOFF_PORT=$_port SLUICEOFF_PID=$_pid
	else
		SLUICE_PORT=$_port SLUICE_PID=$_pid
	fi
}

# start_pgbouncer MODE POOLSIZE (as postgres: PgBouncer refuses root; su
# and runuser set the soft open-file limit back to 1024, so raise it again)
start_pgbouncer() {
	_mode=$1 _pool=$2
	PGB_PORT=$(free_port)
	_cfg=$W/pgb/pgbouncer-$_mode.ini
	cat >"$_cfg" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = $START_AUTH_TYPE
auth_file = $W/pgb/$START_AUTH_FILE
admin_users = admin
pool_mode = $_mode
min_pool_size = $START_MIN_POOL
default_pool_size = $_pool
max_client_conn = $START_MAX_CLIENTS
logfile = $W/pgb/pgbouncer-$_mode.log
pidfile = $W/pgb/pgbouncer.pid
EOF
	chown postgres:postgres "$_cfg"
	rm -f "$W/pgb/pgbouncer.pid"
	as_pg sh -c 'ulimit -n "$(ulimit -Hn)"; exec "$@"' sh $PIN_SRV "$PGBOUNCER_BIN" -d "$_cfg" \
		>"$W/pgb/pgbouncer-$_mode.out" 2>&1
	_i=0
	while [ ! -s "$W/pgb/pgbouncer.pid" ] && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	PGB_PID=$(cat "$W/pgb/pgbouncer.pid" 2>/dev/null)
	if [ -z "$PGB_PID" ] || ! wait_port "$PGB_PORT" "$PGB_PID" 15; then
		echo "bench: pgbouncer did not start; its log:" >&2
		cat "$W/pgb/pgbouncer-$_mode.out" "$W/pgb/pgbouncer-$_mode.log" >&2 2>/dev/null
		exit 1
	fi
}

stop_poolers() {
	[ -n "$SLUICE_PID" ] && stop_pid "$SLUICE_PID" 10
	[ -n "${SLUICEOFF_PID:-}" ] && stop_pid "$SLUICEOFF_PID" 10
	[ -n "$PGB_PID" ] && stop_pid "$PGB_PID" 10
	SLUICE_PID= PGB_PID= SLUICEOFF_PID=
}

report_rss() {
	log "RSS after $1 mode: sluice $(rss_kb "$SLUICE_PID") kB, pgbouncer $(rss_kb "$PGB_PID") kB"
}

# ---- runs -----------------------------------------------------------------

# bench_one MODE SCENARIO TARGET ROUND CLIENTS PROTOCOL [T] [PGBENCH FLAGS]
# TARGET: sluice | pgbouncer | direct. Appends a line to $RESULTS.
bench_one() {
	_mode=$1 _scen=$2 _tgt=$3 _round=$4 _c=$5 _proto=$6 _t=${7:-$DURATION} _extra=${8:-}
	case $_tgt in
	sluice | sluice-scraped) _port=$SLUICE_PORT _pid=$SLUICE_PID ;;
	sluice-off) _port=$SLUICEOFF_PORT _pid=$SLUICEOFF_PID ;;
	pgbouncer) _port=$PGB_PORT _pid=$PGB_PID ;;
	direct) _port=$PG_PORT _pid= ;;
	esac
	_log=$W/run-$_scen-$_tgt-$_round.log
	# pgbench -T counts its logins: when they take all of it (a loaded
	# machine), it makes no transaction at all. Such a run is tried once more.
	for _try in 1 2; do
		[ "$_tgt" = sluice-scraped ] && start_scraper
		[ -n "$_pid" ] && read -r _b _bu <<<"$(cpu_ticks "$_pid")" && _bns=$(cpu_ns "$_pid")
		PGPASSWORD=app $PIN_CLI "$PGBENCH" -h 127.0.0.1 -p "$_port" -U app -n -S \
			-M "$_proto" -c "$_c" -j 2 -T "$_t" $_extra app >"$_log" 2>&1
		_rc=$?
		[ -n "$_pid" ] && read -r _a _au <<<"$(cpu_ticks "$_pid")" && _ans=$(cpu_ns "$_pid")
		[ "$_tgt" = sluice-scraped ] && stop_scraper
		[ $_rc = 0 ] && grep -q '^number of transactions actually processed: 0$' "$_log" ||
			break
		[ $_try = 1 ] && echo "  $_scen $_tgt round $_round: no transaction in ${_t}s, once more" >&2
	done
	_tps=$(sed -n 's/^tps = \([0-9.]*\) (\(without initial connection time\|including reconnection times\)).*/\1/p' "$_log")
	_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$_log")
	_fail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$_log")
	if [ $_rc -ne 0 ] || [ -z "$_tps" ] || [ -z "$_n" ] || [ "$_n" = 0 ]; then
		log "  $_scen $_tgt round $_round: pgbench failed (rc $_rc):"
		tail -n 5 "$_log" | sed 's/^/    /' | tee -a "$REPORT" >&2
		_tps=NA _cpu=NA _ucpu=NA
	elif [ -n "$_pid" ]; then
		_cpu=$(awk -v d=$((_ans - _bns)) -v n="$_n" 'BEGIN { printf "%.2f", d / 1000 / n }')
		# the user share of the ticks, applied to the exact total
		_ucpu=$(awk -v t=$((_a - _b)) -v u=$((_au - _bu)) -v c="$_cpu" \
			'BEGIN { printf "%.2f", (t > 0 ? c * u / t : 0) }')
	else
		_cpu=NA _ucpu=NA
	fi
	[ -n "$_fail" ] && [ "$_fail" != 0 ] && log "  $_scen $_tgt round $_round: $_fail failed transactions"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$_mode" "$_scen" "$_tgt" "$_round" \
		"$_tps" "${_n:-0}" "$_cpu" "$_proto" "$_ucpu" >>"$RESULTS"
	printf '  %-22s %-10s round %s: tps %-12s cpu/txn %s us\n' "$_scen" "$_tgt" "$_round" "$_tps" "$_cpu" >&2
}

# start_scraper / stop_scraper: what a Prometheus server and an operator
# add during a sluice-scraped run: GET /metrics on one kept-alive HTTP
# connection (as Prometheus scrapes) and SHOW QUERIES on one admin
# connection, each every 100 ms (their CPU in sluice counts in the run's
# cpu/txn, which is the point). Its scrape count goes to the report.
SCRAPER_PID=
start_scraper() {
	$PIN_CLI /usr/bin/python3 - "$SLUICE_HTTP_PORT" "$SLUICE_PORT" >"$W/scraper.log" 2>&1 <<'PY' &
import http.client, sys, time
import psycopg2
hport, port = int(sys.argv[1]), int(sys.argv[2])
conn = psycopg2.connect(host="127.0.0.1", port=port, user="admin", password="admin",
                        dbname="sluice")
conn.autocommit = True
cur = conn.cursor()
n = 0
h = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
try:
    while True:
        h.request("GET", "/metrics")
        r = h.getresponse()
        r.read()
        assert r.status == 200, r.status
        cur.execute("SHOW QUERIES")
        cur.fetchall()
        n += 1
        print(n, flush=True)
        time.sleep(0.1)
finally:
    conn.close()
PY
	SCRAPER_PID=$!
}
# scrape_cost: sluice's own CPU (from /proc/PID/schedstat, in ns) per GET
# /metrics and per SHOW QUERIES, measured over SCRAPE_N of each with no
# other traffic, after the rounds filled the statistics; written to
# $W/scrape_cost as "<us per /metrics> <us per SHOW QUERIES> <us per
# /metrics on a new connection>": Prometheus keeps its connection open, a
# scraper that does not also pays sluice's accept, close and TCP setup.
scrape_cost() {
	$PIN_CLI /usr/bin/python3 - "$SLUICE_HTTP_PORT" "$SLUICE_PORT" "$SLUICE_PID" \
		"${SCRAPE_N:-200}" >"$W/scrape_cost" 2>>"$W/scraper.log" <<'PY'
import http.client, sys
import psycopg2
hport, port, pid, n = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def cpu():
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])
conn = psycopg2.connect(host="127.0.0.1", port=port, user="admin", password="admin",
                        dbname="sluice")
conn.autocommit = True
cur = conn.cursor()
kept = http.client.HTTPConnection("127.0.0.1", hport, timeout=5)
def get(path, new):
    h = http.client.HTTPConnection("127.0.0.1", hport, timeout=5) if new else kept
    h.request("GET", path)
    r = h.getresponse()
    body = r.read()
    if new:
        h.close()
    assert r.status == 200 and body, (path, r.status)
def show():
    cur.execute("SHOW QUERIES")
    assert cur.fetchall()
out = []
for fn in (lambda: get("/metrics", False), show, lambda: get("/metrics", True)):
    fn()
    a = cpu()
    for _ in range(n):
        fn()
    out.append((cpu() - a) / n / 1000)
print(" ".join(f"{v:.1f}" for v in out))
PY
}

stop_scraper() {
	# TERM, not INT: a background job of a non-interactive shell ignores SIGINT
	if [ -n "$SCRAPER_PID" ] && kill -TERM "$SCRAPER_PID" 2>/dev/null; then
		wait "$SCRAPER_PID" 2>/dev/null
		log "  scraper: $(tail -n 1 "$W/scraper.log") scrapes of /metrics and SHOW QUERIES"
	else
		log "  scraper FAILED, this run had no scrapes: $(tail -n 1 "$W/scraper.log" 2>/dev/null)"
	fi
	SCRAPER_PID=
}

# order ROUND: the targets, rotated each round, so that none always runs
# right after another (a direct run's backends are still exiting when the
# next run starts).
order() {
	case $(($1 % 4)) in
	1) echo sluice sluice-off pgbouncer direct ;;
	2) echo sluice-off pgbouncer direct sluice ;;
	3) echo pgbouncer direct sluice sluice-off ;;
	0) echo direct sluice sluice-off pgbouncer ;;
	esac
}

warm_up() {
	for _tgt in sluice sluice-off pgbouncer; do
		bench_one warmup warmup "$_tgt" 0 "$1" simple 4 >/dev/null 2>&1
	done
	sed -i '/^warmup\t/d' "$RESULTS"
}

# ---- throughput: pgbench through each pooler and direct -------------------

tps_part() {
	# session mode
	log ""
	log "rounds $ROUNDS, pgbench -T $DURATION -S -n -j 2, sluice $SLUICE_BIN, $("$PGBOUNCER_BIN" --version | head -n1)"
	log ""
	log "== session mode (default_pool_size $SESSION_POOL)"
	start_sluice session "$SESSION_POOL"
	start_sluice session "$SESSION_POOL" off
	start_pgbouncer session "$SESSION_POOL"
	warm_up 100
	for r in $(seq 1 "$ROUNDS"); do
		for c in 10 100; do
			for tgt in $(order "$r"); do
				bench_one session "session-simple-c$c" "$tgt" "$r" "$c" simple
			done
		done
	done
	report_rss session
	stop_poolers

	# transaction mode
	log "== transaction mode (default_pool_size $TX_POOL)"
	start_sluice transaction "$TX_POOL"
	start_sluice transaction "$TX_POOL" off
	start_pgbouncer transaction "$TX_POOL"
	warm_up 100
	for r in $(seq 1 "$ROUNDS"); do
		for c in 10 100; do
			for tgt in $(order "$r"); do
				bench_one transaction "tx-extended-c$c" "$tgt" "$r" "$c" extended
			done
			# the same with /metrics and SHOW QUERIES every 100 ms
			bench_one transaction "tx-extended-c$c" sluice-scraped "$r" "$c" extended
			# PgBouncer 1.18 cannot run -M prepared in transaction mode: its
			# column runs -M extended.
			for tgt in $(order "$r"); do
				proto=prepared
				[ "$tgt" = pgbouncer ] && proto=extended
				bench_one transaction "tx-prepared-c$c" "$tgt" "$r" "$c" "$proto"
			done
		done
		# a new connection per transaction (pgbench -C): what logins cost
		for tgt in $(order "$r"); do
			bench_one transaction "tx-connect-per-txn-c4" "$tgt" "$r" 4 simple "" -C
		done
	done
	report_rss transaction
	SLUICE_RSS=$(rss_kb "$SLUICE_PID")
	PGB_RSS=$(rss_kb "$PGB_PID")
	stop_poolers

	report_table "$SLUICE_RSS" "$PGB_RSS"
}

# report_table: the table of medians of $RESULTS, with the RSS given
report_table() {
	python3 - "$RESULTS" "$1" "$2" "$W/scrape_cost" <<'EOF' | tee -a "$REPORT"
import sys, statistics
from collections import OrderedDict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
scen = OrderedDict()
for mode, name, tgt, rnd, tps, n, cpu, proto, ucpu in rows:
    d = scen.setdefault(name, {}).setdefault(tgt, {"tps": [], "cpu": [], "ucpu": [],
                                                   "proto": proto})
    if tps != "NA":
        d["tps"].append(float(tps))
    if cpu != "NA":
        d["cpu"].append(float(cpu))
        d["ucpu"].append(float(ucpu))

def med(v):
    return statistics.median(v) if v else None

def fmt(v, p=0):
    return "-" if v is None else f"{v:,.{p}f}"

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

print()
for name, t in scen.items():
    print(f"{name}")
    print(f"  {'':10} {'protocol':9} {'median tps':>12} {'cpu us/txn':>11} "
          f"{'of it user':>11} {'runs':>5}")
    m = {}
    for tgt in ("sluice", "sluice-scraped", "sluice-off", "pgbouncer", "direct"):
        if tgt not in t:
            continue
        d = t[tgt]
        m[tgt] = (med(d["tps"]), med(d["cpu"]), med(d["ucpu"]))
        print(f"  {tgt:10} {d['proto']:9} {fmt(m[tgt][0]):>12} {fmt(m[tgt][1], 2):>11} "
              f"{fmt(m[tgt][2], 2):>11} {len(d['tps']):>5}")
    s = m.get("sluice", (None, None, None))
    b = m.get("pgbouncer", (None, None, None))
    o = m.get("sluice-off", (None, None, None))
    print(f"  sluice/pgbouncer: tps {ratio(s[0], b[0])}, cpu/txn {ratio(s[1], b[1])}, "
          f"user cpu/txn {ratio(s[2], b[2])}")
    print(f"  tracking on/off:  tps {ratio(s[0], o[0])}, cpu/txn {ratio(s[1], o[1])}, "
          f"user cpu/txn {ratio(s[2], o[2])}")
    if "sluice-scraped" in m:
        k = m["sluice-scraped"]
        print(f"  scraped/not:      tps {ratio(k[0], s[0])}, cpu/txn {ratio(k[1], s[1])}, "
              f"user cpu/txn {ratio(k[2], s[2])}")
        try:
            mu, qu, xu = (float(x) for x in open(sys.argv[4]).read().split())
        except (OSError, ValueError):
            mu = None
        if mu is not None and s[0] and s[1]:
            # what 10 scrapes a second take of the CPU sluice spends per
            # second at this run's median rate: the scraped/not ratio
            # above, measured without the rounds' noise
            share = 10 * (mu + qu) / (s[0] * s[1]) * 100
            worst = 10 * (xu + qu) / (s[0] * s[1]) * 100
            print(f"  scrape cost:      {mu:.1f} us CPU per /metrics ({xu:.1f} on a new "
                  f"connection each time), {qu:.1f} per SHOW QUERIES;")
            print(f"                    both every 100 ms = {share:.2f} % of sluice's CPU "
                  f"at {s[0]:,.0f} tps x {s[1]:.2f} us/txn ({worst:.2f} % reconnecting)")
    print()
print(f"RSS at the end: sluice {sys.argv[2]} kB, pgbouncer {sys.argv[3]} kB")
EOF
}

# ---- tracking: what statement tracking and scrapes cost, more rounds --------

# The two targets of issues of cost (tracking on/off, scraped or not) at
# 10 clients, beside PgBouncer, ROUNDS rounds (default 7 here) interleaved:
# the effects are a few per cent, so more rounds than the tps part.
tracking_part() {
	log ""
	log "rounds $ROUNDS, pgbench -T $DURATION -S -n -j 2, 10 clients, sluice $SLUICE_BIN"
	log "== session mode, simple protocol"
	start_sluice session "$SESSION_POOL"
	start_sluice session "$SESSION_POOL" off
	start_pgbouncer session "$SESSION_POOL"
	warm_up 10
	for r in $(seq 1 "$ROUNDS"); do
		for tgt in $(order "$r"); do
			[ "$tgt" = direct ] && continue
			bench_one session "session-simple-c10" "$tgt" "$r" 10 simple
		done
	done
	stop_poolers
	log "== transaction mode, extended protocol; scraped: /metrics and SHOW QUERIES every 100 ms"
	start_sluice transaction "$TX_POOL"
	start_sluice transaction "$TX_POOL" off
	start_pgbouncer transaction "$TX_POOL"
	warm_up 10
	for r in $(seq 1 "$ROUNDS"); do
		for tgt in $(order "$r") sluice-scraped; do
			[ "$tgt" = direct ] && continue
			bench_one transaction "tx-extended-c10" "$tgt" "$r" 10 extended
		done
	done
	scrape_cost || log "  scrape cost not measured: $(tail -n 1 "$W/scraper.log" 2>/dev/null)"
	SLUICE_RSS=$(rss_kb "$SLUICE_PID")
	PGB_RSS=$(rss_kb "$PGB_PID")
	stop_poolers
	report_table "$SLUICE_RSS" "$PGB_RSS"
}

# ---- memory: idle clients, bursts, large queries ----------------------------

MEM_TSV=$OUT.mem.tsv
TOOL_ANS=

# tool CMD...: send one command to the load tool and read its one-line
# answer into TOOL_ANS. False when the answer is an error or none came in
# time (the tool gives up on a command after MEM_TIMEOUT seconds itself).
tool() {
	TOOL_ANS=
	if [ -z "${MEMTOOL_PID:-}" ] || ! alive "$MEMTOOL_PID"; then
		TOOL_ANS="error the load tool is not running (see $W/idle_clients.log)"
		return 1
	fi
	if ! echo "$*" >&"${MEMTOOL[1]}"; then
		TOOL_ANS="error cannot write to the load tool"
		return 1
	fi
	if ! read -r -t $((MEM_TIMEOUT + 30)) TOOL_ANS <&"${MEMTOOL[0]}"; then
		TOOL_ANS="error no answer from the load tool to \"$*\""
		return 1
	fi
	case $TOOL_ANS in ok*) return 0 ;; esac
	return 1
}

# mem TARGET KEY VALUE: one figure for the memory table.
mem() {
	printf '%s\t%s\t%s\n' "$1" "$2" "${3:-NA}" >>"$MEM_TSV"
}

mem_pid() { case $1 in sluice) echo "$SLUICE_PID" ;; pgbouncer) echo "$PGB_PID" ;; esac; }
mem_port() { case $1 in sluice) echo "$SLUICE_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; esac; }

hwm_kb() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# settle: let the pooler close what the clients left, and free it
settle() {
	sleep "$MEM_SETTLE"
}

# mem_auth: the poolers' login for the memory part. With a plaintext
# password, a SCRAM login costs both sides a PBKDF2 (PgBouncer 1.18 salts
# afresh each time: 10,000 logins take over a minute), so by default the
# auth_file holds PostgreSQL's own SCRAM verifier of "app", as PgBouncer's
# documentation recommends; both poolers then log in to PostgreSQL with the
# keys of the client that logged in (no min_pool_size before the first).
# MEM_AUTH=md5 uses md5 with the plaintext file.
mem_auth() {
	case ${MEM_AUTH:-scram} in
	md5)
		START_AUTH_TYPE=md5
		START_AUTH_FILE=userlist.txt
		;;
	scram)
		_v=$(pg_psql "$W/pg" -d postgres -At -c "select rolpassword from pg_authid where rolname = 'app'")
		case $_v in
		SCRAM-SHA-256\$*) ;;
		*) log "bench: no SCRAM verifier for app in PostgreSQL"; exit 1 ;;
		esac
		for _d in "$W/sluice" "$W/pgb"; do
			printf '"app" "%s"\n"admin" "admin"\n' "$_v" >"$_d/userlist-mem.txt"
			chmod 600 "$_d/userlist-mem.txt"
		done
		chown postgres:postgres "$W/pgb/userlist-mem.txt" 2>/dev/null
		START_AUTH_TYPE=scram-sha-256
		START_AUTH_FILE=userlist-mem.txt
		START_MIN_POOL=0
		;;
	*)
		echo "bench: MEM_AUTH must be scram or md5" >&2
		exit 2
		;;
	esac
}

memory_part() {
	MEM_TIMEOUT=${MEM_TIMEOUT:-300}
	: >"$MEM_TSV"
	log ""
	log "sluice $SLUICE_BIN, $("$PGBOUNCER_BIN" --version | head -n1)"
	log "== memory: transaction mode, default_pool_size $MEM_POOL, ${MEM_AUTH:-scram}, $MEM_CLIENTS idle clients, $MEM_BURSTS bursts, $BIG_CLIENTS queries of $BIG_MIB MiB"
	mem_auth
	START_MAX_CLIENTS=$((MEM_CLIENTS + 100))
	start_sluice transaction "$MEM_POOL"
	start_pgbouncer transaction "$MEM_POOL"
	START_AUTH_TYPE=scram-sha-256 START_AUTH_FILE=userlist.txt START_MIN_POOL=5 START_MAX_CLIENTS=1000
	for t in sluice pgbouncer; do
		_lim=$(awk '/^Max open files/ { print $4 }' "/proc/$(mem_pid $t)/limits")
		if [ "$_lim" != unlimited ] && [ "$_lim" -lt $((MEM_CLIENTS + 100)) ]; then
			log "  $t may open only $_lim files: it will refuse some of the $MEM_CLIENTS clients"
		fi
	done

	coproc MEMTOOL {
		exec $PIN_CLI python3 "$ROOT/bench/idle_clients.py" --password app \
			--timeout "$MEM_TIMEOUT" 2>>"$W/idle_clients.log"
	}
	if ! read -r -t 30 TOOL_ANS <&"${MEMTOOL[0]}" || [ "$TOOL_ANS" != "ok ready" ]; then
		log "  the load tool did not start:"
		cat "$W/idle_clients.log" >&2
		exit 1
	fi

	# A few logins and queries first, so that what the first clients cost
	# once (a server in the pool, lazily made tables) is in "before".
	for t in sluice pgbouncer; do
		_p=$(mem_port $t)
		tool open "$_p" 10 && tool select "$_p" 10 && tool close "$_p" ||
			log "  $t warm-up: $TOOL_ANS"
	done
	settle
	for t in sluice pgbouncer; do
		mem $t before "$(rss_kb "$(mem_pid $t)")"
	done

	for b in $(seq 1 "$MEM_BURSTS"); do
		for t in $(if [ $((b % 2)) = 1 ]; then echo sluice pgbouncer; else echo pgbouncer sluice; fi); do
			_p=$(mem_port $t) _pid=$(mem_pid $t)
			if tool open "$_p" "$MEM_CLIENTS"; then
				sleep 1
				mem $t "with$b" "$(rss_kb "$_pid")"
				mem $t "login_s$b" "$(echo "$TOOL_ANS" | sed -n 's/.* in \([0-9.]*\)s,.*/\1/p')"
				# they are logged in and usable, not half-open
				[ "$b" = 1 ] && ! tool select "$_p" 10 && log "  $t burst $b: $TOOL_ANS"
			else
				log "  $t burst $b: $TOOL_ANS"
				mem $t "with$b" NA
			fi
			tool close "$_p" || log "  $t burst $b: $TOOL_ANS"
			settle
			mem $t "after$b" "$(rss_kb "$_pid")"
			printf '  burst %s %-10s with %s kB, after %s kB\n' "$b" "$t" \
				"$(awk -v t=$t -v k=with$b '$1 == t && $2 == k { print $3 }' "$MEM_TSV")" \
				"$(rss_kb "$_pid")" >&2
		done
	done

	# Large queries in transaction mode: the peak is VmHWM after resetting
	# it (clear_refs), else the tool's sampling of VmRSS every 10 ms.
	for t in sluice pgbouncer; do
		_p=$(mem_port $t) _pid=$(mem_pid $t)
		_b=$(rss_kb "$_pid")
		_hwm_ok=0
		echo 5 2>/dev/null >"/proc/$_pid/clear_refs" && _hwm_ok=1
		if tool big "$_p" "$BIG_CLIENTS" "$BIG_MIB" "$_pid"; then
			_peak=$(echo "$TOOL_ANS" | sed -n 's/.*peak_kb \([0-9]*\).*/\1/p')
			mem $t big_peak_sampled "$_peak"
			[ $_hwm_ok = 1 ] && _peak=$(hwm_kb "$_pid")
			mem $t big_before "$_b"
			mem $t big_peak "$_peak"
			mem $t big_s "$(echo "$TOOL_ANS" | sed -n 's/.* secs \([0-9.]*\).*/\1/p')"
		else
			log "  $t large queries: $TOOL_ANS"
		fi
		settle
		mem $t big_after "$(rss_kb "$_pid")"
	done

	tool quit
	_i=0
	while [ -n "${MEMTOOL_PID:-}" ] && alive "$MEMTOOL_PID" && [ $_i -lt 100 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	stop_poolers

	python3 - "$MEM_TSV" "$MEM_CLIENTS" "$MEM_BURSTS" "$BIG_CLIENTS" "$BIG_MIB" <<'EOF' | tee -a "$REPORT"
import sys

tsv, n, bursts, bigc, bigm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
v = {}
for line in open(tsv):
    t, k, x = line.rstrip("\n").split("\t")
    v[t, k] = None if x in ("NA", "") else float(x)

def g(t, k):
    return v.get((t, k))

def fmt(x, p=0):
    return "-" if x is None else f"{x:,.{p}f}"

def ratio(a, b, p=2):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.{p}f}"

T = ("sluice", "pgbouncer")
rows = []
def row(label, a, b, p=0, r=True):
    rows.append((label, fmt(a, p), fmt(b, p), ratio(a, b) if r else ""))

def per_client(t):
    w, b0 = g(t, "with1"), g(t, "before")
    return None if w is None or b0 is None else (w - b0) / n

row("RSS before, kB", g("sluice", "before"), g("pgbouncer", "before"))
row(f"RSS with {n} idle clients, kB", g("sluice", "with1"), g("pgbouncer", "with1"))
row("per idle client, kB", per_client("sluice"), per_client("pgbouncer"), 2)
for b in range(1, bursts + 1):
    row(f"burst {b}: with clients, kB", g("sluice", f"with{b}"), g("pgbouncer", f"with{b}"))
    row(f"burst {b}: after they left, kB", g("sluice", f"after{b}"), g("pgbouncer", f"after{b}"))
def drift(t):
    a1, an = g(t, "after1"), g(t, f"after{bursts}")
    return None if a1 is None or an is None or a1 == 0 else an / a1
row(f"after burst {bursts} / after burst 1", drift("sluice"), drift("pgbouncer"), 2)
row(f"{bigc} x {bigm} MiB queries: before, kB", g("sluice", "big_before"), g("pgbouncer", "big_before"))
row(f"{bigc} x {bigm} MiB queries: peak, kB", g("sluice", "big_peak"), g("pgbouncer", "big_peak"))
def grow(t, k):
    a, b0 = g(t, k), g(t, "big_before")
    return None if a is None or b0 is None else a - b0
row("  peak - before, kB", grow("sluice", "big_peak"), grow("pgbouncer", "big_peak"))
row("  after (settled) - before, kB", grow("sluice", "big_after"), grow("pgbouncer", "big_after"), 0, False)
logins = [[g(t, f"login_s{b}") for b in range(1, bursts + 1)] for t in T]

w = max(len(r[0]) for r in rows)
print()
print(f"memory (transaction mode, {n} clients)")
print(f"  {'':{w}} {'sluice':>12} {'pgbouncer':>12} {'sluice/pgb':>11}")
for label, a, b, r in rows:
    print(f"  {label:{w}} {a:>12} {b:>12} {r:>11}")
for t, l in zip(T, logins):
    print(f"  {t} seconds to log {n} clients in, per burst: " + " ".join(fmt(x, 1) for x in l))
print("  targets (issue 8): <= 1 KB per idle client; after burst 5 within 20 % of after burst 1")
print()
EOF
}

# ---- statement table: RSS under many distinct shapes -----------------------

shapes_part() {
	log ""
	log "== statement table: ${SHAPES_STATEMENTS:-1000000} statements of ${SHAPES_DISTINCT:-100000} shapes (transaction mode)"
	start_sluice transaction 5
	$PIN_CLI /usr/bin/python3 bench/shapes.py "$SLUICE_PORT" "$SLUICE_PID" \
		"${SHAPES_STATEMENTS:-1000000}" "${SHAPES_DISTINCT:-100000}" 2>&1 | tee -a "$REPORT"
	stop_poolers
}

. bench/cache.sh

case $BENCH_ONLY in
"") tps_part; memory_part; shapes_part; cache_part ;;
tps) tps_part ;;
tracking) tracking_part ;;
memory) memory_part ;;
shapes) shapes_part ;;
cache) cache_part ;;
esac
echo "results: $REPORT (raw: $RESULTS, $MEM_TSV)"
