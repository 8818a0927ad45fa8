#!/usr/bin/env bash
# The Python client's and Django backend's tests, against a real `wasmq serve` on both
# stores, from a fresh clone:
#   clients/python/run-tests.sh
# WASMQ_BIN: the server binary (default target/debug/wasmq of the repo root).
# WASMQ_TEST_DATABASE_URL: a PostgreSQL the tests may create (and drop) databases in.
# Two suites: Django 5.2 with the django-tasks backport on Python 3.11, and Django 6
# (built-in django.tasks) on Python 3.12+ where one is found. Each runs in a venv under
# target/ made from pinned PyPI versions; components and compiled modules are cached in
# target/py-client-cache (keyed by content). Exits non-zero when any suite fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/clients/python

BIN=${WASMQ_BIN:-$ROOT/target/debug/wasmq}
if [ ! -x "$BIN" ]; then
    echo "run-tests: no wasmq binary at $BIN; build it (cargo build -p wasmq-host) or set WASMQ_BIN" >&2
    exit 1
fi
export WASMQ_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
if [ -z "${WASMQ_TEST_DATABASE_URL:-}" ]; then
    echo "run-tests: set WASMQ_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); the tests create and drop their own databases there" >&2
    exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
export WASMQ_PY_CACHE=${WASMQ_PY_CACHE:-$ROOT/target/py-client-cache}

COMMON=(httpx==0.28.1 pytest==9.2.0 "psycopg[binary]==3.3.9")
BACKPORT=(django==5.2.19 django-tasks==0.12.0)
DJANGO6=(django==6.1.3)

# The first interpreter of the candidates whose version is within [min, max).
find_python() {
    local min=$1 max=$2 py v
    shift 2
    for py in "$@"; do
        [ -n "$py" ] || continue
        v=$("$py" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null) || continue
        if [ "$v" -ge "$min" ] && [ "$v" -lt "$max" ]; then
            command -v "$py" || echo "$py"
            return 0
        fi
    done
    return 1
}

# A venv at $1 made by interpreter $2 with the pinned packages $3…; remade when they
# change. The SDK and this client are installed afresh each run (they are this repo).
make_venv() {
    local venv=$1 py=$2
    shift 2
    local want="$py $* sdk:$(sha256sum "$ROOT/guest-sdk/python/pyproject.toml" | cut -c1-16)"
    if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$want" ]; then
        echo "run-tests: making $venv ($("$py" --version 2>&1); $*)"
        rm -rf "$venv"
        "$py" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" "$ROOT/guest-sdk/python"
        echo "$want" >"$venv/.pins"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall \
        "$ROOT/guest-sdk/python" "$HERE"
}

failed=0
summaries=()
run_suite() {
    local name=$1 venv=$2 out status summary
    out=$(mktemp)
    set +e
    (cd "$HERE" && "$venv/bin/python" -m pytest -p no:cacheprovider -q tests) 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    summary=$(grep -E '^=* ?[0-9]+ (passed|failed|error|skipped)|^=* ?no tests ran' "$out" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//' || true)
    rm -f "$out"
    if [ "$status" -eq 5 ]; then
        summary="no tests collected"
    fi
    summaries+=("$name: ${summary:-no summary (pytest exit $status)}")
    if [ "$status" -ne 0 ]; then
        failed=1
    fi
}

PY_BACKPORT=$(find_python 311 312 "${WASMQ_PYTHON_BACKPORT:-}" python3.11 python3) || {
    echo "run-tests: no Python 3.11 found for the django-tasks suite (set WASMQ_PYTHON_BACKPORT)" >&2
    exit 1
}
make_venv "$ROOT/target/py-client-backport" "$PY_BACKPORT" "${COMMON[@]}" "${BACKPORT[@]}"
run_suite "Django 5.2 + django-tasks ($("$PY_BACKPORT" --version 2>&1))" "$ROOT/target/py-client-backport"

PY6=$(find_python 312 400 "${WASMQ_PYTHON_DJANGO6:-}" python3.12 python3.13 python3 \
    $(ls -d "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null)) || PY6=
if [ -n "$PY6" ]; then
    make_venv "$ROOT/target/py-client-django6" "$PY6" "${COMMON[@]}" "${DJANGO6[@]}"
    run_suite "Django 6.1 ($("$PY6" --version 2>&1))" "$ROOT/target/py-client-django6"
else
    summaries+=("Django 6: NOT TESTED (no Python 3.12 or newer found; set WASMQ_PYTHON_DJANGO6)")
fi

echo
for s in "${summaries[@]}"; do
    echo "run-tests: $s"
done
exit $failed
