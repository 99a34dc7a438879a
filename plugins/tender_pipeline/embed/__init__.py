"""Embedding backends: one interface, a local model by default, Gemini when configured.

The local model is all-MiniLM-L6-v2 on ONNX Runtime (``LOCAL_EMBEDDER=onnx``,
the default: no torch at run time) or on sentence-transformers
(``LOCAL_EMBEDDER=torch``, needs requirements-torch.txt). Their vectors differ
slightly, so they record different model ids on the collection.

Every backend returns L2-normalised float32 rows, so cosine similarity in
Chroma equals the dot product and scores are comparable across calls.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

import numpy as np

from tender_pipeline.embed.unit_vectors import l2_normalize as l2_normalize  # the backends' helper
from tender_pipeline.settings import Settings, get_settings


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; documents and queries may be embedded differently."""

    model_id: str  # recorded on the collection so vector spaces never mix
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


def build_embedder(settings: Settings) -> Embedder:
    """A new embedder for the configured backend."""
    if settings.embed_backend == "gemini":
        from tender_pipeline.embed.gemini import GeminiEmbedder

        return GeminiEmbedder(settings)
    if settings.local_embedder == "torch":
        from tender_pipeline.embed.local import LocalEmbedder

        return LocalEmbedder(batch_size=settings.local_embed_batch_size, device=settings.embed_device,
                             threads=settings.embed_threads)
    from tender_pipeline.embed.onnx_runtime import OnnxEmbedder

    return OnnxEmbedder(settings.onnx_model_dir or None, batch_size=settings.local_embed_batch_size,
                        threads=settings.embed_threads, batch_tokens=settings.local_embed_batch_tokens)


_CACHE: dict[tuple, Embedder] = {}
_LOCK = threading.Lock()


def get_embedder(settings: Settings | None = None) -> Embedder:
    """Process-wide embedder (model loading is the slow part; do it once per process)."""
    settings = settings or get_settings()
    key = (
        settings.embed_backend, settings.gemini_embed_model, settings.gemini_embed_dim,
        settings.gemini_base_url, settings.local_embed_batch_size, settings.embed_device,
        settings.local_embedder, settings.embed_threads, settings.onnx_model_dir,
        settings.local_embed_batch_tokens,
    )
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build_embedder(settings)
        return _CACHE[key]
