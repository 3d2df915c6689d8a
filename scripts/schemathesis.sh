#!/usr/bin/env bash
# Fuzzes the running HTTP API with schemathesis, from the OpenAPI document it serves.
#
# Builds the `carehub` binary, starts a private nats-server (JetStream, free port, temporary
# store), creates an admin user, starts `carehub up` (all services and the gateway) with its
# data in a temporary directory, logs the admin in, and seeds through the API a patient, an
# approved doctor (weekly hours, instant booking), a pending doctor, a group and appointments
# (scripts/schemathesis_seed.py). Then it runs every schemathesis check as each role in turn:
# anonymous, patient, pending doctor, approved doctor, admin; scripts/schemathesis.toml puts the
# seeded ids into path parameters and lists, per operation, the answers no schema can express.
# It fails if any run has a finding. Everything it started is stopped on exit, whatever happens.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and role (default 30)
#   SCHEMATHESIS_ANONYMOUS_MAX_EXAMPLES  the same for the anonymous run (default 10: every
#                              operation but sign-up, login and password reset answers 401, and
#                              those four are fuzzed by the other runs too)
#   SCHEMATHESIS_WORKERS       concurrent workers (default 1: with more, schemathesis's threads
#                              parse Python source at once, which CPython before 3.11.8 / 3.12.1
#                              can fail with "AST constructor recursion depth mismatch")
#   SCHEMATHESIS_EXTRA_ARGS    more `schemathesis run` arguments, split on spaces
#   READY_TIMEOUT              seconds to wait for /readyz (default 60)
#   CAREHUB_BIN                an already built carehub binary to use instead of building one
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-30}
anonymous_max_examples=${SCHEMATHESIS_ANONYMOUS_MAX_EXAMPLES:-10}
workers=${SCHEMATHESIS_WORKERS:-1}
ready_timeout=${READY_TIMEOUT:-60}

schemathesis=$(schemathesis_bin) || die "schemathesis 4.x not found: run scripts/install-deps.sh"
nats_server=$(nats_server_bin) || die "nats-server not found: run scripts/install-deps.sh"
command -v curl >/dev/null 2>&1 || die "curl not found: run scripts/install-deps.sh"

work=$(mktemp -d -t carehub-schemathesis.XXXXXX)
pids=()

