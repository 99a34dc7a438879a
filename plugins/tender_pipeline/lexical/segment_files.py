"""The files of an index folder as copies see them, and the local file operations copies share.

tantivy's segment files are immutable (a delete is a new ``<segment>.<opstamp>.del`` file) and
``meta.json`` lists the live ones: a copy is consistent once it holds every file ``meta.json`` names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from tender_pipeline.lexical.schema import SCHEMA_MARKER

META = "meta.json"
EXTRAS = (SCHEMA_MARKER,)  # our schema marker, checked when a reader opens the folder
RETIRED = "_retired.json"  # remote only: unreferenced file → when first seen unreferenced
SEGMENT_FILE = re.compile(r"^([0-9a-f]{32})\.(?:(\d+)\.del|[a-z]+)$")
PUBLISH_LOCK = ".tender-publish.lock"
SYNC_LOCK = ".tender-sync.lock"  # API worker processes of one host sharing one copy sync one at a time


def referenced(meta: dict, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the index described by ``meta`` uses (segment files and its current .del)."""
    segments = {s["segment_id"].replace("-", ""): (s.get("deletes") or {}).get("opstamp")
                for s in meta.get("segments", [])}
    out: set[str] = set()
    for name in names:
        m = SEGMENT_FILE.match(name)
        if not m or m.group(1) not in segments:
            continue
        if m.group(2) is not None and int(m.group(2)) != segments[m.group(1)]:
            continue
        out.add(name)
    return out


def temp_beside(dest: Path) -> Path:
    """A temp name in the same folder (so the rename is atomic) that no other process uses."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")


def atomic_write(dest: Path, data: bytes) -> None:
    tmp = temp_beside(dest)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(local: Path, name: str) -> Iterator[None]:
    """An exclusive lock across processes on one index folder (released if the process dies)."""
    local.mkdir(parents=True, exist_ok=True)
    with open(local / name, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
