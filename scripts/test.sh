#!/usr/bin/env bash
# The project's test command, run as is by CI (.ci/run) and documented in the README:
# formatting, lints, the whole Rust test suite (every backend test on SQLite and on a private
# PostgreSQL, against a private nats-server), the web client's unit tests (vitest) and browser
# tests (Debian's chromium driven by playwright-core against a carehub they start), then
# schemathesis against the running API.
#
# Needs the tools that scripts/install-deps.sh installs. Stops at the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

scripts/install-deps.sh --check
# Every nats-server the tests, carehub and the benchmarks start is this one; the suite refuses
# any other release.
CAREHUB_NATS_SERVER=$(nats_server_bin)
export CAREHUB_NATS_SERVER

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
# Keep going past a failing test binary so one run shows every failure; tee the output to
# count the results at the end.
test_log=$(mktemp -t carehub-cargo-test.XXXXXX)
trap 'rm -f "$test_log"' EXIT
test_status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log" || test_status=$?
summary=$(awk '/^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) passed += $i
            if ($(i + 1) ~ /^failed/) failed += $i
            if ($(i + 1) ~ /^ignored/) ignored += $i
        }
    }
    END { printf "%d passed, %d failed, %d skipped", passed, failed, ignored }' "$test_log")
if ((test_status != 0)); then
    step "result"
    echo "cargo test failed (exit $test_status)"
    echo "tests: $summary"
    exit "$test_status"
fi

step "web: npm test (vitest)"
web_log=$(mktemp -t carehub-web-test.XXXXXX)
trap 'rm -f "$test_log" "$web_log"' EXIT
(cd web && npm test 2>&1) | tee "$web_log"
step "web: npm run build"
(cd web && npm run build)
step "cargo build --bin carehub (for the OpenAPI document, the frame schema and the browser tests)"
cargo build --bin carehub
step "web: the committed OpenAPI document and frame schema match a fresh generation"
# `carehub openapi` and `carehub frames-schema` from the binary just built, written into a temp
# dir exactly as `npm run gen` writes them, then compared with what web/ commits. The client's
# types are not committed: `npm test` and `npm run build` generate them from these two files.
carehub_bin="${CARGO_TARGET_DIR:-target}/debug/carehub"
[[ $carehub_bin == /* ]] || carehub_bin="$PWD/$carehub_bin"
gen_dir=$(mktemp -d -t carehub-gen.XXXXXX)
trap 'rm -rf "$test_log" "$web_log" "$gen_dir"' EXIT
(cd web && CAREHUB_BIN="$carehub_bin" node scripts/gen.mjs --out "$gen_dir")
stale=()
for name in openapi.json frames.schema.json; do
    diff -u "web/$name" "$gen_dir/$name" >>"$gen_dir/diff" || stale+=("web/$name")
done
if ((${#stale[@]})); then
    head -n 60 "$gen_dir/diff"
    die "stale: ${stale[*]} (the API or the hub's frames changed). Run \`cd web && npm run gen\` (after \`cargo build --bin carehub\`) and commit the regenerated JSON."
fi
echo "web/openapi.json and web/frames.schema.json are fresh"
step "web: npm run e2e (chromium)"
(cd web && npm run e2e 2>&1) | tee -a "$web_log"
# vitest prints "Tests  24 passed (24)", node's runner "# pass 8" and "# fail 0".
web_summary=$(sed 's/\x1b\[[0-9;]*m//g' "$web_log" | awk '
    /^ *Tests +[0-9]+ passed/ { passed += $2 }
    /^ *Tests +[0-9]+ failed/ { failed += $2 }
    /^# pass / { passed += $3 }
    /^# fail / { failed += $3 }
    END { printf "%d passed, %d failed", passed, failed }')

step "scripts/schemathesis.sh"
scripts/schemathesis.sh

step "result"
echo "fmt, clippy, cargo test, web tests and schemathesis passed"
echo "web tests: $web_summary"
read -r cp _ cf _ cs _ <<<"${summary//,/}"
read -r wp _ wf _ <<<"${web_summary//,/}"
echo "tests: $((cp + wp)) passed, $((cf + wf)) failed, $cs skipped"
