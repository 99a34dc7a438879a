"""Feedback log: one JSON line per rating, appended safely, rotated by size, summarised on demand.

Each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor
under a thread lock and an exclusive ``flock`` (so several worker processes
can share the file), then fsync'ed: a crash or concurrent posts never leave a
torn or interleaved line.

Why rotation: the file is what ``/feedback/summary`` counts and what ranking
work reads, so it is kept, but not forever and not as one ever-growing file.
Once it reaches ``FEEDBACK_ROTATE_BYTES`` the writer that notices renames it to
``<name>.<UTC stamp>`` under the same lock, gzips it (``<name>.<stamp>.gz``,
~8x smaller) and deletes archives older than ``FEEDBACK_KEEP_DAYS``. The
summary counts the current file plus every archive kept, so it covers the last
``FEEDBACK_KEEP_DAYS`` days. A writer that opened the old file just before the
rename notices (its descriptor no longer names the path) and reopens, so no
line lands in an archive being compressed.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Counts = dict[tuple[str, str], dict[str, int]]
STAMP = "%Y%m%dT%H%M%S%fZ"


class FeedbackLog:
    def __init__(self, path: str | Path, rotate_bytes: int = 32 << 20, keep_days: int = 365) -> None:
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.keep_days = keep_days
        self._lock = threading.Lock()
        self._archive = re.compile(re.escape(self.path.name) + r"\.(\d{8}T\d{12}Z)(\.gz)?$")
        self._summary_key: tuple | None = None
        self._summary: tuple[int, Counts] = (0, {})
        self._archived: dict[str, tuple[int, Counts]] = {}  # archive name → its counts (archives never change)

    # ------------------------------------------------------------------ writing
    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        rotated = None
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._open_current()
            try:
                written = os.write(fd, line)
                if written != len(line):  # disk full or similar: never leave half a line unreported
                    raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
                os.fsync(fd)
                if self.rotate_bytes and os.fstat(fd).st_size >= self.rotate_bytes:
                    rotated = self._rotate()
            finally:
                os.close(fd)  # closing releases the flock
        if rotated is not None:  # outside the lock: other writers go on appending to the new file
            self.compress_and_prune()

    def _open_current(self) -> int:
        """A descriptor on the current file, locked; reopened if a rotation renamed the file meanwhile."""
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _rotate(self) -> Path:
        """Rename the full file aside (we hold its flock); the next append creates a new one."""
        archive = self.path.with_name(f"{self.path.name}.{datetime.now(UTC).strftime(STAMP)}")
        os.replace(self.path, archive)
        return archive

    def compress_and_prune(self, now: datetime | None = None) -> None:
        """Gzip rotated files not compressed yet and delete archives older than ``keep_days``."""
        now = now or datetime.now(UTC)
        for path, stamp, gzipped in self.archives():
            if now - stamp > timedelta(days=self.keep_days):
                path.unlink(missing_ok=True)
            elif not gzipped:
                self._gzip(path)

    def _gzip(self, path: Path) -> None:
        dest = path.with_name(path.name + ".gz")
        tmp = path.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            with path.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, dest)
            path.unlink(missing_ok=True)
        except FileNotFoundError:  # another worker compressed it first
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def archives(self) -> list[tuple[Path, datetime, bool]]:
        """Rotated files, oldest first: (path, when rotated, gzipped?)."""
        if not self.path.parent.is_dir():
            return []
        found = []
        for path in self.path.parent.iterdir():
            m = self._archive.fullmatch(path.name)
            if m:
                found.append((path, datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC), bool(m.group(2))))
        return sorted(found, key=lambda item: (item[1], not item[2]))

    # ------------------------------------------------------------------ reading
    def counts(self) -> tuple[int, Counts]:
        """(valid lines, {(normalised query, result_id): {"up": n, "down": n}}) over the current file and the
        kept archives; cached by the files' sizes and mtimes."""
        files = [p for p, _, _ in self.archives()] + ([self.path] if self.path.exists() else [])
        key = tuple(_stat_key(p) for p in files)
        if key == self._summary_key:
            return self._summary
        total = 0
        merged: Counts = defaultdict(lambda: {"up": 0, "down": 0})
        for path in files:
            with contextlib.suppress(FileNotFoundError):  # compressed or pruned meanwhile: the next call sees it
                n, counts = self._archive_counts(path) if path != self.path else _count(_lines(path))
                total += n
                for pair, c in counts.items():
                    merged[pair]["up"] += c["up"]
                    merged[pair]["down"] += c["down"]
        names = {p.name for p in files}
        self._archived = {name: c for name, c in self._archived.items() if name in names}  # pruned: forget
        self._summary_key, self._summary = key, (total, dict(merged))
        return self._summary

    def _archive_counts(self, path: Path) -> tuple[int, Counts]:
        got = self._archived.get(path.name)
        if got is None:
            got = self._archived[path.name] = _count(_lines(path))
        return got


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (path.name, -1, -1)
    return (path.name, st.st_size, st.st_mtime_ns)


def _lines(path: Path) -> Iterable[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        yield from fh


def _count(lines: Iterable[bytes]) -> tuple[int, Counts]:
    total = 0
    counts: Counts = defaultdict(lambda: {"up": 0, "down": 0})
    for raw in lines:
        try:
            row = json.loads(raw)
            query = " ".join(str(row["query"]).split()).lower()
            bucket = counts[(query, str(row["result_id"]))]
            bucket["up" if row["rating"] == 1 else "down"] += 1
            total += 1
        except (ValueError, KeyError, TypeError):
            continue  # a hand-edited or foreign line must not break the summary
    return total, dict(counts)
