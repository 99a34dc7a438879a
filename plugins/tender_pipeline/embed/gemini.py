"""Gemini embeddings: implemented in the Gemini backends issue."""

from __future__ import annotations

from tender_pipeline.settings import Settings


class GeminiEmbedder:
    """Placeholder that refuses clearly until the Gemini backend lands."""

    def __init__(self, settings: Settings) -> None:
        raise RuntimeError(
            "EMBED_BACKEND=gemini is not available yet; unset GEMINI_API_KEY or set EMBED_BACKEND=local"
        )
