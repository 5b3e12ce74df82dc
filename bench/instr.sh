#!/usr/bin/env bash
# bench/instr.sh: what statement tracking costs sluice, in instructions.
#
# Times on a shared 2-core machine move by 10-20 % from run to run; the
# instructions a process executes for a fixed amount of work hardly move.
# So this runs the same pgbench -t workload (-S, CLIENTS clients, TXNS
# transactions each) through sluice with track_statements on and off, in
# session and transaction mode and each pgbench protocol, with sluice under
# valgrind's callgrind (counters zeroed after a warm-up), and prints
# sluice's own user-space instructions per transaction. The kernel's part
# (the same reads and writes either way) is not in these counts.
#
# In transaction mode, pin_session_state (on by default) classifies every
# statement even with tracking off; PIN_SESSION_STATE=off leaves that out
# too, for what tracking alone costs. CLIENTS=1 gives the same count on
# every run (no batching of several clients' messages in one loop).
#
#   TXNS=1000 CLIENTS=10 SLUICE_BIN=./sluice bench/instr.sh
# Needs valgrind.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/pg.sh

SLUICE_BIN=${SLUICE_BIN:-./sluice}
TXNS=${TXNS:-1000}
CLIENTS=${CLIENTS:-10}
PGBENCH=${PGBENCH:-$(command -v pgbench || echo "$PG_BIN/pgbench")}
command -v valgrind >/dev/null 2>&1 || { echo "bench/instr.sh needs valgrind" >&2; exit 1; }

W=$(mktemp -d /tmp/sluice-instr.XXXXXX)
chmod 755 "$W"
SPID=
cleanup() {
	[ -n "$SPID" ] && stop_pid "$SPID" 10
	pg_stop "$W/pg"
	rm -rf "$W"
}
trap cleanup EXIT

PG_PORT=$(free_port)
pg_init "$W/pg" "$PG_PORT" fast || exit 1
pg_start "$W/pg" "" || exit 1
pg_create_app "$W/pg" app app app || exit 1
PGPASSWORD=app "$PGBENCH" -i -q -s 1 -h 127.0.0.1 -p "$PG_PORT" -U app app >/dev/null 2>&1 || exit 1
printf '"app" "app"\n' >"$W/userlist.txt"

# count MODE PROTO TRACK: prints sluice's instructions per transaction
count() {
	_port=$(free_port)
	cat >"$W/s.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[sluice]
listen_addr = 127.0.0.1
listen_port = $_port
auth_type = scram-sha-256
auth_file = $W/userlist.txt
pool_mode = $1
min_pool_size = $CLIENTS
default_pool_size = $CLIENTS
stats_listen =
track_statements = $3
pin_session_state = ${PIN_SESSION_STATE:-on}
EOF
	rm -f "$W"/callgrind.out.*
	valgrind --tool=callgrind --callgrind-out-file="$W/callgrind.out.%p" \
		"$SLUICE_BIN" "$W/s.ini" >"$W/s.log" 2>&1 &
	SPID=$!
	wait_port "$_port" "$SPID" 60 || { cat "$W/s.log" >&2; exit 1; }
	PGPASSWORD=app "$PGBENCH" -n -S -M "$2" -c "$CLIENTS" -j 2 -t 100 -h 127.0.0.1 \
		-p "$_port" -U app app >/dev/null 2>&1
	callgrind_control -z "$SPID" >/dev/null 2>&1
	PGPASSWORD=app "$PGBENCH" -n -S -M "$2" -c "$CLIENTS" -j 2 -t "$TXNS" -h 127.0.0.1 \
		-p "$_port" -U app app >"$W/pgbench.log" 2>&1
	callgrind_control -d "$SPID" >/dev/null 2>&1
	stop_pid "$SPID" 30
	SPID=
	# the dump after the measured run is the one with the most recent part number
	_f=$(ls -t "$W"/callgrind.out.*.* 2>/dev/null | head -n 1)
	# KEEP_DUMPS=DIR keeps each profile, for callgrind_annotate
	[ -n "${KEEP_DUMPS:-}" ] && cp "$_f" "$KEEP_DUMPS/callgrind-$1-$2-$3.out"
	awk -v n=$((CLIENTS * TXNS)) '/^(summary|totals):/ { t = $2 } END { printf "%.0f\n", t / n }' "$_f"
}

printf '%-12s %-9s %14s %14s %9s\n' mode protocol "instr/txn on" "instr/txn off" "on/off"
for mode in ${MODES:-session transaction}; do
	for proto in ${PROTOCOLS:-simple extended prepared}; do
		i1=$(count "$mode" "$proto" on)
		i0=$(count "$mode" "$proto" off)
		awk -v m="$mode" -v p="$proto" -v a="$i1" -v b="$i0" 'BEGIN {
			printf "%-12s %-9s %14d %14d %9.2f\n", m, p, a, b, b ? a / b : 0 }'
	done
done
