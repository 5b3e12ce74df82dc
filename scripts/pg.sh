# Shell helpers for throwaway PostgreSQL 15 clusters and Redis servers.
# Source it from bash:  . scripts/pg.sh
#
# PostgreSQL refuses to run as root, so when we are root the cluster is
# created and run as the `postgres` user, in a directory that user owns.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_SUPERPASS=${PG_SUPERPASS:-postgres}

# as_pg CMD...: run CMD as the postgres user when we are root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() {
	python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
sys.exit(0)
EOF
}

# pg_owned_dir DIR: create DIR (and parents) and give it to the postgres user.
pg_owned_dir() {
	mkdir -p "$1"
	if [ "$(id -u)" = 0 ]; then
		chown postgres:postgres "$1"
		chmod 700 "$1"
	fi
}

# pg_init DATADIR PORT [fast]: create a cluster listening on 127.0.0.1:PORT,
# its unix socket in DATADIR. Local connections trust, TCP asks for SCRAM;
# the superuser is postgres with password $PG_SUPERPASS. With "fast",
# fsync and friends are off (benchmarks, throwaway runs).
pg_init() {
	_d=$1 _port=$2 _fast=${3:-}
	pg_owned_dir "$_d"
	_pw=$(mktemp)
	printf '%s\n' "$PG_SUPERPASS" >"$_pw"
	chmod 644 "$_pw"
	as_pg "$PG_BIN/initdb" -D "$_d" -U postgres --pwfile="$_pw" \
		--auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C \
		>"$_d.initdb.log" 2>&1 || {
		rm -f "$_pw"
		cat "$_d.initdb.log" >&2
		return 1
	}
	rm -f "$_pw"
	cat >>"$_d/postgresql.conf" <<EOF

# throwaway cluster
listen_addresses = '127.0.0.1'
port = $_port
unix_socket_directories = '$_d'
max_connections = ${PG_MAX_CONNECTIONS:-300}
password_encryption = 'scram-sha-256'
logging_collector = off
EOF
	if [ "$_fast" = fast ]; then
		cat >>"$_d/postgresql.conf" <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
EOF
	fi
}

# pg_start DATADIR [taskset-cpu-list]: start the cluster and wait until it
# accepts connections. Its log goes to DATADIR/postgres.log.
pg_start() {
	_d=$1 _cpus=${2:-}
	if [ -n "$_cpus" ]; then
		as_pg taskset -c "$_cpus" "$PG_BIN/pg_ctl" -D "$_d" -l "$_d/postgres.log" -w -t 60 start >/dev/null
	else
		as_pg "$PG_BIN/pg_ctl" -D "$_d" -l "$_d/postgres.log" -w -t 60 start >/dev/null
	fi || {
		cat "$_d/postgres.log" >&2
		return 1
	}
}

# pg_pid DATADIR: the postmaster's pid (first line of postmaster.pid).
pg_pid() {
	[ -f "$1/postmaster.pid" ] && head -n1 "$1/postmaster.pid"
}

# pg_psql DATADIR [psql args...]: psql as postgres over the unix socket.
pg_psql() {
	_d=$1
	shift
	_port=$(sed -n 4p "$_d/postmaster.pid")
	as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$_d" -p "$_port" -U postgres "$@"
}

# pg_create_app DATADIR [user] [password] [db]: a role (SCRAM password)
# owning a database, default app/app/app.
pg_create_app() {
	_d=$1 _u=${2:-app} _p=${3:-app} _db=${4:-app}
	pg_psql "$_d" -d postgres <<EOF
SET password_encryption = 'scram-sha-256';
CREATE ROLE "$_u" LOGIN PASSWORD '$_p';
CREATE DATABASE "$_db" OWNER "$_u";
EOF
}

# alive PID: the process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid PID [seconds]: SIGTERM, wait, then SIGKILL if it is still there.
stop_pid() {
	_pid=$1 _t=${2:-10}
	[ -n "$_pid" ] || return 0
	alive "$_pid" || return 0
	kill -TERM "$_pid" 2>/dev/null
	_i=0
	while alive "$_pid" && [ $_i -lt $((_t * 10)) ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	if alive "$_pid"; then
		kill -KILL "$_pid" 2>/dev/null
		sleep 0.1
	fi
	return 0
}

# pg_stop DATADIR: fast shutdown of the postmaster, by pid.
pg_stop() {
	_d=$1
	_pid=$(pg_pid "$_d" 2>/dev/null) || return 0
	[ -n "$_pid" ] || return 0
	alive "$_pid" || return 0
	kill -INT "$_pid" 2>/dev/null # fast shutdown
	_i=0
	while alive "$_pid" && [ $_i -lt 300 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	alive "$_pid" && kill -QUIT "$_pid" 2>/dev/null
	sleep 0.2
	return 0
}

# redis_start DIR PORT: a Redis without persistence, bound to 127.0.0.1.
# Sets REDIS_PID (call it directly, not in $(...), so that this shell stays
# its parent); the log is DIR/redis.log.
redis_start() {
	_d=$1 _port=$2
	mkdir -p "$_d"
	setsid redis-server --port "$_port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$_d" --logfile "$_d/redis.log" --daemonize no >/dev/null 2>&1 &
	REDIS_PID=$!
	_i=0
	while ! port_busy "$_port"; do
		if ! alive "$REDIS_PID" || [ $_i -gt 100 ]; then
			echo "redis-server failed to start:" >&2
			cat "$_d/redis.log" >&2 2>/dev/null
			return 1
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
}

# redis_stop PID
redis_stop() {
	stop_pid "$1" 5
}

# wait_port PORT PID [seconds]: wait until PORT accepts connections while
# PID is alive. False when PID died or the time ran out.
wait_port() {
	_port=$1 _pid=$2 _t=${3:-10}
	_i=0
	while ! port_busy "$_port"; do
		alive "$_pid" || return 1
		[ $_i -ge $((_t * 10)) ] && return 1
		sleep 0.1
		_i=$((_i + 1))
	done
}
