"""Retiring closed notices and compacting the collection, so the live set stays bounded.

``retire`` deletes notices closed more than ``RETENTION_DAYS`` ago (and, when
``RETENTION_UNKNOWN_DAYS`` > 0, notices without a closing date ingested longer
ago than that) from Chroma and the lexical index. The ids come from the
lexical index's range query and from one Chroma scan (a daily batch job may
scan; a request may not), so the two stores converge even if they drifted.

Deleting does not give back disk or memory in Chroma 1.5.9: deleted vectors
stay in the HNSW files. ``compact`` therefore copies the live notices into a
fresh collection and swaps it in by renaming (``collection.modify(name=…)``),
then drops the old one, whose files go with it. It runs when the notices
retired since the last compaction reach ``COMPACT_RATIO`` of the live set.
The lexical index reclaims deleted documents itself when it merges segments.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tender_pipeline import store
from tender_pipeline.lexical import LexicalIndex

log = logging.getLogger(__name__)

RETIRED_KEY = "retired_since_compaction"
PAGE = 1000


def date_number(value: date) -> int:
    return int(value.strftime("%Y%m%d"))


def expired_ids(collection, index: LexicalIndex, cutoff: int, unknown_before_ts: int | None) -> list[str]:
    """Ids of notices to retire, from both stores (either may hold one the other lost)."""
    ids = set(index.expired_ids(cutoff, limit=10_000_000))
    where: dict[str, Any] = {"$and": [{"closing_num": {"$gt": 0}}, {"closing_num": {"$lt": cutoff}}]}
    ids.update(collection.get(where=where, include=[])["ids"])
    if unknown_before_ts is not None:
        where = {"$and": [{"closing_num": 0}, {"ingested_ts": {"$lt": unknown_before_ts}}]}
        ids.update(collection.get(where=where, include=[])["ids"])
    return sorted(ids)


def retire(collection, index: LexicalIndex, *, retention_days: int, unknown_days: int = 0,
           today: date | None = None) -> dict[str, Any]:
    """Delete notices past retention from both stores; counts of what was done."""
    started = time.perf_counter()
    today = today or datetime.now(UTC).date()
    cutoff = date_number(today - timedelta(days=retention_days))
    unknown_ts = None
    if unknown_days:
        unknown_ts = int((datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=unknown_days)).timestamp())
    with index.writing() as writer:  # no upsert interleaves (see LexicalIndex.writing)
        before = {"chroma": collection.count(), "lexical": index.num_docs()}
        ids = expired_ids(collection, index, cutoff, unknown_ts)
        for start in range(0, len(ids), PAGE):
            part = ids[start:start + PAGE]
            collection.delete(ids=part)
            writer.delete(part)
    after = {"chroma": collection.count(), "lexical": index.num_docs()}
    retired_total = int((collection.metadata or {}).get(RETIRED_KEY, 0)) + len(ids)
    if ids:
        _set_metadata(collection, {RETIRED_KEY: retired_total})
    return {
        "closing_before": cutoff, "retention_days": retention_days, "unknown_retention_days": unknown_days,
        "retired": len(ids), "chroma_before": before["chroma"], "chroma_after": after["chroma"],
        "lexical_before": before["lexical"], "lexical_after": after["lexical"],
        "retired_since_compaction": retired_total, "seconds": round(time.perf_counter() - started, 2),
    }


def _set_metadata(collection, values: dict[str, Any]) -> None:
    meta = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
    collection.modify(metadata={**meta, **values})


def needs_compaction(collection, ratio: float) -> bool:
    retired = int((collection.metadata or {}).get(RETIRED_KEY, 0))
    return retired > 0 and retired >= ratio * max(collection.count(), 1)


def compact(client, index: LexicalIndex, name: str, model_id: str, dim: int, batch: int = 2000) -> dict[str, Any]:
    """Copy the live notices into a fresh collection, swap it in by name, drop the old one.

    Readers keep working: until the swap they read the old collection; the swap is
    two renames; a reader holding the old handle gets "not found" once and reopens
    by name (``search_api.chroma``). Ids, vectors, documents and metadata are copied
    as they are, so the lexical index needs no change."""
    started = time.perf_counter()
    with index.writing():  # holds every other writer of both stores off until the swap is done
        old = store.open_collection(client, name, model_id, dim, create=False)
        fresh_name = f"{name}__compacting"
        _drop(client, fresh_name)  # left by a compaction that died half-way
        fresh = store.open_collection(client, fresh_name, model_id, dim)
        ids = old.get(include=[])["ids"]  # primary-key pages below, not OFFSET scans
        limit = min(batch, client.get_max_batch_size())
        copied = 0
        for part in store.chunked(ids, limit):
            got = old.get(ids=list(part), include=["embeddings", "documents", "metadatas"])
            fresh.upsert(ids=got["ids"], embeddings=got["embeddings"], documents=got["documents"],
                         metadatas=got["metadatas"])
            copied += len(got["ids"])
        if copied != old.count() or fresh.count() != copied:
            _drop(client, fresh_name)
            raise RuntimeError(f"compaction of {name!r} copied {copied} of {old.count()} notices; "
                               "nothing was swapped, run it again")
        retired_name = f"{name}__retired"
        _drop(client, retired_name)
        old.modify(name=retired_name)
        fresh.modify(name=name)
        _set_metadata(fresh, {RETIRED_KEY: 0})
        client.delete_collection(retired_name)
    return {"compacted": True, "copied": copied, "seconds": round(time.perf_counter() - started, 2)}


def _drop(client, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception:  # absent: nothing to drop
        pass


def _open(settings):
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.lexical import open_index

    embedder = get_embedder(settings)
    client = store.get_client(settings)
    collection = store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)
    return embedder, client, collection, open_index(settings.lexical_dir)


def retire_expired(settings, today: date | None = None) -> dict[str, Any]:
    """``retire`` with the settings' stores and retention (the maintenance DAG's first task)."""
    _, _, collection, index = _open(settings)
    return retire(collection, index, retention_days=settings.retention_days,
                  unknown_days=settings.retention_unknown_days, today=today)


def compact_if_due(settings, force: bool = False) -> dict[str, Any]:
    """``compact`` when the retired share reached ``COMPACT_RATIO`` (or ``force``)."""
    embedder, client, collection, index = _open(settings)
    retired = int((collection.metadata or {}).get(RETIRED_KEY, 0))
    if not force and not needs_compaction(collection, settings.compact_ratio):
        return {"compacted": False, "retired_since_compaction": retired, "live": collection.count(),
                "compact_ratio": settings.compact_ratio}
    return compact(client, index, settings.tender_collection, embedder.model_id, embedder.dim)
