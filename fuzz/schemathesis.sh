#!/usr/bin/env bash
# Optional: schemathesis against a scratch loopd, driven by its own /openapi.json. The check CI
# runs is the Rust one (loopd/tests/it/openapi.rs); this one goes further (more inputs, stateful
# sequences) and needs Python and, the first time, PyPI.
#
#   fuzz/schemathesis.sh [extra `st run` arguments, e.g. --max-examples 50 --seed 7]
#
# Left out: `negative_data_rejection` and `positive_data_acceptance`, which guess at intent
# (loopd clamps `limit` rather than refusing 0; `iterations: 3.0` is refused as not an integer
# by serde, though JSON Schema calls it one); and the stateful phase, which cannot make a run
# that finishes without a stub agent.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [[ ! -x $venv/bin/st ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis
fi
cargo build --quiet -p loopd

data=$(mktemp -d)
log=$data/loopd.log
target/debug/loopd --listen 127.0.0.1:0 --data-dir "$data/data" 2>"$log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do
    base=$(grep -o 'http://[0-9.:]*' "$log" | head -n 1 || true)
    [[ -n $base ]] && break
    sleep 0.1
done
[[ -n ${base:-} ]] || { echo "loopd did not start:" >&2; cat "$log" >&2; exit 1; }

# From the scratch directory: schemathesis leaves a `.schemathesis/` of its own where it runs.
root=$PWD
cd "$data"
"$root/$venv/bin/st" run "$base/openapi.json" \
    --checks all \
    --exclude-checks negative_data_rejection,positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --request-timeout 5 \
    --max-examples 10 \
    --workers 2 \
    --no-color \
    "$@"
