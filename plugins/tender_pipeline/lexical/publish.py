"""The writer's side of copies on other hosts: publish the index folder to object storage after each commit.

Why: a tantivy index is a folder. On one host (make up, compose with a shared volume) the writer and the
readers open the same folder and that is enough. On Render the search API and the Celery worker have
separate disks, so the writer publishes the folder to ``LEXICAL_PUBLISH_URI`` (``s3://bucket/prefix/`` or
a folder) after every commit, and each search API keeps a local copy in sync (``follow``).

How it stays consistent: the writer uploads the segment files the remote lacks, then ``meta.json`` last,
so a reader that sees a new ``meta.json`` can fetch everything it names. Remote files no longer named are
deleted ``LEXICAL_PUBLISH_GRACE_S`` after they were first seen unreferenced (a reader may still be
downloading them).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from tender_pipeline.lexical.copy_stores import Store, store_for
from tender_pipeline.lexical.follow import Follower
from tender_pipeline.lexical.segment_files import (
    EXTRAS,
    META,
    PUBLISH_LOCK,
    RETIRED,
    SEGMENT_FILE,
    SYNC_LOCK,
    folder_lock,
    referenced,
)

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The index could not be published; the writing task must fail (and be retried)."""


def publish(local: Path, store: Store, grace_s: float, now: float | None = None) -> dict[str, int]:
    """Make ``store`` hold the index in ``local``: new files first, ``meta.json`` last, stale files later.

    Raises ``PublishError`` (naming the target) on any failure: the caller's task fails and is retried,
    and the next publish uploads whatever is still missing."""
    try:
        with folder_lock(local, PUBLISH_LOCK):  # one publisher at a time: meta.json never goes backwards
            return _publish(local, store, grace_s, time.time() if now is None else now)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(f"publishing the lexical index {local} to {store.uri} failed: {exc}") from exc


def _publish(local: Path, store: Store, grace_s: float, now: float) -> dict[str, int]:
    remote = store.names()
    published = store.get(META) if META in remote else None
    mine = json.loads((local / META).read_bytes())
    if published is not None and json.loads(published.data).get("opstamp", 0) > mine.get("opstamp", 0):
        raise PublishError(f"the index at {store.uri} is newer than this writer's copy {local} (opstamp "
                           f"{json.loads(published.data).get('opstamp')} > {mine.get('opstamp')}): another host "
                           "wrote it; writers must share one folder (or start from the published copy)")
    for _attempt in range(3):
        meta_bytes = (local / META).read_bytes()
        wanted = referenced(json.loads(meta_bytes), os.listdir(local))
        uploaded = 0
        try:
            for name in sorted(wanted):
                if name not in remote:  # segment files are immutable: present means done
                    store.put_file(name, local / name)
                    remote[name] = (local / name).stat().st_size
                    uploaded += 1
        except FileNotFoundError:
            continue  # a writer in another process merged that segment away: read meta.json again
        break
    else:
        raise PublishError(f"the lexical index {local} kept changing while it was published to {store.uri}")
    for name in EXTRAS:
        if (local / name).exists():
            data = (local / name).read_bytes()
            got = store.get(name) if name in remote else None
            if got is None or got.data != data:
                store.put_bytes(name, data)
    current = store.get(META) if META in remote else None
    if current is None or current.data != meta_bytes:
        store.put_bytes(META, meta_bytes)  # last: from now on readers may follow this version
    deleted = _collect(store, remote, wanted, grace_s, now)
    return {"uploaded": uploaded, "deleted": deleted, "files": len(wanted)}


def _collect(store: Store, remote: dict[str, int], wanted: set[str], grace_s: float, now: float) -> int:
    """Delete remote segment files unreferenced for at least ``grace_s``; remember the younger ones."""
    stale = {n for n in remote if SEGMENT_FILE.match(n) and n not in wanted}
    got = store.get(RETIRED) if RETIRED in remote else None
    seen: dict[str, float] = json.loads(got.data) if got else {}
    since = {n: float(seen.get(n, now)) for n in stale}
    due = sorted(n for n, t in since.items() if now - t >= grace_s)
    if due:
        store.delete(due)
    keep = {n: t for n, t in since.items() if n not in due}
    if keep != seen:
        store.put_bytes(RETIRED, json.dumps(keep, sort_keys=True).encode())
    return len(due)


def restore_if_new(local: Path, publish_uri: str) -> bool:
    """A writer whose folder holds a never-written index (a new or wiped disk) starts from the
    published copy instead of publishing a near-empty index over it. True when it restored."""
    try:
        meta = json.loads((local / META).read_bytes())
    except FileNotFoundError:
        meta = {}
    if meta.get("segments") or meta.get("opstamp", 0):
        return False
    follower = Follower(store_for(publish_uri, local.name), local)
    try:
        with folder_lock(local, SYNC_LOCK):
            restored = follower._sync()
    except Exception as exc:
        raise PublishError(f"restoring the lexical index {local} from {follower.store.uri} failed: {exc}") from exc
    if restored:
        log.info("lexical index %s restored from %s", local, follower.store.uri)
    return restored


def publish_index(local: Path, publish_uri: str, grace_s: float) -> dict[str, int]:
    """Publish the index folder ``local`` (``<LEXICAL_INDEX_PATH>/<collection>``) under ``publish_uri``."""
    return publish(local, store_for(publish_uri, local.name), grace_s)
