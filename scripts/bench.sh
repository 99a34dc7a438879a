#!/usr/bin/env bash
# Run every benchmark script under bench/ (bench/*.py not starting with "_").
# Each prints JSON; a copy goes to bench/out/<name>.json. Benchmarks read
# ../shared/data/real/ when present and say so when absent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT/plugins:$ROOT${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p bench/out
shopt -s nullglob
scripts=(bench/[!_]*.py)
((${#scripts[@]})) || { echo "bench: no benchmarks under bench/"; exit 0; }
status=0
for script in "${scripts[@]}"; do
    name=$(basename "$script" .py)
    echo "== $name" >&2
    if ! .venv/bin/python "$script" | tee "bench/out/$name.json"; then
        echo "bench: $name failed" >&2
        status=1
    fi
done
exit $status
