#!/usr/bin/env bash
# Runs carehub on this machine: installs what it needs (nats-server, if missing), builds a
# release binary and starts `carehub up --demo` with its data in ./data. With an existing ./data it starts without
# the demo seed (the seed only runs into an empty database).
#
# Usage: scripts/run.sh [extra arguments for `carehub up`]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if ! nats_server_bin >/dev/null; then
    step "apt-get install nats-server"
    sudo=()
    (($(id -u) == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nats-server
fi
step "cargo build --release --bin carehub"
cargo build --release --bin carehub
export CAREHUB_DATA_DIR=${CAREHUB_DATA_DIR:-$PWD/data}
args=("$@")
if [[ ! -e $CAREHUB_DATA_DIR/auth.db && -z ${CAREHUB_DATABASE_URL:-} ]]; then
    args=(--demo "${args[@]}")
fi
step "carehub up ${args[*]}"
exec target/release/carehub up "${args[@]}"
