#!/usr/bin/env bash
# The dashboard's browser tests: Debian's chromium, headless, driven by playwright-core
# (node --test), against a real `wasmq serve` on the embedded store.
#   tests/ui/run-tests.sh
# Installs what is missing: chromium with apt-get (as root, like .ci/ensure-postgres
# installs PostgreSQL), and the test's npm packages from package-lock.json (npm ci).
# WASMQ_BIN: the server binary (default target/debug/wasmq); the guests must be built
# (cargo test builds them into target/guests). Screenshots go to target/ui-screenshots/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
    echo "ui-tests: no $CHROMIUM; installing Debian's chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
fi
# node_modules is remade when the lock file changes.
stamp=$HERE/node_modules/.lock-sha256
want=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
fi
cd "$HERE"
exec node --test --test-reporter=tap --test-concurrency=1 dashboard.test.mjs
