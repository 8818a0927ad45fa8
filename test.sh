#!/usr/bin/env bash
# The test command: everything a fresh clone needs, then every test.
#   ./test.sh            # all tests (doc tests too), then every bench once
#   ./test.sh runtime    # extra arguments go to `cargo test`, and only that runs
# It adds the wasm targets (the guests are built by tests/build.rs), makes PostgreSQL
# reachable at 127.0.0.1:5432 (.ci/ensure-postgres: uses a running one, starts a stopped
# cluster, or installs the server), then runs `cargo test`, then `cargo test --benches`:
# each criterion benchmark runs once in test mode and the end-to-end benches take their
# quick path, so a broken bench fails here rather than on someone's `cargo bench`; then
# the Python and JavaScript SDKs' own tests, the dashboard's in a real browser, the Python
# client and Django backend against a real server, and API fuzzing from the OpenAPI
# document (schemathesis, both stores).
set -euo pipefail
cd "$(dirname "$0")"
if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null 2>&1 || true
fi
.ci/ensure-postgres
export WASMQ_TEST_DATABASE_URL=${WASMQ_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if [ $# -gt 0 ]; then
    exec cargo test "$@"
fi
cargo test
echo "== every bench once (cargo test -p wasmq-benches --benches)"
cargo test -p wasmq-benches --benches
echo "== the Python and JavaScript guest SDKs (pytest, node --test)"
# The venv and node_modules are made by tests/interpreted-guests.sh (run by tests/build.rs).
tests/interpreted-guests.sh target/guests >/dev/null
target/py-venv/bin/python -m pytest -q -p no:cacheprovider guest-sdk/python/tests
(cd guest-sdk/js && node --test test/)
echo "== the dashboard in a browser (tests/ui/run-tests.sh: chromium, playwright-core)"
tests/ui/run-tests.sh
echo "== the Python client and the Django backend (clients/python/run-tests.sh)"
WASMQ_BIN=$PWD/target/debug/wasmq clients/python/run-tests.sh
echo "== API fuzzing from the OpenAPI document (tests/fuzz/run.sh)"
WASMQ_BIN=$PWD/target/debug/wasmq tests/fuzz/run.sh
