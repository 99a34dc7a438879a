"""The reader's side of copies on other hosts: keep a local copy of a published index current.

A reader downloads missing files under temporary names, renames them into place, and only then replaces
its ``meta.json`` (temp + rename): tantivy's OnCommit reload therefore never opens a half-downloaded
segment. A reader deletes its local stale files once a newer version is in place, keeping the previous
version's files (open searchers keep their mmaps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tender_pipeline.lexical.copy_stores import Remote, Store
from tender_pipeline.lexical.segment_files import (
    EXTRAS,
    META,
    SEGMENT_FILE,
    SYNC_LOCK,
    atomic_write,
    folder_lock,
    referenced,
    temp_beside,
)

log = logging.getLogger(__name__)

PART_MAX_AGE_S = 3600.0  # temp files of a crashed download older than this are removed


class SyncError(RuntimeError):
    """A reader could not bring its copy up to the published version."""


@dataclass
class SyncStatus:
    synced: bool = False  # a check succeeded at least once (maybe: nothing published yet)
    version: str = ""
    published_at: float | None = None  # when the writer published the version held locally
    checked_at: float | None = None  # last successful check of the remote
    error: str = ""  # last sync error ('' after a success)


class Follower:
    """Keeps a local copy of a published index current; one per search API process."""

    def __init__(self, store: Store, local: Path, interval_s: float = 5.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.local = local
        self.interval_s = interval_s
        self.on_change = on_change
        self.status = SyncStatus()
        self.first_attempt = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._local_meta_hash = ""

    def sync_once(self) -> bool:
        """Bring the local copy to the published version; True when it changed. Never raises."""
        try:
            with folder_lock(self.local, SYNC_LOCK):  # another worker's cleanup never removes our new files
                changed = self._sync()
        except Exception as exc:
            self.status.error = f"lexical sync from {self.store.uri} failed: {exc}"
            log.warning("%s", self.status.error)
            return False
        finally:
            self.first_attempt.set()
        self.status.error = ""
        self.status.synced = True
        self.status.checked_at = time.time()
        return changed

    def _local_meta(self) -> bytes:
        try:
            return (self.local / META).read_bytes()
        except FileNotFoundError:
            return b""

    def _sync(self) -> bool:
        version = self.store.version(META)
        if version is None:
            return False  # nothing published yet
        local_bytes = self._local_meta()
        if version == self.status.version and hashlib.sha256(local_bytes).hexdigest() == self._local_meta_hash:
            return False  # unchanged remote, and our meta.json is still the one we wrote
        got = self.store.get(META)
        if got is None:
            return False
        if got.data == local_bytes:
            self._settled(got)
            return False
        remote = self.store.names()
        meta = json.loads(got.data)
        wanted = referenced(meta, remote)
        expected = {s["segment_id"].replace("-", "") for s in meta.get("segments", [])}
        if not expected <= {n.split(".", 1)[0] for n in wanted}:
            raise SyncError(f"{self.store.uri}: meta.json names segments whose files are gone (a newer "
                            "version replaced them); retrying")
        present = set(os.listdir(self.local))
        for name in sorted(wanted - present):
            self._download(name, remote[name])
        for name in EXTRAS:
            if name in remote:
                theirs = self.store.get(name)
                if theirs is not None and (not (self.local / name).exists()
                                           or (self.local / name).read_bytes() != theirs.data):
                    atomic_write(self.local / name, theirs.data)
        previous = referenced(json.loads(local_bytes), present) if local_bytes else set()
        atomic_write(self.local / META, got.data)  # the switch: tantivy reloads from here
        self._settled(got)
        if self.on_change is not None:
            self.on_change()
        self._remove_stale(wanted | previous)
        return True

    def _settled(self, got: Remote) -> None:
        self.status.version = got.version
        self.status.published_at = got.modified
        self._local_meta_hash = hashlib.sha256(got.data).hexdigest()

    def _download(self, name: str, size: int) -> None:
        dest = self.local / name
        tmp = temp_beside(dest)
        try:
            self.store.get_file(name, tmp)
            if tmp.stat().st_size != size:
                raise SyncError(f"{self.store.uri}{name}: downloaded {tmp.stat().st_size} bytes, expected {size}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_stale(self, keep: set[str]) -> None:
        """Segment files of versions older than the previous one (open readers keep their mmaps)."""
        now = time.time()
        for path in self.local.iterdir():
            name = path.name
            if SEGMENT_FILE.match(name) and name not in keep:
                path.unlink(missing_ok=True)
            elif name.endswith(".part") and now - path.stat().st_mtime > PART_MAX_AGE_S:
                path.unlink(missing_ok=True)

    # --- background thread ---------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lexical-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sync_once()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
