# The result cache's part of make bench (BENCH_ONLY=cache): sourced by
# bench/run.sh, whose PostgreSQL (with the pgbench tables), pinning, work
# directory, helpers and report it uses; it starts its own Redis and three
# sluices in transaction mode, all sharing that Redis:
#
#   sluice         [cache] defaults (L1 of 16 MB in front of Redis)
#   sluice-strict  cache_strict = on: every L1 hit also reads the
#                  generations from Redis
#   sluice-l1off   l1_bytes = 0: every hit is a Redis round trip
#
# Workloads (pgbench -M simple with a script; the extended protocol is
# served too, these rows measure the simple one):
#
#   agg-c10        a marked aggregate over 100,000 rows (GROUP BY, 10 rows
#                  out), 10 clients
#   pk-c10/-c100   a marked primary-key read of pgbench_accounts over a hot
#                  set of CACHE_KEYS keys (1,000), pgbench -S style
#
# Each workload runs against each sluice with the hint, against sluice with
# /* sluice:nocache */ instead (the same proxy, uncached: what a miss path
# costs without the store) and against PostgreSQL directly. Rounds are
# interleaved in a rotating order and the table shows medians: TPS, sluice's
# CPU per transaction (utime+stime from /proc over the run / transactions)
# and Redis' CPU per transaction, then the ratios the issue asks for.
# Every entry is made before the first measured run (a warm-up run of
# each), so the cached rows measure hits; SHOW CACHE of each sluice at the
# end shows the hit ratio.
#
#   CACHE_KEYS=1000   hot set of the primary-key read

CACHE_TSV=
CACHE_REDIS_PID=
CACHE_PIDS=

cache_cleanup() {
	for _p in $CACHE_PIDS; do
		stop_pid "$_p" 10
	done
	CACHE_PIDS=
	[ -n "$CACHE_REDIS_PID" ] && redis_stop "$CACHE_REDIS_PID"
	CACHE_REDIS_PID=
}

