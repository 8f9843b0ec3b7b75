#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the pg-baseline benchmark (benches/pg-baseline/src/main.rs).
#
#   benches/scripts/postgres.sh [start] [DIR]   install if missing, create + start; prints a connection string
#   benches/scripts/postgres.sh stop [DIR]      stop it (pg_ctl -m fast) and remove DIR
#   benches/scripts/postgres.sh status [DIR]    exit 0 and print the connection string if it is running
#
# DIR defaults to ${PG_BENCH_DIR:-/var/tmp/release-ledger-pg}; the port to ${PG_BENCH_PORT:-55432}.
# PG_BIN may name a server bin dir (default: the newest /usr/lib/postgresql/<ver>/bin).
#
# The cluster is created with the server binaries directly (initdb, pg_ctl), never with
# Debian's pg_ctlcluster or a service manager, and listens on 127.0.0.1 only (TCP; its Unix
# socket lives inside DIR). Authentication is `trust`: loopback only and thrown away after.
# Durability is exactly the ledger's: every commit is fsynced before it is acknowledged
# (fsync=on, synchronous_commit=on, full_page_writes=on, wal_sync_method left at its
# platform default: fdatasync on Linux). Everything else is PostgreSQL's default
# configuration, apart from max_connections (for many clients) and logging to a file.
#
# Only stdout carries the connection string; progress and errors go to stderr. Run as root
# (it installs packages and runs the server as the `postgres` system user, created if
# missing) or as any non-root user when PostgreSQL is already installed.

set -euo pipefail

die() {
    echo "postgres.sh: error: $*" >&2
    exit 1
}
say() { echo "postgres.sh: $*" >&2; }

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

command="start"
case "${1:-}" in
    start | stop | status) command="$1"; shift ;;
    -h | --help) usage ;;
esac
[[ $# -le 1 ]] || usage

DIR="${1:-${PG_BENCH_DIR:-/var/tmp/release-ledger-pg}}"
PORT="${PG_BENCH_PORT:-55432}"
MARKER=".release-ledger-pg-bench"
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "PG_BENCH_PORT must be a TCP port number, got '$PORT'"
[[ -n "$DIR" ]] || die "empty directory"
DIR="$(realpath -m -- "$DIR")"
case "$DIR" in
    / | /tmp | /var/tmp | /var | /root | /home | /usr | /etc) die "refusing to use '$DIR' itself; give a subdirectory" ;;
esac
DATA="$DIR/data"
LOG="$DIR/postgres.log"
CONN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"

# The server's own user: root may not run postgres.
if [[ $EUID -eq 0 ]]; then
    RUN_AS="postgres"
else
    RUN_AS="$(id -un)"
fi

as_server_user() {
    if [[ $EUID -eq 0 ]]; then
        if command -v runuser >/dev/null; then
            runuser -u "$RUN_AS" -- "$@"
        else
            su -s /bin/sh "$RUN_AS" -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

find_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || die "PG_BIN=$PG_BIN has no initdb/pg_ctl"
        echo "$PG_BIN"
        return
    fi
    local best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
        # Numeric version order (10 after 9).
        if [[ -z "$best" ]] || (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$best")"))); then
            best="$dir"
        fi
    done
    echo "$best"
}

install_postgres() {
    [[ $EUID -eq 0 ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and installing it needs root: run as root or 'apt-get install -y postgresql'"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get to install it"
    say "installing PostgreSQL from Debian's packages (apt-get install -y postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq postgresql >&2 || die "apt-get install -y postgresql failed"
}

ensure_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        say "creating the 'postgres' system user"
        useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql --shell /bin/sh postgres \
            || die "could not create the 'postgres' system user"
    fi
}

# 0 when the cluster in $DATA is up (pg_ctl status checks the pid file and the process).
running() {
    [[ -f "$DATA/postmaster.pid" ]] && as_server_user "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_in_use() {
    # bash's /dev/tcp: a successful connect means something listens on the port.
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

data_port() {
    sed -n "s/^port = \([0-9]*\).*/\1/p" "$DATA/release-ledger-bench.conf" 2>/dev/null | tail -n 1
}

BIN="$(find_bin)"

case "$command" in
    status)
        [[ -n "$BIN" ]] || die "PostgreSQL is not installed"
        if running; then
            PORT="$(data_port)"
            echo "host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
            exit 0
        fi
        say "not running (dir $DIR)"
        exit 1
        ;;
    stop)
        if [[ ! -e "$DIR" ]]; then
            say "nothing to stop: $DIR does not exist"
            exit 0
        fi
        [[ -f "$DIR/$MARKER" ]] || die "$DIR was not created by this script (no $MARKER); not touching it"
        if [[ -n "$BIN" ]] && running; then
            say "stopping the cluster in $DATA (pg_ctl stop -m fast)"
            as_server_user "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2 || die "pg_ctl stop failed; see $LOG"
        elif [[ -f "$DATA/postmaster.pid" ]]; then
            pid="$(head -n 1 "$DATA/postmaster.pid")"
            if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                die "postmaster $pid still runs but pg_ctl cannot reach it; stop it by hand"
            fi
        fi
        rm -rf -- "$DIR"
        say "removed $DIR"
        exit 0
        ;;
