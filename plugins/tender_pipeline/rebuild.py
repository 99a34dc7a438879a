"""Rebuild the stores: the lexical index from Chroma, or both from the staged runs.

* ``lexical_from_chroma`` — the lexical index lost or out of step (a new
  volume, a schema change): every notice Chroma holds is re-indexed, in one
  commit, so readers switch from the old index to the new one at once.
* ``from_staging`` — disaster recovery: every completed run under STAGING_URI
  (one with ``upsert.json``) is replayed in the order it completed into a fresh
  collection and a fresh lexical index, skipping notices past retention; the
  fresh collection is then swapped in by name, as compaction does.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tender_pipeline import identity, staging, store
from tender_pipeline.documents import document_text
from tender_pipeline.lifecycle import _drop, date_number
from tender_pipeline.models import EnrichedTender

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


class RemoteStagingError(ValueError):
    """``rebuild --from staging`` replays a local staging folder only."""


def completed_runs(staging_uri: str) -> list[Path]:
    """Run folders whose upsert finished, oldest upsert first."""
    if staging.is_remote(staging_uri):
        raise RemoteStagingError(
            f"rebuild --from staging reads a local STAGING_URI, not {staging_uri}: copy the run folders "
            "locally first (e.g. aws s3 sync) and point STAGING_URI at the copy")
    root = Path(staging_uri)
    runs = [p for p in root.iterdir() if p.is_dir() and (p / "upsert.json").exists()] if root.is_dir() else []
    return sorted(runs, key=lambda p: (p / "upsert.json").stat().st_mtime)


def from_staging(settings, today=None) -> dict[str, Any]:
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.lexical import open_index

    started = time.perf_counter()
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    name = settings.tender_collection
    today = today or datetime.now(UTC).date()
    cutoff = date_number(today - timedelta(days=settings.retention_days))
    fresh_name = f"{name}__rebuild"
    _drop(client, fresh_name)
    fresh = store.open_collection(client, fresh_name, embedder.model_id, embedder.dim)
    index = open_index(settings.lexical_dir, recreate=True)  # also the schema upgrade
    runs = completed_runs(settings.staging_uri)
    replayed = skipped = 0
    with index.writing() as writer:
        writer.clear()
        for run in runs:
            rows = list(staging.read_jsonl(run / "enriched.jsonl"))
            vectors = staging.read_npy(run / "embeddings.npy")
            if len(rows) != len(vectors):
                log.warning("skipping %s: %d records but %d vectors", run.name, len(rows), len(vectors))
                continue
            when = datetime.fromtimestamp((run / "upsert.json").stat().st_mtime, UTC)
            keep = []
            for i, row in enumerate(rows):
                item = EnrichedTender.model_validate(row)
                meta = identity.with_versions(store.to_metadata(item, when), row)
                if 0 < meta["closing_num"] < cutoff:
                    skipped += 1
                    continue
                keep.append((item.record.tender_id, i, document_text(item), meta))
            if keep:
                ids = [k[0] for k in keep]
                store.upsert(fresh, ids, vectors[[k[1] for k in keep]], [k[2] for k in keep], [k[3] for k in keep],
                             client=client)
                writer.upsert(ids, [k[3] for k in keep], [k[2] for k in keep], vectors[[k[1] for k in keep]])
                replayed += len(keep)
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
    return {"rebuilt": "chroma+lexical", "from": "staging", "runs": len(runs), "records_replayed": replayed,
            "skipped_past_retention": skipped, "collection_count": fresh.count(), "lexical_count": index.num_docs(),
            "seconds": round(time.perf_counter() - started, 2)}
