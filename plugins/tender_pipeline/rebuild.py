"""Rebuild the stores: the lexical index from Chroma, or both from the staged runs.

* ``lexical_from_chroma`` — the lexical index lost or out of step (a new
  volume, a schema change): every notice Chroma holds is re-indexed, in one
  commit, so readers switch from the old index to the new one at once.
* ``from_staging`` — disaster recovery: every live notice sealed under
  ``<STAGING_URI>/_kept`` (``kept``: the latest write of each id, not past
  retention) is replayed in write order into a fresh collection and a fresh
  lexical index; the fresh collection is then swapped in by name, as compaction does.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from tender_pipeline import kept, staging, staging_retention, store
from tender_pipeline.lexical.cards import for_chroma
from tender_pipeline.lifecycle import _drop

log = logging.getLogger(__name__)


def lexical_from_chroma(settings, batch: int = 2000) -> dict[str, Any]:
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.lexical import open_index

    started = time.perf_counter()
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    collection = store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim,
                                       create=False)
    index = open_index(settings.lexical_dir, recreate=True)  # also the schema upgrade
    copied = 0
    with index.writing() as writer:
        writer.clear()
        ids = collection.get(include=[])["ids"]
        for part in store.chunked(ids, batch):
            got = collection.get(ids=list(part), include=["metadatas", "documents", "embeddings"])
            copied += writer.upsert(got["ids"], [m or {} for m in got["metadatas"]],
                                    [d or "" for d in got["documents"]], got["embeddings"])
    return {"rebuilt": "lexical", "from": "chroma", "notices": copied, "lexical_count": index.num_docs(),
            "seconds": round(time.perf_counter() - started, 2)}


def from_staging(settings, today=None) -> dict[str, Any]:
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.lexical import open_index

    started = time.perf_counter()
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    name = settings.tender_collection
    today = today or datetime.now(UTC).date()
    fresh_name = f"{name}__rebuild"
    _drop(client, fresh_name)
    fresh = store.open_collection(client, fresh_name, embedder.model_id, embedder.dim)
    index = open_index(settings.lexical_dir, recreate=True)  # also the schema upgrade
    adopted = staging_retention.adopt_unsealed(staging.location(settings.staging_uri))
    parts = kept.live_parts(settings, today)
    total = sum(len(mask) for _, mask in parts)
    replayed = 0
    with index.writing() as writer:
        writer.clear()
        for ids, metas, texts, vectors in kept.live_notices(settings, today):
            store.upsert(fresh, ids, vectors, texts, [for_chroma(m) for m in metas], client=client)
            writer.upsert(ids, metas, texts, vectors)
            replayed += len(ids)
        try:
            old = client.get_collection(name, embedding_function=None)
            retired_name = f"{name}__retired"
            _drop(client, retired_name)
            old.modify(name=retired_name)
        except Exception:  # no collection yet: nothing to swap out
            retired_name = ""
        fresh.modify(name=name)
        if retired_name:
            client.delete_collection(retired_name)
    return {"rebuilt": "chroma+lexical", "from": "staging", "runs": len(parts), "runs_adopted": adopted,
            "records_replayed": replayed, "skipped_past_retention": total - replayed,
            "collection_count": fresh.count(), "lexical_count": index.num_docs(),
            "seconds": round(time.perf_counter() - started, 2)}