stop_all() {
    local status=$? pid deadline
    set +e
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    # Give them a moment to shut down cleanly, then make sure.
    deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if ((status != 0)); then
        for log in "$work"/*.log; do
            [[ -s $log ]] || continue
            printf '\n--- last lines of %s ---\n' "$(basename "$log")"
            tail -n 60 "$log"
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${CAREHUB_BIN:-} ]]; then
    carehub=$CAREHUB_BIN
else
    step "build carehub"
    cargo build --bin carehub
    carehub=${CARGO_TARGET_DIR:-target}/debug/carehub
fi
[[ -x $carehub ]] || die "$carehub is not an executable"

read -r nats_port gateway_port < <(free_ports 2)
base_url=http://127.0.0.1:$gateway_port

step "start nats-server on 127.0.0.1:$nats_port"
"$nats_server" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/jetstream" >"$work/nats-server.log" 2>&1 &
pids+=($!)
wait_for_tcp 127.0.0.1 "$nats_port" 30 || die "nats-server did not accept connections within 30 s"

export CAREHUB_NATS_URL=nats://127.0.0.1:$nats_port
export CAREHUB_DATA_DIR=$work/data
export CAREHUB_GATEWAY_ADDR=127.0.0.1:$gateway_port
# Schemathesis sends far more requests than a person would; the limiter is not under test here.
export CAREHUB_RATE_LIMIT_PER_SEC=100000
export CAREHUB_RATE_LIMIT_BURST=100000
# The seeded tokens serve all five runs; they must not expire in between.
export CAREHUB_ACCESS_TOKEN_TTL=3600
mkdir -p "$CAREHUB_DATA_DIR"

step "create the admin user"
admin_email="schemathesis-admin@example.com"
# Upper, lower, digit and symbol, whatever the password policy asks for.
admin_password="Sx9!$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
"$carehub" admin create-user --role admin --email "$admin_email" \
    --password "$admin_password" --name "Schemathesis Admin" >"$work/create-user.log" 2>&1 ||
    die "carehub admin create-user failed (see create-user.log below)"

step "start carehub up on $base_url"
"$carehub" up >"$work/carehub.log" 2>&1 &
carehub_pid=$!
pids+=("$carehub_pid")
deadline=$((SECONDS + ready_timeout))
until [[ $(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$base_url/readyz" 2>/dev/null) == 200 ]]; do
    kill -0 "$carehub_pid" 2>/dev/null || die "carehub up exited before it was ready"
    ((SECONDS < deadline)) || die "$base_url/readyz did not answer 200 within ${ready_timeout} s"
    sleep 0.2
done

step "log the admin in"
login_body=$(printf '{"email":"%s","password":"%s","refresh_token_in":"body"}' \
    "$admin_email" "$admin_password")
login_reply=$(curl -sS --fail-with-body --max-time 30 -X POST \
    -H 'Content-Type: application/json' -d "$login_body" "$base_url/api/auth/login") ||
    die "login failed: $login_reply"
admin_token=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' \
    <<<"$login_reply") || die "no access_token in the login reply: $login_reply"

step "seed a patient, doctors, a group and appointments through the API"
seed=$(python3 scripts/schemathesis_seed.py "$base_url" "$admin_token") || die "seeding failed"
# The ids scripts/schemathesis.toml puts into path parameters, and a token per role.
eval "$seed"

# One run of every operation as one caller (no token: anonymous). Logging out revokes the token
# every other operation is tested with, so logout gets a run of its own after the rest.
run_schemathesis() {
    local token=$1 examples=$max_examples
    shift
    [[ -z $token ]] && examples=$anonymous_max_examples
    local args=(
        run "$base_url/api/openapi.json"
        --checks all
        --max-examples "$examples"
        --workers "$workers"
        # Nothing kept between runs, and no files left in the work tree.
        --generation-database none
        "$@"
    )
    [[ -n $token ]] && args+=(--header "Authorization: Bearer $token")
    # The gateway's own origin, whatever `servers` the document lists (only 4.x releases that
    # know the option; without it the document's own location serves as the base URL).
    if "$schemathesis" run --help | grep -q -- '--origin'; then
        args+=(--origin "$base_url")
    fi
    # shellcheck disable=SC2206 # splitting on spaces is the documented contract
    args+=(${SCHEMATHESIS_EXTRA_ARGS:-})
    # In the background and waited for, so that a signal to this script stops it at once too.
    (cd "$work" && exec "$schemathesis" --config-file "$repo/scripts/schemathesis.toml" "${args[@]}") &
    pids+=($!)
    wait "$!"
}

# The admin goes last: its run approves, rejects and disables accounts and declines requests.
roles=(anonymous patient pending-doctor doctor admin)
declare -A tokens=(
    [anonymous]=""
    [patient]=$CAREHUB_ST_PATIENT_TOKEN
    [pending-doctor]=$CAREHUB_ST_PENDING_DOCTOR_TOKEN
    [doctor]=$CAREHUB_ST_DOCTOR_TOKEN
    [admin]=$CAREHUB_ST_ADMIN_TOKEN
)
declare -A took=()
failed=()
for role in "${roles[@]}"; do
    started=$SECONDS
    step "schemathesis as $role (every operation but logout)"
    run_schemathesis "${tokens[$role]}" --exclude-path /api/auth/logout || failed+=("$role")
    step "schemathesis as $role (logout)"
    run_schemathesis "${tokens[$role]}" --include-path /api/auth/logout || failed+=("$role (logout)")
    took[$role]=$((SECONDS - started))
done

step "summary"
for role in "${roles[@]}"; do
    printf '  %-15s %4ss\n' "$role" "${took[$role]}"
done
((${#failed[@]} == 0)) || die "schemathesis found problems as: ${failed[*]}"
echo "schemathesis: no findings as any role"
