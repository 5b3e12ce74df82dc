#!/usr/bin/env bash
# make bench: sluice beside PgBouncer and a direct connection, all against
# the same throwaway PostgreSQL 15 (fsync off, pgbench scale 10).
#
# PostgreSQL and both poolers run on CPU 0, pgbench on CPU 1. Every scenario
# is run ROUNDS times, interleaved (sluice, pgbouncer, direct, next scenario,
# ..., in an order rotated each round); the tables show medians. Pooler CPU is utime+stime from
# /proc/PID/stat around each run, divided by the transactions pgbench made.
#
#   ROUNDS=3         rounds per scenario
#   DURATION=10      seconds per pgbench run (-T)
#   BENCH_QUICK=1    1 round of 3 s
#   SCALE=10         pgbench -i scale
#   SLUICE_BIN       binary to benchmark (default ./sluice)
#   PGBOUNCER_BIN    default /usr/sbin/pgbouncer
#   KEEP=1           keep the work directory
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/pg.sh

SLUICE_BIN=${SLUICE_BIN:-./sluice}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
PGBENCH=${PGBENCH:-$(command -v pgbench || echo "$PG_BIN/pgbench")}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
SCALE=${SCALE:-10}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	ROUNDS=1
	DURATION=3
fi
TX_POOL=50       # default_pool_size in transaction mode
SESSION_POOL=100 # session mode needs a server connection per client
export PG_MAX_CONNECTIONS=400

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
cleanup() {
	trap - INT TERM EXIT
	[ -n "$SLUICE_PID" ] && stop_pid "$SLUICE_PID" 10
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

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---- PostgreSQL -----------------------------------------------------------

PG_PORT=$(free_port)
log "PostgreSQL 15 on 127.0.0.1:$PG_PORT, fsync off, CPU ${SRV_CPU:-any}"
pg_init "$W/pg" "$PG_PORT" fast || exit 1
pg_start "$W/pg" "$SRV_CPU" || exit 1
pg_create_app "$W/pg" app app app || exit 1
log "pgbench -i -s $SCALE"
PGPASSWORD=app "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U app app \
	>"$W/pgbench-init.log" 2>&1 || { cat "$W/pgbench-init.log" >&2; exit 1; }

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

# start_sluice MODE POOLSIZE
start_sluice() {
	_mode=$1 _pool=$2
	SLUICE_PORT=$(free_port)
	_cfg=$W/sluice/sluice-$_mode.ini
	cat >"$_cfg" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[sluice]
listen_addr = 127.0.0.1
listen_port = $SLUICE_PORT
auth_type = scram-sha-256
auth_file = $W/sluice/userlist.txt
admin_users = admin
pool_mode = $_mode
min_pool_size = 5
default_pool_size = $_pool
max_client_conn = 1000

[cache]
enabled = 0
redis_host = 127.0.0.1
redis_port = 6379
EOF
	$PIN_SRV "$SLUICE_BIN" "$_cfg" >"$W/sluice/sluice-$_mode.log" 2>&1 &
	SLUICE_PID=$!
	if ! wait_port "$SLUICE_PORT" "$SLUICE_PID" 15; then
		echo "bench: sluice did not start ($SLUICE_BIN $_cfg); its log:" >&2
		cat "$W/sluice/sluice-$_mode.log" >&2
		exit 1
	fi
}

# start_pgbouncer MODE POOLSIZE (as postgres: PgBouncer refuses root)
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
auth_type = scram-sha-256
auth_file = $W/pgb/userlist.txt
admin_users = admin
pool_mode = $_mode
min_pool_size = 5
default_pool_size = $_pool
max_client_conn = 1000
logfile = $W/pgb/pgbouncer-$_mode.log
pidfile = $W/pgb/pgbouncer.pid
EOF
	chown postgres:postgres "$_cfg"
	rm -f "$W/pgb/pgbouncer.pid"
	as_pg $PIN_SRV "$PGBOUNCER_BIN" -d "$_cfg" >"$W/pgb/pgbouncer-$_mode.out" 2>&1
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
	[ -n "$PGB_PID" ] && stop_pid "$PGB_PID" 10
	SLUICE_PID= PGB_PID=
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
	sluice) _port=$SLUICE_PORT _pid=$SLUICE_PID ;;
	pgbouncer) _port=$PGB_PORT _pid=$PGB_PID ;;
	direct) _port=$PG_PORT _pid= ;;
	esac
	_log=$W/run-$_scen-$_tgt-$_round.log
	[ -n "$_pid" ] && read -r _b _bu <<<"$(cpu_ticks "$_pid")"
	PGPASSWORD=app $PIN_CLI "$PGBENCH" -h 127.0.0.1 -p "$_port" -U app -n -S \
		-M "$_proto" -c "$_c" -j 2 -T "$_t" $_extra app >"$_log" 2>&1
	_rc=$?
	[ -n "$_pid" ] && read -r _a _au <<<"$(cpu_ticks "$_pid")"
	_tps=$(sed -n 's/^tps = \([0-9.]*\) (\(without initial connection time\|including reconnection times\)).*/\1/p' "$_log")
	_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$_log")
	_fail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$_log")
	if [ $_rc -ne 0 ] || [ -z "$_tps" ] || [ -z "$_n" ] || [ "$_n" = 0 ]; then
		log "  $_scen $_tgt round $_round: pgbench failed (rc $_rc):"
		tail -n 5 "$_log" | sed 's/^/    /' | tee -a "$REPORT" >&2
		_tps=NA _cpu=NA _ucpu=NA
	elif [ -n "$_pid" ]; then
		_cpu=$(awk -v d=$((_a - _b)) -v hz="$TICKS" -v n="$_n" \
			'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
		_ucpu=$(awk -v d=$((_au - _bu)) -v hz="$TICKS" -v n="$_n" \
			'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
	else
		_cpu=NA _ucpu=NA
	fi
	[ -n "$_fail" ] && [ "$_fail" != 0 ] && log "  $_scen $_tgt round $_round: $_fail failed transactions"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$_mode" "$_scen" "$_tgt" "$_round" \
		"$_tps" "${_n:-0}" "$_cpu" "$_proto" "$_ucpu" >>"$RESULTS"
	printf '  %-22s %-10s round %s: tps %-12s cpu/txn %s us\n' "$_scen" "$_tgt" "$_round" "$_tps" "$_cpu" >&2
}

# order ROUND: the targets, rotated each round, so that none always runs
# right after another (a direct run's backends are still exiting when the
# next run starts).
order() {
	case $(($1 % 3)) in
	1) echo sluice pgbouncer direct ;;
	2) echo pgbouncer direct sluice ;;
	0) echo direct sluice pgbouncer ;;
	esac
}

