"""Enrichment backends: batch of records in, one ``Enrichment`` per record out.

The offline backend (taxonomy rules + local embeddings) is the default; the
Gemini backend is chosen with ``ENRICH_BACKEND=gemini`` or a ``GEMINI_API_KEY``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tender_pipeline.models import Enrichment, TenderRecord
from tender_pipeline.settings import Settings, get_settings


@runtime_checkable
class Enricher(Protocol):
    """Every backend returns exactly one Enrichment per input record, in input order."""

    name: str

    def enrich(self, records: list[TenderRecord]) -> list[Enrichment]: ...

    def usage(self) -> dict[str, float]:
        """Counters for the run summary (requests, tokens, cost); empty for offline."""
        ...


def build_enricher(settings: Settings | None = None) -> Enricher:
    """The enricher the settings select."""
    settings = settings or get_settings()
    if settings.enrich_backend == "gemini":
        from tender_pipeline.enrich.gemini import GeminiEnricher

        return GeminiEnricher(settings)
    from tender_pipeline.enrich.offline import OfflineEnricher

    return OfflineEnricher.from_settings(settings)
