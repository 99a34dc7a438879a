"""Retiring closed notices, so the live set and every store stay bounded.

``retire`` deletes notices closed more than ``RETENTION_DAYS`` ago (and, when
``RETENTION_UNKNOWN_DAYS`` > 0, notices without a closing date ingested longer
ago than that) from the lexical index, and frees their Chroma slots
(``slots``): the next upsert writes new notices' vectors into them, so Chroma
never grows past the most notices live at once and nothing is ever copied.
(Chroma 1.5.9 keeps a deleted id's vectors in its HNSW files for good; until
issue 23 a compaction copied the live set into a fresh collection, a peak of
twice the store.) The ids come from the lexical index's range queries.
The lexical index reclaims deleted documents itself when it merges segments.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tender_pipeline import slots, store
from tender_pipeline.lexical import LexicalIndex

log = logging.getLogger(__name__)

PAGE = 1000


def date_number(value: date) -> int:
    return int(value.strftime("%Y%m%d"))


def expired_ids(index: LexicalIndex, cutoff: int, unknown_before_ts: int | None) -> list[str]:
    """Ids of notices to retire: closed before ``cutoff``, or undated and ingested before ``unknown_before_ts``."""
    ids = set(index.expired_ids(cutoff, limit=10_000_000))
    if unknown_before_ts is not None:
        ids.update(index.expired_unknown_ids(unknown_before_ts))
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
    freed = 0
    with index.writing() as writer:  # no upsert interleaves (see LexicalIndex.writing)
        before = {"chroma": slots.live_count(collection), "lexical": index.num_docs()}
        ids = expired_ids(index, cutoff, unknown_ts)
        for start in range(0, len(ids), PAGE):
            part = ids[start:start + PAGE]
            freed += slots.release(collection, part)  # before the index commit: a crash leaks no slot
            writer.delete(part)
    after = {"chroma": slots.live_count(collection), "lexical": index.num_docs()}
    return {
        "closing_before": cutoff, "retention_days": retention_days, "unknown_retention_days": unknown_days,
        "retired": len(ids), "slots_freed": freed, "chroma_before": before["chroma"], "chroma_after": after["chroma"],
        "chroma_slots": collection.count(), "lexical_before": before["lexical"], "lexical_after": after["lexical"],
        "seconds": round(time.perf_counter() - started, 2),
    }


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
