#!/usr/bin/env bash
# Runs carehub on this machine: installs what it needs (nats-server 2.15.1, if missing), builds the web
# client (web/dist, when its sources changed) and a release binary, and starts `carehub up --demo`
# with its data in ./data; the gateway serves the client at /. With an existing ./data it starts without
# the demo seed (the seed only runs into an empty database).
#
# Usage: scripts/run.sh [extra arguments for `carehub up`]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if ! nats_server_bin >/dev/null; then
    step "install nats-server $NATS_SERVER_RELEASE"
    install_nats_server
fi
CAREHUB_NATS_SERVER=$(nats_server_bin)
export CAREHUB_NATS_SERVER
if ! command -v npm >/dev/null 2>&1; then
    die "npm is missing: run scripts/install-deps.sh (or install Node.js 20 and npm)"
fi
if [[ ! -d web/node_modules ]] || ! (cd web && npm ls --all >/dev/null 2>&1); then
    step "npm ci (web)"
    (cd web && npm ci --no-audit --no-fund)
fi
# Rebuild the client when anything it is built from is newer than the build.
if [[ ! -f web/dist/index.html ]] ||
    [[ -n $(find web/src web/index.html web/package-lock.json web/vite.config.ts -newer web/dist/index.html -print -quit) ]]; then
    step "npm run build (web)"
    (cd web && npm run build)
fi
export CAREHUB_WEB_DIR=${CAREHUB_WEB_DIR:-$PWD/web/dist}
step "cargo build --release --bin carehub"
cargo build --release --bin carehub
export CAREHUB_DATA_DIR=${CAREHUB_DATA_DIR:-$PWD/data}
args=("$@")
if [[ ! -e $CAREHUB_DATA_DIR/auth.db && -z ${CAREHUB_DATABASE_URL:-} ]]; then
    args=(--demo "${args[@]}")
fi
step "carehub up ${args[*]}"
exec target/release/carehub up "${args[@]}"
