"""Gemini enrichment: implemented in the Gemini backends issue."""

from __future__ import annotations

from tender_pipeline.settings import Settings


class GeminiEnricher:
    """Placeholder that refuses clearly until the Gemini backend lands."""

    name = "gemini"

    def __init__(self, settings: Settings) -> None:
        raise RuntimeError(
            "ENRICH_BACKEND=gemini is not available yet; unset GEMINI_API_KEY or set ENRICH_BACKEND=local"
        )
