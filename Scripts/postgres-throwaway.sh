#!/usr/bin/env bash
# A throwaway PostgreSQL server for trying the PostgreSQL store and for its tests: a fresh cluster in a
# temporary folder, listening only on a Unix socket in that folder, trust authentication, superuser `mirage`.
#
#   Scripts/postgres-throwaway.sh start         # prints `export MIRAGE_TEST_POSTGRES=...` and `export PGTHROWAWAY=...`
#   Scripts/postgres-throwaway.sh restart FOLDER  # restarts the server (fast: clients are disconnected)
#   Scripts/postgres-throwaway.sh down FOLDER   # stops the server, keeping its data (`up` starts it again)
#   Scripts/postgres-throwaway.sh up FOLDER     # starts a server stopped by `down`
#   Scripts/postgres-throwaway.sh stop FOLDER   # stops the server and deletes the folder
#
# Uses Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin, or PG_BIN). initdb refuses to run
# as root, so under root the cluster belongs to an unprivileged user (`postgres` when it exists, else
# `mirage-ci`, created once) and the binaries run through `runuser`.
set -euo pipefail

bin="${PG_BIN:-}"
if [ -z "$bin" ]; then
    for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && bin="$dir"; done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "no PostgreSQL server binaries (initdb) found; install them (Debian: apt-get install postgresql-15) or set PG_BIN" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$owner" -- "$@"; else "$@"; fi
}

owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
    owner=postgres
    if ! id "$owner" >/dev/null 2>&1; then
        owner=mirage-ci
        id "$owner" >/dev/null 2>&1 || useradd --system --no-create-home "$owner"
    fi
fi

# Runs pg_ctl with no file descriptor open beyond standard input, output and error. The server it starts keeps
# every descriptor it inherits for as long as it runs; a caller's pipe or socket left open there makes the caller
# wait for the server to exit (Swift's Foundation `Process` learns that a child ended through such a socket, so
# `waitUntilExit()` on `postgres-throwaway.sh restart` or `up` never returned).
pg_ctl_alone() {
    (
        for path in /proc/$BASHPID/fd/*; do
            fd="${path##*/}"
            [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
        done
        as_owner "$bin/pg_ctl" "$@"
    )
}

# Starts the cluster of a folder. No TCP listener: only the socket in the folder (nothing else on the machine can
# be disturbed).
launch() {
    pg_ctl_alone -D "$1/data" -l "$1/server.log" -w \
        -o "-c listen_addresses='' -k $1 -c fsync=off -c max_connections=200" start >/dev/null \
        || { cat "$1/server.log" >&2; exit 1; }
}

case "${1:-}" in
start)
    folder="$(mktemp -d "${TMPDIR:-/tmp}/mirage-pg.XXXXXX")"
    chmod 755 "$folder"
    # The folder first, so that a caller can still stop and remove it when a later step fails or is killed.
    echo "export PGTHROWAWAY='$folder'"
    [ "$(id -u)" = 0 ] && chown "$owner" "$folder"
    as_owner "$bin/initdb" -D "$folder/data" -U mirage --auth=trust -E UTF8 --no-locale >"$folder/initdb.log" 2>&1 \
        || { cat "$folder/initdb.log" >&2; exit 1; }
    launch "$folder"
    socket="$(printf '%s' "$folder" | sed 's|/|%2F|g')"
    echo "export MIRAGE_TEST_POSTGRES='postgres://mirage@$socket/postgres'"
    ;;
restart)
    pg_ctl_alone -D "${2:?the folder printed by start}/data" -l "$2/server.log" -w -m fast restart >/dev/null
    ;;
down)
    as_owner "$bin/pg_ctl" -D "${2:?the folder printed by start}/data" -w -m fast stop >/dev/null
    ;;
up)
    launch "${2:?the folder printed by start}"
    ;;
stop)
    folder="${2:?the folder printed by start}"
    as_owner "$bin/pg_ctl" -D "$folder/data" -w -m fast stop >/dev/null 2>&1 || true
    rm -rf "$folder"
    ;;
*)
    echo "usage: $0 start | restart FOLDER | down FOLDER | up FOLDER | stop FOLDER" >&2
    exit 2
    ;;
esac
