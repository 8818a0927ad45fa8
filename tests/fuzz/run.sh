#!/usr/bin/env bash
# API fuzzing from the OpenAPI document: schemathesis (pinned, from PyPI) against a real
# `wasmq serve` on each store, a bounded number of examples per operation:
#   tests/fuzz/run.sh                      # both stores, 50 examples per operation
#   WASMQ_FUZZ_EXAMPLES=200 WASMQ_FUZZ_SEED=7 tests/fuzz/run.sh sqlite   # more, other inputs
# Fails on any 5xx, any error that is not a problem+json (hooks.py), an answer unlike
# its documented schema, or a server that is not ready after the run.
# WASMQ_BIN: the server (default target/debug/wasmq); WASMQ_TEST_DATABASE_URL: a
# PostgreSQL it may create a database in (the postgres run is skipped without one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/fuzz
BIN=${WASMQ_BIN:-$ROOT/target/debug/wasmq}
ECHO=$ROOT/target/guests/wasm32-wasip2/guest/echo.wasm
EXAMPLES=${WASMQ_FUZZ_EXAMPLES:-50}
VENV=$ROOT/target/fuzz-venv
PIN=schemathesis==4.32.5
STORES=("$@")
[ ${#STORES[@]} -gt 0 ] || STORES=(sqlite postgres)

[ -x "$BIN" ] || { echo "fuzz: no wasmq binary at $BIN" >&2; exit 1; }
[ -f "$ECHO" ] || { echo "fuzz: no echo guest at $ECHO (cargo build -p wasmq-tests)" >&2; exit 1; }
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PIN" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PIN"
    echo "$PIN" >"$VENV/.pins"
fi

# The server's flags say everything; an inherited WASMQ_* variable must not.
read -r -a unset_wasmq <<<"$(env | awk -F= '/^WASMQ_/ { printf "-u %s ", $1 }')"
clean_env() { env "${unset_wasmq[@]}" "$@"; }

failed=0
for store in "${STORES[@]}"; do
    tmp=$(mktemp -d)
    db=""
    case $store in
        sqlite) store_args=(--data-dir "$tmp/data") ;;
        postgres)
            if [ -z "${WASMQ_TEST_DATABASE_URL:-}" ]; then
                echo "fuzz: postgres skipped (no WASMQ_TEST_DATABASE_URL)"
                continue
            fi
            db=wasmq_fuzz_$$_$RANDOM
            psql -q "$WASMQ_TEST_DATABASE_URL" -c "CREATE DATABASE $db"
            store_args=(--database-url "${WASMQ_TEST_DATABASE_URL%/*}/$db") ;;
        *) echo "fuzz: unknown store $store" >&2; exit 2 ;;
    esac
    key=$(clean_env "$BIN" key create "${store_args[@]}" 2>/dev/null)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url=http://127.0.0.1:$port
    # `env`, not the function: a function in the background runs in a subshell, and `$!`
    # would name that shell, so the TERM below would orphan the server instead.
    env "${unset_wasmq[@]}" "$BIN" serve --listen "127.0.0.1:$port" \
        --artifact-dir "$tmp/artifacts" --queue default=2 "${store_args[@]}" \
        >"$tmp/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        curl -fs "$url/readyz" >/dev/null 2>&1 && break
        kill -0 $pid 2>/dev/null || { cat "$tmp/serve.log"; exit 1; }
        sleep 0.1
    done
    # A module, so that operations naming one can reach past the 404.
    curl -fsS -X PUT -H "Authorization: Bearer $key" --data-binary @"$ECHO" \
        "$url/v1/modules/echo" >/dev/null

    start=$(date +%s.%N)
    status=0
    (cd "$tmp" && PYTHONPATH=$HERE SCHEMATHESIS_HOOKS=hooks clean_env "$VENV/bin/schemathesis" run \
        "$url/openapi.json" --header "Authorization: Bearer $key" \
        --max-examples "$EXAMPLES" --seed "${WASMQ_FUZZ_SEED:-1}" --workers 1 --no-color \
        --checks not_a_server_error,problem_json,response_schema_conformance \
        --generation-database none --request-timeout 30 \
        --report junit --report-junit-path "$ROOT/target/fuzz-$store.xml") >"$tmp/out.log" 2>&1 || status=$?
    secs=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    curl -fs "$url/readyz" >/dev/null || { echo "fuzz: $store: the server is not ready after the run"; status=1; }
    kill -0 $pid 2>/dev/null || { echo "fuzz: $store: the server died"; status=1; }
    kill -TERM $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    if grep -q "panicked" "$tmp/serve.log"; then
        echo "fuzz: $store: the server panicked:"; grep -A5 panicked "$tmp/serve.log"; status=1
    fi
    # One line per store in the form .ci/run adds up: operations passed and failed.
    read -r ops bad < <(python3 - "$ROOT/target/fuzz-$store.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError):
    print(0, 1); sys.exit()
cases = list(cases)
bad = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
print(len(cases) - bad, bad)
PY
)
    grep -E "generated|^Seed" "$tmp/out.log" | sed "s/^ */fuzz ($store): /" || true
    if [ "$status" -ne 0 ]; then
        cat "$tmp/out.log"
        [ "$bad" -gt 0 ] || bad=1
        failed=1
    fi
    echo "fuzz ($store): $ops passed, $bad failed in ${secs}s"
    [ -z "$db" ] || psql -q "$WASMQ_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    rm -rf "$tmp"
done
exit $failed
