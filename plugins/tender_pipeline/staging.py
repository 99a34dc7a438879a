"""Per-run staging folder: the files stages hand each other by reference.

Layout under ``<STAGING_URI>/<run id>/``: ``raw/`` (fetched batch files),
``valid.jsonl``, ``quarantine.csv``, ``enriched.jsonl``, ``embeddings.npy``,
one ``<stage>.json`` of counts per stage and ``summary.json``. Every write is
atomic (temp file + rename) so a retried task never reads half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def run_dir(staging_uri: str, run_id: str) -> Path:
    """The run's staging folder; run ids carry ':' and '+', which we keep out of paths."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_") or "run"
    return Path(staging_uri) / safe


def _atomic(path: Path, mode: str = "w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    return os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if "b" not in mode else {})), tmp


def write_json(path: Path, data: Any) -> None:
    fh, tmp = _atomic(path)
    with fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    count = 0
    fh, tmp = _atomic(path)
    with fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def write_npy(path: Path, array: np.ndarray) -> None:
    fh, tmp = _atomic(path, "wb")
    with fh:
        np.save(fh, np.asarray(array, dtype=np.float32))
    os.replace(tmp, path)


def read_npy(path: Path) -> np.ndarray:
    return np.load(path)
