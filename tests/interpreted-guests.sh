#!/usr/bin/env bash
# Builds the Python and JavaScript guests the tests run, each only when its sources
# change (the output is named by a hash of everything that goes into it):
#   tests/interpreted-guests.sh OUT_DIR
# Makes the toolchains it needs on first use: a venv with the Python SDK and its pinned
# componentize-py (PyPI), and the JS SDK's pinned componentize-js (npm). Called by
# tests/build.rs; prints `NAME=PATH` for every guest it built or found.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: interpreted-guests.sh OUT_DIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/python" "$OUT/js"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "interpreted-guests: \`$1\` is missing; install $2 (Debian: apt-get install $3)" >&2
        exit 1
    }
}
need python3 "Python 3.10 or newer with venv" "python3 python3-venv"
need node "Node.js 18 or newer with npm" "nodejs npm"
need npm "npm" "npm"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Python: one venv under target/, remade when the SDK's sources change.
VENV=$ROOT/target/py-venv
PY_SDK=$ROOT/guest-sdk/python
py_sdk_hash=$(hash_of $(find "$PY_SDK/src" "$PY_SDK/pyproject.toml" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info*' | sort))
if [ "$(cat "$VENV/.sdk-hash" 2>/dev/null)" != "$py_sdk_hash" ]; then
    echo "interpreted-guests: making $VENV (wasmq-task, componentize-py, pytest)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "$PY_SDK[test]" >&2
    echo "$py_sdk_hash" >"$VENV/.sdk-hash"
fi

# JavaScript: the SDK's own node_modules, from its lock file.
JS_SDK=$ROOT/guest-sdk/js
js_lock_hash=$(hash_of "$JS_SDK/package.json" "$JS_SDK/package-lock.json")
if [ "$(cat "$JS_SDK/node_modules/.lock-hash" 2>/dev/null)" != "$js_lock_hash" ]; then
    echo "interpreted-guests: npm ci in $JS_SDK (componentize-js, rolldown)" >&2
    (cd "$JS_SDK" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$js_lock_hash" >"$JS_SDK/node_modules/.lock-hash"
fi
if [ ! -e "$ROOT/examples/js/node_modules/wasmq-task" ]; then
    (cd "$ROOT/examples/js" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

# NAME  language  source (relative to the root)  [build options]
GUESTS=(
    "PY_WORDCOUNT python examples/python/wordcount/wordcount.py"
    "PY_REINDEX python examples/python/reindex/reindex.py"
    "PY_WEBHOOK python examples/python/webhook/webhook.py --http --config"
    "PY_ECHO python tests/fixtures/python/echo.py"
    "PY_HOSTILE python tests/fixtures/python/hostile.py"
    "JS_WORDCOUNT js examples/js/wordcount/wordcount.js"
    "JS_WEBHOOK js examples/js/webhook/webhook.js --http --config"
    "JS_ECHO js tests/fixtures/js/echo.js"
    "JS_HOSTILE js tests/fixtures/js/hostile.js"
)
py_inputs=$(find "$PY_SDK/src" -type f -name '*.py' -o -name '*.wit' | sort)
js_inputs="$(find "$JS_SDK" -maxdepth 1 -name '*.js' | sort) $JS_SDK/bin/wasmq-task.js $(find "$JS_SDK/wit" -name '*.wit' | sort) $JS_SDK/package-lock.json"
for entry in "${GUESTS[@]}"; do
    read -r name lang src options <<<"$entry"
    stem=$(basename "$src" | sed 's/\.[^.]*$//')
    if [ "$lang" = python ]; then
        h=$(hash_of "$ROOT/$src" $py_inputs <(echo "$options"))
    else
        h=$(hash_of "$ROOT/$src" $js_inputs <(echo "$options"))
    fi
    out="$OUT/$lang/$stem-$h.wasm"
    if [ ! -f "$out" ]; then
        echo "interpreted-guests: building $src" >&2
        rm -f "$OUT/$lang/$stem"-*.wasm
        if [ "$lang" = python ]; then
            (cd "$OUT/python" && "$VENV/bin/wasmq-task" build $options "$ROOT/$src" -o "$out.tmp" >&2)
        else
            node "$JS_SDK/bin/wasmq-task.js" build $options "$ROOT/$src" -o "$out.tmp" >&2
        fi
        mv "$out.tmp" "$out"
    fi
    echo "$name=$out"
done
