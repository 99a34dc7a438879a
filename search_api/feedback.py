"""Feedback log: one JSON line per rating, appended safely, summarised on demand.

Each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor
under a thread lock and an exclusive ``flock`` (so several worker processes
can share the file), then fsync'ed: a crash or concurrent posts never leave a
torn or interleaved line.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any


class FeedbackLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._summary_key: tuple[int, int] | None = None
        self._summary: tuple[int, dict] = (0, {})

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                written = os.write(fd, line)
                if written != len(line):  # disk full or similar: never leave half a line unreported
                    raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the flock

    def counts(self) -> tuple[int, dict[tuple[str, str], dict[str, int]]]:
        """(valid lines, {(normalised query, result_id): {"up": n, "down": n}}), cached by file size/mtime."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return 0, {}
        key = (st.st_size, st.st_mtime_ns)
        if key == self._summary_key:
            return self._summary
        total = 0
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"up": 0, "down": 0})
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    row = json.loads(raw)
                    query = " ".join(str(row["query"]).split()).lower()
                    bucket = counts[(query, str(row["result_id"]))]
                    bucket["up" if row["rating"] == 1 else "down"] += 1
                    total += 1
                except (ValueError, KeyError, TypeError):
                    continue  # a hand-edited or foreign line must not break the summary
        self._summary_key, self._summary = key, (total, dict(counts))
        return self._summary