warm_up() {
	for _tgt in sluice pgbouncer; do
		bench_one warmup warmup "$_tgt" 0 "$1" simple 2 >/dev/null 2>&1
	done
	sed -i '/^warmup\t/d' "$RESULTS"
}

# ---- session mode ---------------------------------------------------------

log ""
log "rounds $ROUNDS, pgbench -T $DURATION -S -n -j 2, sluice $SLUICE_BIN, $("$PGBOUNCER_BIN" --version | head -n1)"
log ""
log "== session mode (default_pool_size $SESSION_POOL)"
start_sluice session "$SESSION_POOL"
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

# ---- transaction mode -----------------------------------------------------

log "== transaction mode (default_pool_size $TX_POOL)"
start_sluice transaction "$TX_POOL"
start_pgbouncer transaction "$TX_POOL"
warm_up 100
for r in $(seq 1 "$ROUNDS"); do
	for c in 10 100; do
		for tgt in $(order "$r"); do
			bench_one transaction "tx-extended-c$c" "$tgt" "$r" "$c" extended
		done
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

# ---- report ---------------------------------------------------------------

python3 - "$RESULTS" "$SLUICE_RSS" "$PGB_RSS" <<'EOF' | tee -a "$REPORT"
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
    for tgt in ("sluice", "pgbouncer", "direct"):
        if tgt not in t:
            continue
        d = t[tgt]
        m[tgt] = (med(d["tps"]), med(d["cpu"]), med(d["ucpu"]))
        print(f"  {tgt:10} {d['proto']:9} {fmt(m[tgt][0]):>12} {fmt(m[tgt][1], 2):>11} "
              f"{fmt(m[tgt][2], 2):>11} {len(d['tps']):>5}")
    s = m.get("sluice", (None, None, None))
    b = m.get("pgbouncer", (None, None, None))
    print(f"  sluice/pgbouncer: tps {ratio(s[0], b[0])}, cpu/txn {ratio(s[1], b[1])}, "
          f"user cpu/txn {ratio(s[2], b[2])}")
    print()
print(f"RSS at the end: sluice {sys.argv[2]} kB, pgbouncer {sys.argv[3]} kB")
EOF
echo "results: $REPORT (raw: $RESULTS)"
