#!/usr/bin/env bash
# Makes the upgrade fixture of tests/suite/upgrade.rs: runs a release's `carehub up`, once on
# SQLite and once on a private PostgreSQL, gives it an admin, an approved doctor with hours, a
# patient with profile and record, a confirmed appointment with a chat and the notifications and
# mails that follow (scripts/upgrade_fixture.py, through the public API), stops it cleanly and
# writes what an upgrade starts from:
#
#   <out-dir>/sqlite/data.tar.xz       the whole data directory: SQLite files, JetStream store
#                                      (nats/), signing keys, mail
#   <out-dir>/postgres/carehub.sql.xz  pg_dump of the database (plain SQL, --no-owner)
#   <out-dir>/postgres/data.tar.xz     the rest of that data directory (JetStream store, keys, mail)
#   <out-dir>/<backend>/metadata.json  accounts and their test-only passwords, ids, what the API
#                                      served, counts, each durable consumer's position, when made
#
# Usage: scripts/make-upgrade-fixture.sh <carehub binary of the release> <out-dir>
# e.g.   git worktree add --detach ../carehub-5eaba83 5eaba83
#        (cd ../carehub-5eaba83 && cargo build --bin carehub)
#        scripts/make-upgrade-fixture.sh ../carehub-5eaba83/target/debug/carehub \
#            tests/fixtures/upgrade/5eaba83
#
# Needs nats-server, PostgreSQL (initdb, pg_ctl, pg_dump), python3, tar and xz; uses free ports
# on 127.0.0.1 only, never the machine's own NATS or PostgreSQL.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

(($# == 2)) || die "usage: $0 <carehub binary of the release> <out-dir>"
old_bin=$(realpath "$1")
out=$(realpath -m "$2")
[[ -x $old_bin ]] || die "$old_bin is not an executable"
nats_server_bin >/dev/null || die "nats-server is not installed"
initdb=$(postgres_initdb_bin) || die "PostgreSQL (initdb) is not installed"
pg_bin=$(dirname "$initdb")

# Test-only: this admin exists only in the fixture.
export UPGRADE_ADMIN_EMAIL=admin@upgrade.carehub.test
export UPGRADE_ADMIN_PASSWORD=upgrade-fixture-admin-1

work=$(mktemp -d "${TMPDIR:-/tmp}/carehub-upgrade-fixture.XXXXXX")
chmod 755 "$work"
up_pid=
check_pid=
pg_data=
as_postgres=()
if (($(id -u) == 0)); then
    # PostgreSQL refuses to run as root.
    as_postgres=(runuser -u postgres --)
fi
cleanup() {
    if [[ -n $up_pid ]] && kill -0 "$up_pid" 2>/dev/null; then
        kill -KILL -- "-$up_pid" 2>/dev/null || kill -KILL "$up_pid" 2>/dev/null || true
    fi
    if [[ -n $check_pid ]]; then
        kill -KILL "$check_pid" 2>/dev/null || true
    fi
    if [[ -n $pg_data ]]; then
        "${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_data" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# `carehub` of the release with only the variables given here (and PATH).
old_carehub() {
    env -i PATH="$PATH" HOME="$work" "${carehub_env[@]}" "$old_bin" "$@"
}

start_postgres() {
    pg_data=$work/pg/data
    mkdir -p "$work/pg"
    ((${#as_postgres[@]} == 0)) || chown -R postgres:postgres "$work/pg"
    "${as_postgres[@]}" "$initdb" -A trust -U postgres -E UTF8 --no-locale -D "$pg_data" >/dev/null
    local port
    port=$(free_ports 1)
    "${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/postgres.log" -w \
        -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
    "${as_postgres[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres carehub
    pg_url=postgres://postgres@127.0.0.1:$port/carehub
}

stop_postgres() {
    "${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_data" stop -m fast >/dev/null
    pg_data=
}

# Packs directory $1 into the tar.xz $2 (owners and order fixed, so only contents differ).
pack() {
    tar -C "$1" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | xz -9e >"$2"
}

make_one() {
    local backend=$1
    local data=$work/$backend/data
    mkdir -p "$data" "$out/$backend"
    local nats_port http_port hub_port
    read -r nats_port http_port hub_port <<<"$(free_ports 3)"
    carehub_env=(
        CAREHUB_DATA_DIR="$data"
        CAREHUB_NATS_URL="nats://127.0.0.1:$nats_port"
        CAREHUB_GATEWAY_ADDR="127.0.0.1:$http_port"
        CAREHUB_HUB_ADDR="127.0.0.1:$hub_port"
        CAREHUB_COOKIE_SECURE=false
        # The appointment lies ten years ahead (no reminder falls due while the fixture is used).
        CAREHUB_BOOKING_HORIZON=$((20 * 366 * 86400))
    )
    if [[ $backend == postgres ]]; then
        start_postgres
        carehub_env+=(CAREHUB_DATABASE_URL="$pg_url")
    fi

    step "$backend: the release's admin account"
    (cd "$work" && old_carehub admin create-user --role admin --email "$UPGRADE_ADMIN_EMAIL" \
        --name "Ada Admin" --password "$UPGRADE_ADMIN_PASSWORD")

    step "$backend: carehub up (the release)"
    # Its own process group, so that a failure below takes its nats-server down too.
    (cd "$work" && exec setsid env -i PATH="$PATH" HOME="$work" "${carehub_env[@]}" \
        "$old_bin" up >"$work/$backend/up.log" 2>&1) &
    up_pid=$!
    local deadline=$((SECONDS + 120))
    until curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; do
        kill -0 "$up_pid" 2>/dev/null || die "carehub up exited; see $work/$backend/up.log"
        ((SECONDS < deadline)) || die "carehub up not ready; see $work/$backend/up.log"
        sleep 0.2
    done

    step "$backend: state through the API"
    python3 "$here/upgrade_fixture.py" furnish "http://127.0.0.1:$http_port" "127.0.0.1:$hub_port" \
        "$data" "$out/$backend/metadata.json" "$backend"

    step "$backend: clean stop"
    kill -TERM "$up_pid"
    wait "$up_pid" || die "carehub up did not stop cleanly; see $work/$backend/up.log"
    up_pid=
    # The log of the nats-server it ran names ports of this run only.
    rm -f "$data/nats-server.log"

    step "$backend: the consumers as stored"
    local js_port mon_port
    read -r js_port mon_port <<<"$(free_ports 2)"
    "$(nats_server_bin)" -a 127.0.0.1 -p "$js_port" -m "$mon_port" -js -sd "$data/nats" \
        >"$work/$backend/nats-check.log" 2>&1 &
    check_pid=$!
    wait_for_tcp 127.0.0.1 "$mon_port" 30 || die "nats-server on the store did not start"
    python3 "$here/upgrade_fixture.py" positions "http://127.0.0.1:$mon_port" \
        "$out/$backend/metadata.json"
    kill -TERM "$check_pid"
    wait "$check_pid" || true
    check_pid=

    step "$backend: pack"
    if [[ $backend == postgres ]]; then
        "${as_postgres[@]}" "$pg_bin/pg_dump" --format=plain --no-owner --no-privileges \
            "$pg_url" | xz -9e >"$out/$backend/carehub.sql.xz"
        stop_postgres
    fi
    pack "$data" "$out/$backend/data.tar.xz"
}

rm -rf "$out/sqlite" "$out/postgres"
make_one sqlite
make_one postgres
step "done"
du -ab "$out" | sort -k2
