"""The Chroma collection: client, the notice's card fields, incremental lookups, batched upserts.

A server (``CHROMA_HOST``) in production and tests; an embedded
``PersistentClient`` under ``CHROMA_PATH`` when no host is set. The collection
records the embedding model and dimension it was built with, and refuses an
embedder that differs rather than mixing vector spaces.

Chroma holds vectors only (issue 23), each in a reusable slot that names its
tender and keeps the few fields ``enrich`` compares (``slots``, ``state_of``):
kNN is all it answers. The card (``to_metadata``), the text and every filter
live in the lexical index. Each metadata key or document in Chroma cost disk in
its SQLite tables and their full-text index (bench/README.md, "What Chroma holds").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from tender_pipeline import slots
from tender_pipeline.models import EnrichedTender
from tender_pipeline.money import UNKNOWN_VALUE, Reporter
from tender_pipeline.settings import Settings

log = logging.getLogger(__name__)

MISSING_NUMBER = -1.0  # value_amount when unknown (metadata may not hold None)


class EmbeddingMismatchError(RuntimeError):
    """The collection was built with another embedding model or dimension."""


class ChromaUnavailableError(ConnectionError):
    """The Chroma server cannot be reached: a passing fault (the DAG retries it), never bad input."""


def chroma_address(settings: Settings) -> str:
    return f"{settings.chroma_host}:{settings.chroma_port}"


def unavailable(settings: Settings, exc: BaseException) -> ChromaUnavailableError:
    """One line naming host and port, instead of the client's traceback."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ChromaUnavailableError(
        f"Chroma server at {chroma_address(settings)} is unavailable ({reason[:200]}); start it, "
        f"or point CHROMA_HOST/CHROMA_PORT at it"
    )


def get_client(settings: Settings):
    """HTTP client when CHROMA_HOST is set, else an embedded persistent client.

    The HTTP client checks the server when it is built, so this is also the
    pipeline's "is the store there?" check before any work is done.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                       settings=chroma_settings)
        except Exception as exc:  # chromadb wraps refused/timeout in ValueError; httpx errors pass through
            raise unavailable(settings, exc) from exc
    return chromadb.PersistentClient(path=settings.chroma_path, settings=chroma_settings)


def open_collection(client, name: str, model_id: str, dim: int, *, create: bool = True):
    """The tenders collection (cosine space), checked against the embedder in use."""
    meta = {"embedding_model": model_id, "embedding_dim": dim}
    if create:
        collection = client.get_or_create_collection(
            name=name, metadata=meta, configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
    else:
        collection = client.get_collection(name=name, embedding_function=None)
    found = collection.metadata or {}
    if found.get("embedding_model") != model_id or int(found.get("embedding_dim", dim)) != dim:
        raise EmbeddingMismatchError(
            f"collection {name!r} holds vectors from {found.get('embedding_model')!r} "
            f"(dim {found.get('embedding_dim')}), but the configured embedder is {model_id!r} "
            f"(dim {dim}). Use the same EMBED_BACKEND and LOCAL_EMBEDDER, or a new TENDER_COLLECTION and re-ingest."
        )
    return collection


STATE_FIELDS = ("content_hash", "versions", "is_corrigendum", "enrichment_source", "released")


def state_of(meta: dict[str, Any]) -> str:
    """The fields ``enrich`` compares, in one short string (one metadata row in Chroma instead of five)."""
    return "|".join([str(meta.get("content_hash", "")), str(int(meta.get("versions") or 1)),
                     "1" if meta.get("is_corrigendum") else "0", str(meta.get("enrichment_source", "")),
                     str(meta.get("released", ""))])


def existing_state(collection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """content_hash, versions, is_corrigendum, enrichment_source and released per id already stored (its slot's
    recorded state: ``slots.record``). A notice whose write the lexical index never committed has none, so it is
    written again rather than skipped as unchanged."""
    found: dict[str, dict[str, Any]] = {}
    for tid, state in slots.states_of(collection, list(ids)).items():
        content_hash, versions, corrigendum, source, released = (state.split("|", 4) + [""] * 5)[:5]
        found[tid] = {"content_hash": content_hash, "versions": int(versions or 1),
                      "is_corrigendum": corrigendum == "1", "enrichment_source": source,
                      "released": released}  # an OCDS notice's latest release date
    return found


def date_number(value: date | None) -> int:
    """YYYYMMDD as an int: sortable and filterable with $gte/$lte; 0 when unknown."""
    return int(value.strftime("%Y%m%d")) if value else 0


def to_metadata(item: EnrichedTender, ingested_at: datetime, reporter: Reporter | None = None) -> dict[str, Any]:
    """Everything a search may filter on or show; never None (Chroma rejects it).

    ``value_report`` is the value in ``reporter``'s currency (-1 when the amount
    or its currency is unknown, or no reporter is given).
    """
    r, e = item.record, item.enrichment
    report = reporter.value(r.value_amount, r.currency) if reporter is not None else None
    return {
        "tender_id": r.tender_id,
        "title": r.title,
        "summary": e.summary,
        "buyer": r.buyer,
        "buyer_key": r.buyer.lower(),
        "country": r.country,
        "country_key": r.country.lower(),
        "region": r.region,
        "region_key": r.region.lower(),
        "city": r.city,
        "sector": e.sector,
        "subsector": e.subsector,
        "procurement_type": e.procurement_type,
        "keywords": ", ".join(e.keywords),
        "category": r.category,
        "cpv_codes": " ".join(r.cpv_codes),
        "notice_type": r.notice_type,
        "published_date": r.published_date.isoformat() if r.published_date else "",
        "published_num": date_number(r.published_date),
        "closing_date": r.closing_date.isoformat() if r.closing_date else "",
        "closing_num": date_number(r.closing_date),
        "value_amount": float(r.value_amount) if r.value_amount is not None else MISSING_NUMBER,
        "currency": r.currency,
        "value_report": report if report is not None else UNKNOWN_VALUE,
        "report_currency": reporter.currency if reporter is not None else "",
        "url": r.url,
        "source": r.source,
        "is_corrigendum": bool(e.is_corrigendum),
        "enrichment_source": e.enrichment_source,
        "content_hash": item.content_hash,
        "ingested_at": ingested_at.astimezone(UTC).isoformat(timespec="seconds"),
        "ingested_ts": int(ingested_at.timestamp()),
    }


def upsert(collection, ids: list[str], embeddings: np.ndarray, client=None, progress=None) -> list[str]:
    """Write each notice's vector into its Chroma slot (``slots``: a notice's own, a freed one, or a new one),
    in batches the server accepts; returns each notice's slot, which the lexical index records for kNN.
    ``ids`` must be unique."""
    limit = client.get_max_batch_size() if client is not None else 5000
    return slots.write(collection, ids, np.asarray(embeddings), max(1, min(limit, 5000)), progress)
