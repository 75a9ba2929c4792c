# Sourced by .ci/run (bash): a throwaway PostgreSQL cluster for the store tests.
#
# Installs PostgreSQL from the Debian packages if its binaries are missing (as root), creates
# a cluster in a temporary directory (owned by the `postgres` user when run as root: the server
# refuses to run as root), listening on a Unix socket in that directory only (no TCP port, so
# no clash with another server), trust authentication, fsync off (it is thrown away). Exports
# PRIVFIN_TEST_POSTGRES_URL (the store_url fixture creates a fresh database per test) and
# stops and deletes the cluster on exit. Without PostgreSQL the store tests run on SQLite only
# and pytest reports the PostgreSQL ones as skipped.

_privfin_pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(command -v initdb)")
    fi
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

_privfin_pg_stop() {
    if [ -n "${_PRIVFIN_PG_DIR:-}" ]; then
        "${_PRIVFIN_AS_PG[@]}" "$_PRIVFIN_PG_BIN/pg_ctl" -D "$_PRIVFIN_PG_DIR/data" -m immediate \
            stop >/dev/null 2>&1 || true
        rm -rf "$_PRIVFIN_PG_DIR"
        _PRIVFIN_PG_DIR=
    fi
}

_PRIVFIN_PG_BIN=$(_privfin_pg_bin)
if [ -z "$_PRIVFIN_PG_BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL (apt-get) for the store tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    _PRIVFIN_PG_BIN=$(_privfin_pg_bin)
fi
if [ -n "$_PRIVFIN_PG_BIN" ]; then
    _PRIVFIN_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/privfin-pg.XXXXXX")
    _PRIVFIN_AS_PG=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$_PRIVFIN_PG_DIR"
        _PRIVFIN_AS_PG=(runuser -u postgres --)
    fi
    trap _privfin_pg_stop EXIT
    "${_PRIVFIN_AS_PG[@]}" "$_PRIVFIN_PG_BIN/initdb" -D "$_PRIVFIN_PG_DIR/data" -U postgres \
        -A trust -E UTF8 --no-sync >"$_PRIVFIN_PG_DIR/initdb.log" 2>&1
    "${_PRIVFIN_AS_PG[@]}" "$_PRIVFIN_PG_BIN/pg_ctl" -D "$_PRIVFIN_PG_DIR/data" -w -t 60 \
        -l "$_PRIVFIN_PG_DIR/server.log" \
        -o "-c listen_addresses='' -k $_PRIVFIN_PG_DIR -c fsync=off -c max_connections=200" \
        start >/dev/null
    export PRIVFIN_TEST_POSTGRES_URL="postgresql+psycopg://postgres@/postgres?host=$_PRIVFIN_PG_DIR"
    echo "PostgreSQL for the store tests: $PRIVFIN_TEST_POSTGRES_URL" >&2
else
    echo "PostgreSQL not available: the store tests run on SQLite only" >&2
fi
