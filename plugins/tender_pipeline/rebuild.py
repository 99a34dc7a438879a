"""Rebuild both stores from the staged runs (a schema change of the lexical index, or both disks lost).

Chroma holds ids and vectors only, so the lexical index cannot be re-indexed from it: a lost index comes
back with ``recover lexical`` (published copy or kept parts), a lost Chroma with ``recover chroma``.

* ``from_staging`` — disaster recovery: every live notice sealed under
  ``<STAGING_URI>/_kept`` (``kept``: the latest write of each id, not past
  retention) is replayed in write order into a fresh collection and a fresh
  lexical index; the fresh collection is then swapped in by name (readers reopen it by name).
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import UTC, datetime
from typing import Any

from tender_pipeline import kept, slots, staging, staging_retention, store

log = logging.getLogger(__name__)


def _drop(client, name: str) -> None:
    try:
        client.delete_collection(name)
    except Exception:  # absent: nothing to drop
        pass


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
            writer.upsert(ids, metas, texts, vectors, store.upsert(fresh, ids, vectors, client=client))
            writer.after_commit.append(functools.partial(slots.record, fresh, ids, [store.state_of(m) for m in metas]))
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