# cache_start_sluice NAME CACHE_LINES: a sluice in transaction mode whose
# [cache] section is on, with CACHE_LINES added; sets CS_PORT and CS_PID.
cache_start_sluice() {
	_name=$1 _lines=$2
	CS_PORT=$(free_port)
	_cfg=$W/sluice/cache-$_name.ini
	cat >"$_cfg" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[sluice]
listen_addr = 127.0.0.1
listen_port = $CS_PORT
auth_type = scram-sha-256
auth_file = $W/sluice/userlist.txt
admin_users = admin
pool_mode = transaction
min_pool_size = 5
default_pool_size = $TX_POOL
max_client_conn = 1000
stats_listen =

[cache]
enabled = 1
redis_url = redis://127.0.0.1:$CACHE_REDIS_PORT/0
redis_timeout_ms = 200
$_lines
EOF
	$PIN_SRV "$SLUICE_BIN" "$_cfg" >"$W/sluice/cache-$_name.log" 2>&1 &
	CS_PID=$!
	CACHE_PIDS="$CACHE_PIDS $CS_PID"
	if ! wait_port "$CS_PORT" "$CS_PID" 15; then
		echo "bench: sluice ($_name) did not start; its log:" >&2
		cat "$W/sluice/cache-$_name.log" >&2
		exit 1
	fi
	# lookups go to PostgreSQL until both Redis connections are up
	_i=0
	until cache_show "$CS_PORT" | grep -q '|up$'; do
		_i=$((_i + 1))
		if [ $_i -gt 100 ]; then
			echo "bench: sluice ($_name) never connected to Redis; its log:" >&2
			cat "$W/sluice/cache-$_name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# cache_show PORT: SHOW CACHE of the sluice on PORT, one line, | between fields
cache_show() {
	PGPASSWORD=admin psql -X -q -At -h 127.0.0.1 -p "$1" -U admin -d sluice \
		-c "SHOW CACHE" 2>/dev/null
}

# cache_one SCENARIO TARGET ROUND CLIENTS SCRIPT [T]: one pgbench run;
# appends scenario, target, round, tps, transactions, sluice us/txn,
# Redis us/txn to $CACHE_TSV.
cache_one() {
	_scen=$1 _tgt=$2 _round=$3 _c=$4 _script=$5 _t=${6:-$DURATION}
	case $_tgt in
	sluice | uncached) _port=$CS_MAIN_PORT _pid=$CS_MAIN_PID ;;
	strict) _port=$CS_STRICT_PORT _pid=$CS_STRICT_PID ;;
	l1off) _port=$CS_L1OFF_PORT _pid=$CS_L1OFF_PID ;;
	direct) _port=$PG_PORT _pid= ;;
	esac
	_log=$W/cache-$_scen-$_tgt-$_round.log
	[ -n "$_pid" ] && read -r _b _bu <<<"$(cpu_ticks "$_pid")"
	read -r _rb _rbu <<<"$(cpu_ticks "$CACHE_REDIS_PID")"
	PGPASSWORD=app $PIN_CLI "$PGBENCH" -h 127.0.0.1 -p "$_port" -U app -n -M simple \
		-f "$_script" -c "$_c" -j 2 -T "$_t" app >"$_log" 2>&1
	_rc=$?
	[ -n "$_pid" ] && read -r _a _au <<<"$(cpu_ticks "$_pid")"
	read -r _ra _rau <<<"$(cpu_ticks "$CACHE_REDIS_PID")"
	_tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$_log")
	_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$_log")
	_fail=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$_log")
	if [ $_rc -ne 0 ] || [ -z "$_tps" ] || [ -z "$_n" ] || [ "$_n" = 0 ]; then
		log "  $_scen $_tgt round $_round: pgbench failed (rc $_rc):"
		tail -n 5 "$_log" | sed 's/^/    /' | tee -a "$REPORT" >&2
		_tps=NA _cpu=NA _rcpu=NA
	else
		_cpu=NA
		[ -n "$_pid" ] && _cpu=$(awk -v d=$((_a - _b)) -v hz="$TICKS" -v n="$_n" \
			'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
		_rcpu=$(awk -v d=$((_ra - _rb)) -v hz="$TICKS" -v n="$_n" \
			'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
	fi
	[ -n "$_fail" ] && [ "$_fail" != 0 ] && log "  $_scen $_tgt round $_round: $_fail failed transactions"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$_scen" "$_tgt" "$_round" "$_tps" "${_n:-0}" \
		"$_cpu" "$_rcpu" >>"$CACHE_TSV"
	printf '  %-8s %-9s round %s: tps %-12s sluice cpu/txn %s us, redis %s us\n' "$_scen" \
		"$_tgt" "$_round" "$_tps" "$_cpu" "$_rcpu" >&2
}

# cache_order ROUND: the targets, rotated each round
cache_order() {
	_k=$(($1 % 5))
	set -- sluice uncached strict l1off direct
	while [ $_k -gt 0 ]; do
		set -- "$2" "$3" "$4" "$5" "$1"
		_k=$((_k - 1))
	done
	echo "$@"
}

cache_part() {
	CACHE_KEYS=${CACHE_KEYS:-1000}
	CACHE_TSV=$OUT.cache.tsv
	: >"$CACHE_TSV"
	trap 'cache_cleanup; cleanup' EXIT
	log ""
	log "== result cache: transaction mode (default_pool_size $TX_POOL), pgbench -M simple -j 2, rounds $ROUNDS of ${DURATION}s, sluice $SLUICE_BIN, $(redis-server --version | cut -d' ' -f1-3)"

	CACHE_REDIS_PORT=$(free_port)
	redis_start "$W/redis" "$CACHE_REDIS_PORT" || exit 1
	CACHE_REDIS_PID=$REDIS_PID
	[ -n "$SRV_CPU" ] && taskset -pc "$SRV_CPU" "$CACHE_REDIS_PID" >/dev/null

	# the aggregate's table: 100,000 rows in 10 groups
	cat >"$W/cache-setup.sql" <<'EOF'
SET client_min_messages = warning;
DROP TABLE IF EXISTS cache_agg;
CREATE TABLE cache_agg (id int PRIMARY KEY, grp int NOT NULL, val numeric NOT NULL);
INSERT INTO cache_agg SELECT g, g % 10, (g * 7919) % 1000 FROM generate_series(1, 100000) g;
VACUUM ANALYZE cache_agg;
EOF
	PGPASSWORD=app psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U app \
		-f "$W/cache-setup.sql" app || exit 1

	for _h in cache nocache; do
		_hint="sluice:cache ttl=3600"
		[ $_h = nocache ] && _hint="sluice:nocache"
		cat >"$W/cache-agg-$_h.sql" <<EOF
SELECT /* $_hint */ grp, count(*), sum(val), avg(val), min(val), max(val) FROM cache_agg GROUP BY grp ORDER BY grp;
EOF
		cat >"$W/cache-pk-$_h.sql" <<EOF
\\set aid random(1, $CACHE_KEYS)
SELECT /* $_hint */ abalance FROM pgbench_accounts WHERE aid = :aid;
EOF
	done

	cache_start_sluice main ""
	CS_MAIN_PORT=$CS_PORT CS_MAIN_PID=$CS_PID
	cache_start_sluice strict "cache_strict = on"
	CS_STRICT_PORT=$CS_PORT CS_STRICT_PID=$CS_PID
	cache_start_sluice l1off "l1_bytes = 0"
	CS_L1OFF_PORT=$CS_PORT CS_L1OFF_PID=$CS_PID

	# warm-up: every key's entry made, each sluice's L1 filled, the pools open
	for _w in agg pk; do
		for _tgt in sluice uncached strict l1off direct; do
			_h=cache
			[ $_tgt = uncached ] && _h=nocache
			cache_one warmup "$_tgt" 0 10 "$W/cache-$_w-$_h.sql" 3 >/dev/null 2>&1
		done
	done
	: >"$CACHE_TSV"

	for r in $(seq 1 "$ROUNDS"); do
		for sc in agg-c10 pk-c10 pk-c100; do
			_w=${sc%-c*} _c=${sc#*-c}
			for tgt in $(cache_order "$r"); do
				_h=cache
				[ "$tgt" = uncached ] && _h=nocache
				cache_one "$sc" "$tgt" "$r" "$_c" "$W/cache-$_w-$_h.sql"
			done
		done
	done

	log "  SHOW CACHE (hits|misses|hit_ratio|stores|bytes|evictions|invalidations|uncacheable|redis):"
	log "    sluice:        $(cache_show "$CS_MAIN_PORT")"
	log "    sluice-strict: $(cache_show "$CS_STRICT_PORT")"
	log "    sluice-l1off:  $(cache_show "$CS_L1OFF_PORT")"
	cache_cleanup
	trap cleanup EXIT

	python3 - "$CACHE_TSV" "$CACHE_KEYS" <<'EOF' | tee -a "$REPORT"
import sys, statistics
from collections import OrderedDict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
keys = sys.argv[2]
scen = OrderedDict()
for name, tgt, rnd, tps, n, cpu, rcpu in rows:
    d = scen.setdefault(name, {}).setdefault(tgt, {"tps": [], "cpu": [], "rcpu": []})
    if tps != "NA":
        d["tps"].append(float(tps))
        if cpu != "NA":
            d["cpu"].append(float(cpu))
        d["rcpu"].append(float(rcpu))

def med(v):
    return statistics.median(v) if v else None

def fmt(v, p=0):
    return "-" if v is None else f"{v:,.{p}f}"

def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

what = {"agg": "a marked aggregate over 100,000 rows",
        "pk": f"a marked primary-key read, hot set of {keys} keys"}
label = {"sluice": "cached", "uncached": "uncached", "strict": "strict",
         "l1off": "l1_bytes=0", "direct": "direct"}
print()
for name, t in scen.items():
    w, c = name.split("-c")
    print(f"{name}: {what[w]}, {c} clients")
    print(f"  {'':11} {'median tps':>12} {'sluice us/txn':>14} {'redis us/txn':>13} {'runs':>5}")
    m = {}
    for tgt in ("sluice", "strict", "l1off", "uncached", "direct"):
        if tgt not in t:
            continue
        d = t[tgt]
        m[tgt] = (med(d["tps"]), med(d["cpu"]), med(d["rcpu"]))
        print(f"  {label[tgt]:11} {fmt(m[tgt][0]):>12} {fmt(m[tgt][1], 2):>14} "
              f"{fmt(m[tgt][2], 2):>13} {len(d['tps']):>5}")
    g = lambda k, i: m.get(k, (None, None, None))[i]
    print(f"  tps cached/uncached {ratio(g('sluice', 0), g('uncached', 0))}, "
          f"cached/direct {ratio(g('sluice', 0), g('direct', 0))}, "
          f"strict/direct {ratio(g('strict', 0), g('direct', 0))}, "
          f"l1_bytes=0/direct {ratio(g('l1off', 0), g('direct', 0))}")
    print(f"  sluice cpu/txn hit/uncached {ratio(g('sluice', 1), g('uncached', 1))}, "
          f"strict hit/uncached {ratio(g('strict', 1), g('uncached', 1))}, "
          f"l1_bytes=0 hit/uncached {ratio(g('l1off', 1), g('uncached', 1))}")
    print()
print("targets (issue 11): agg cached/uncached >= 50; pk cached/direct >= 3 at 10 and 100 "
      "clients; sluice cpu per hit below its cpu per uncached query")
EOF
	log "cache raw results: $CACHE_TSV"
}
