#!/usr/bin/env bash
# Stop what `make up` started: each component runs in its own session, so we
# signal its process group (the component and its workers), by the PIDs in
# .pids/. TERM first, KILL after a grace period. `down.sh NAME...` stops only those.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PIDS_DIR=${PIDS_DIR:-$ROOT/.pids}
GRACE=${GRACE:-20}

names=("$@")
if ((${#names[@]} == 0)); then
    for f in "$PIDS_DIR"/*.pid; do [[ -e $f ]] && names+=("$(basename "$f" .pid)"); done
fi
((${#names[@]})) || { echo "down: nothing to stop"; exit 0; }

alive() { kill -0 -- "-$1" 2>/dev/null; }
pids=()
for ((i = ${#names[@]} - 1; i >= 0; i--)); do  # reverse start order: API first, Chroma last
    name=${names[i]} f=$PIDS_DIR/${names[i]}.pid
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || continue
    # Guard against a recycled PID: a live leader must still head the session
    # we created. (A dead leader's PID can't be reused while its group lives.)
    sid=$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ' || true)
    if [[ -z $sid || $sid == "$pid" ]]; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        pids+=("$pid")
        echo "down: TERM $name (pid $pid)"
    fi
done
for ((t = 0; t < GRACE * 4; t++)); do
    left=()
    for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
    ((${#left[@]})) || break
    sleep 0.25
done
for pid in "${pids[@]}"; do
    if alive "$pid"; then echo "down: KILL group $pid"; kill -KILL -- "-$pid" 2>/dev/null || true; fi
done
for name in "${names[@]}"; do rm -f "$PIDS_DIR/$name.pid"; done
echo "down: stopped"