esac

# start
if [[ -z "$BIN" ]]; then
    install_postgres
    BIN="$(find_bin)"
    [[ -n "$BIN" ]] || die "installed postgresql but found no /usr/lib/postgresql/*/bin/initdb"
fi
ensure_user
say "using $("$BIN/postgres" --version) from $BIN, as user $RUN_AS"

if [[ -e "$DIR" && ! -f "$DIR/$MARKER" ]]; then
    if [[ -d "$DIR" && -z "$(ls -A -- "$DIR")" ]]; then
        : # an empty dir (e.g. from mktemp -d) is fine
    else
        die "$DIR exists and was not created by this script; give an empty or new directory"
    fi
fi
mkdir -p -- "$DIR"
touch -- "$DIR/$MARKER"
if [[ $EUID -eq 0 ]]; then
    chown -R "$RUN_AS": -- "$DIR"
fi
chmod 0700 -- "$DIR"
as_server_user test -w "$DIR" -a -x "$DIR" \
    || die "user $RUN_AS cannot write $DIR (is a parent directory private, e.g. under /root?)"

if running; then
    existing="$(data_port)"
    [[ "$existing" == "$PORT" ]] || die "a cluster already runs in $DATA on port $existing, not $PORT; 'postgres.sh stop' first"
    say "already running in $DATA"
    echo "$CONN"
    exit 0
fi

if port_in_use; then
    die "something already listens on 127.0.0.1:$PORT; set PG_BENCH_PORT to a free port"
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
    [[ ! -e "$DATA" ]] || die "$DATA exists but is not a PostgreSQL data dir; 'postgres.sh stop' to remove it"
    say "initdb $DATA"
    as_server_user "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-instructions \
        >"$DIR/initdb.log" 2>&1 || {
        tail -n 20 "$DIR/initdb.log" >&2
        die "initdb failed (log: $DIR/initdb.log)"
    }
fi

# Our settings live in their own file, included once at the end of postgresql.conf (later
# settings win) and rewritten on every start, so the port and durability are always the ones
# asked for.
if ! grep -q "^include_if_exists = 'release-ledger-bench.conf'" "$DATA/postgresql.conf"; then
    printf "\n# release-ledger pg-baseline settings\ninclude_if_exists = 'release-ledger-bench.conf'\n" \
        | as_server_user tee -a "$DATA/postgresql.conf" >/dev/null
fi
as_server_user tee "$DATA/release-ledger-bench.conf" >/dev/null <<EOF
# Written by benches/scripts/postgres.sh at $(date -u +%FT%TZ); rewritten on every start.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 300
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
EOF

say "starting on 127.0.0.1:$PORT (log: $LOG)"
as_server_user "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >&2 || {
    tail -n 20 "$LOG" >&2 || true
    die "pg_ctl start failed (log: $LOG)"
}

# Show what the server actually runs with, so a report can quote it.
settings="$(as_server_user "$BIN/psql" -X -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c \
    "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN
     ('fsync','synchronous_commit','full_page_writes','wal_sync_method','listen_addresses','port',
      'shared_buffers','wal_buffers','commit_delay','max_wal_size','checkpoint_timeout','data_checksums')" 2>&1)" \
    || die "server started but psql could not connect: $settings"
say "server settings: $settings"
echo "$CONN"
