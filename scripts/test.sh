#!/usr/bin/env bash
# The project's test command, run as is by CI (.ci/run) and documented in the README:
# formatting, lints, the whole Rust test suite (every backend test on SQLite and on a private
# PostgreSQL, against a private nats-server), then schemathesis against the running API.
#
# Needs the tools that scripts/install-deps.sh installs. Stops at the first failing step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

scripts/install-deps.sh --check

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

step "scripts/schemathesis.sh"
scripts/schemathesis.sh

step "result"
echo "fmt, clippy, cargo test and schemathesis passed"
echo "tests: $summary"
