#!/usr/bin/env bash
# Create .venv and install the pinned requirements. Idempotent: a stamp holding
# the hash of the requirement files makes a second run a no-op (a few ms), so
# `make up` and `make test` can always call it.
#
#   scripts/setup.sh          the product, the tests, lint and docs: no torch (make setup)
#   scripts/setup.sh bench    and requirements-torch.txt on top (make setup-bench): the benchmarks'
#                             stock baseline, scripts/build_onnx_model.py, LOCAL_EMBEDDER=torch
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
WITH=${1:-}
REQS=(requirements.txt requirements-dev.txt)
stamp="$VENV/.installed"
if [[ $WITH == bench ]]; then
    REQS=(requirements-torch.txt "${REQS[@]}")
    stamp="$VENV/.installed-bench"
elif [[ -n $WITH ]]; then
    echo "setup: unknown argument '$WITH' (scripts/setup.sh [bench])" >&2
    exit 2
fi
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
want=$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)

if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $VENV/bin/python ]]; then
    echo "setup: $VENV is up to date${WITH:+ (with $WITH)}"
    exit 0
fi

# Python 3.11 exactly: the pins (and the Airflow image) are for 3.11.
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=$(command -v python3.11 || command -v python3 || true)
fi
if ! "${PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 is required (found: $("${PYTHON:-python3}" --version 2>&1 || echo none))." >&2
    echo "       On Debian/Ubuntu: apt-get install python3.11 python3.11-venv, or set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [[ ! -x $VENV/bin/python ]]; then
    echo "setup: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV" || {
        echo "setup: venv creation failed; on Debian/Ubuntu: apt-get install python3.11-venv" >&2
        exit 1
    }
fi

pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --quiet)
start=$SECONDS

if [[ $WITH == bench ]]; then
    # CPU torch, with the other pins in the same resolve so that none of them moves. Where the
    # PyTorch CPU index is reachable (a laptop) use it; where it isn't (CI here: a local CPU wheel
    # is configured for pip) a plain install finds the CPU build without a network timeout.
    # Never a bare `pip install torch`: it resolves a multi-GB CUDA build.
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
            "$TORCH_CPU_INDEX/torch/" 2>/dev/null; then
        "${pip[@]}" --extra-index-url "$TORCH_CPU_INDEX" "${REQS[@]/#/-r}"
    else
        "${pip[@]}" "${REQS[@]/#/-r}"
    fi
    "$VENV/bin/python" -c 'import torch; assert not torch.version.cuda, "CUDA torch installed: remove .venv and rerun"' \
        || { echo "setup: torch is a CUDA build; remove $VENV and rerun" >&2; exit 1; }
else
    "${pip[@]}" "${REQS[@]/#/-r}"
fi
# Fail now on a broken environment rather than deep inside a test.
"$VENV/bin/python" -m pip check

echo "$want" > "$stamp"
if [[ $WITH == bench ]]; then  # a superset of the plain set: `make setup` has nothing left to do
    cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1 > "$VENV/.installed"
fi
if [[ $WITH == bench ]]; then
    echo "setup: $VENV ready with torch (requirements-torch.txt) in $((SECONDS - start)) s"
else
    echo "setup: $VENV ready in $((SECONDS - start)) s (no torch; make setup-bench adds it for the benchmarks)"
fi
