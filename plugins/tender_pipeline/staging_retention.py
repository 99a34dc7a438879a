"""Staging bounded: run folders go after STAGING_RETENTION_DAYS, kept parts once none of their notices is live.

What stays, and why (the arithmetic is in docs/capacity.md):

* ``_kept/``: the rows and vectors of every live notice (``kept``), trimmed as
  notices are replaced or retired, so the lexical index and Chroma can be
  rebuilt after a lost disk;
* ``_ledger/``: one small marker per batch file ever claimed, so a file that
  was ingested is refused after its run folder is gone (a few hundred bytes a
  file, a few files a day);
* everything else in a run folder (the raw batch, ``valid.jsonl``,
  ``quarantine.csv``, ``enriched.jsonl``, ``embeddings.npy``, stage files)
  is for inspecting and retrying a run, and is deleted with the folder
  ``STAGING_RETENTION_DAYS`` after the folder's last write;
* the Gemini enrichment cache forgets answers older than that too (enrich
  never asks the cache about a notice the stores already hold unchanged);
* ``_ocds_pages/``: an OCDS API interval's raw pages, kept so a retry or a
  replay does not ask the portal again, go the same number of days after
  their last write (the ledger's claim on the interval stays, so a rerun
  still fetches nothing; only ``--force`` would ask the portal again).

A run completed before parts existed is sealed first, with its upsert time.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tender_pipeline import kept, staging

log = logging.getLogger(__name__)

ORPHAN_AGE_S = 86_400.0  # part files no manifest names (a seal or trim that died) are removed after a day
NOT_RUNS = ("_", ".")  # _kept, _ledger, _enrich_cache.sqlite ... are not run folders


# --------------------------------------------------------------------------- run folders, local or remote
def run_folders(root: staging.StagePath) -> list[staging.StagePath]:
    """The run folders directly under the staging root."""
    return child_folders(root, skip=NOT_RUNS)


def child_folders(root: staging.StagePath, skip: tuple[str, ...] = ()) -> list[staging.StagePath]:
    """The folders directly under ``root`` (local or remote) whose names do not start with ``skip``."""
    if isinstance(root, Path):
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(skip)) \
            if root.is_dir() else []
    return [root / n for n in sorted(_remote_children(root)) if not n.startswith(skip)]


def _remote_children(root: staging.RemotePath) -> list[str]:
    store = root.store
    if isinstance(store, staging.S3Store):
        parsed = urlparse(root.uri)
        prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
        names = []
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix,
                                                                        Delimiter="/")
        for page in pages:
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names
    path = store._path(root.uri)  # type: ignore[attr-defined]
    return [Path(p["name"]).name for p in store.fs.ls(path, detail=True) if p["type"] == "directory"]  # type: ignore


def last_write(folder: staging.StagePath) -> float:
    """Epoch seconds of the newest file in a run folder (0 when empty)."""
    if isinstance(folder, Path):
        times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
        return max(times, default=folder.stat().st_mtime)
    store = folder.store
    if isinstance(store, staging.S3Store):
        parsed = urlparse(folder.uri)
        newest = 0.0
        for page in store.client.get_paginator("list_objects_v2").paginate(
                Bucket=parsed.netloc, Prefix=parsed.path.strip("/") + "/"):
            for obj in page.get("Contents", []):
                newest = max(newest, obj["LastModified"].timestamp())
        return newest
    info = store.fs.find(store._path(folder.uri), detail=True)  # type: ignore[attr-defined]
    return max((float(v.get("mtime") or v.get("LastModified", 0) or 0) for v in info.values()), default=0.0)


def _modified(path: staging.StagePath) -> float:
    """When a file was last written (now, i.e. never old enough, where the store cannot say)."""
    if isinstance(path, Path):
        return path.stat().st_mtime
    if isinstance(path.store, staging.S3Store):
        parsed = urlparse(path.uri)
        head = path.store.client.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
        return head["LastModified"].timestamp()
    return time.time()


def remove_folder(folder: staging.StagePath) -> None:
    if isinstance(folder, Path):
        shutil.rmtree(folder, ignore_errors=True)
        return
    store = folder.store
    if isinstance(store, staging.S3Store):
        parsed = urlparse(folder.uri)
        keys = []
        for page in store.client.get_paginator("list_objects_v2").paginate(
                Bucket=parsed.netloc, Prefix=parsed.path.strip("/") + "/"):
            keys += [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            store.client.delete_objects(Bucket=parsed.netloc, Delete={"Objects": keys[start:start + 1000]})
        return
    store.fs.rm(store._path(folder.uri), recursive=True)  # type: ignore[attr-defined]


def folder_bytes(folder: staging.StagePath) -> int | None:
    """Bytes on a local disk (hard-linked files counted once); None for object storage."""
    if not isinstance(folder, Path) or not folder.exists():
        return None if not isinstance(folder, Path) else 0
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            if path.is_file() and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


# --------------------------------------------------------------------------- the steps
def adopt_unsealed(root: staging.StagePath) -> int:
    """Seal completed runs that predate parts (``upsert.json`` but no ``sealed.json``), with their upsert time."""
    adopted = 0
    for run in run_folders(root):
        if (run / "upsert.json").exists() and not (run / kept.SEALED).exists() and (run / "enriched.jsonl").exists():
            upserted = (run / "upsert.json").stat().st_mtime if isinstance(run, Path) else last_write(run)
            kept.seal(run, datetime.fromtimestamp(upserted, UTC))
            adopted += 1
    return adopted


def prune_kept(settings, today: date) -> dict[str, int]:
    """Drop parts with no live row, trim parts mostly dead; counts of rows and parts."""
    stats = {"parts": 0, "parts_dropped": 0, "parts_trimmed": 0, "rows_before": 0, "rows_kept": 0, "live": 0}
    for part, mask in kept.live_parts(settings, today):
        live, total = int(mask.sum()), len(mask)
        stats["rows_before"] += total
        stats["live"] += live
        if live == 0:
            kept.drop(part)
            stats["parts_dropped"] += 1
            continue
        if live < kept.TRIM_BELOW * total:
            part = kept.trim(part, mask)
            stats["parts_trimmed"] += 1
        stats["parts"] += 1
        stats["rows_kept"] += int(part.manifest["rows"])
    return stats


def remove_orphans(settings, now: float) -> int:
    """Part files that no manifest names and that are older than a day (a seal or trim that died midway)."""
    root = kept.kept_dir(settings.staging_uri)
    named = {name for p in kept.parts(settings.staging_uri) for name in p.manifest["files"].values()}
    removed = 0
    for path in staging.listdir(root):
        if path.name.endswith(".json") or path.name in named:
            continue
        if now - _modified(path) > ORPHAN_AGE_S:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def prune_folders(folders: list[staging.StagePath], older_than: float) -> list[str]:
    """Delete the folders whose last write is before ``older_than`` (epoch seconds); their names."""
    gone = []
    for folder in folders:
        if last_write(folder) < older_than:
            remove_folder(folder)
            gone.append(folder.name)
    return gone


def prune_enrich_cache(settings, older_than: float) -> int:
    """Forget Gemini answers cached before ``older_than``; SQLite reuses the freed pages for new ones."""
    from tender_pipeline.gemini.cache import cache_path_for

    path = cache_path_for(settings)
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            return conn.execute("DELETE FROM enrichment WHERE created_at < ?", (older_than,)).rowcount
    except sqlite3.OperationalError:  # no table yet
        return 0
    finally:
        conn.close()


def prune(settings, today: date | None = None, now: float | None = None) -> dict[str, Any]:
    """The whole staging retention pass (tender_maintenance's ``prune_staging`` task, ``prune-staging`` command).

    Holds the stores' writer lock (``LexicalIndex.writing``), as every rebuild that reads the parts does."""
    from tender_pipeline.lexical import open_index

    started = time.perf_counter()
    now = time.time() if now is None else now
    today = today or datetime.fromtimestamp(now, UTC).date()
    root = staging.location(settings.staging_uri)
    before = folder_bytes(root)
    older_than = now - timedelta(days=settings.staging_retention_days).total_seconds()
    with open_index(settings.lexical_dir).writing():
        adopted = adopt_unsealed(root)
        parts = prune_kept(settings, today)
        orphans = remove_orphans(settings, now)
    runs = prune_folders(run_folders(root), older_than)
    ocds_pages = prune_folders(child_folders(root / "_ocds_pages"), older_than)  # one folder per source and interval
    cache = prune_enrich_cache(settings, older_than)
    after = folder_bytes(root)
    log.info("staging pruned: %d run folder(s), %d part(s) dropped, %d trimmed", len(runs),
             parts["parts_dropped"], parts["parts_trimmed"])
    return {"staging_retention_days": settings.staging_retention_days, "runs_deleted": len(runs),
            "runs_adopted": adopted, **{f"kept_{k}": v for k, v in parts.items()}, "orphans_removed": orphans,
            "ocds_intervals_deleted": len(ocds_pages), "enrich_cache_forgotten": cache,
            "bytes_before": before, "bytes_after": after,
            "seconds": round(time.perf_counter() - started, 2)}
