"""Gemini embeddings: RETRIEVAL_DOCUMENT / RETRIEVAL_QUERY vectors, batched, retried, budgeted.

``gemini-embedding-001`` is asymmetric, so documents and queries use different
task types. Output is truncated (Matryoshka) to ``GEMINI_EMBED_DIM`` and
L2-normalised here, since the API only normalises at its full 3072 size.
When the API keeps failing we raise: no mock or zero vectors are ever
substituted, because they would silently corrupt the index.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from google import genai
from google.genai import errors, types

from tender_pipeline.embed.unit_vectors import l2_normalize
from tender_pipeline.gemini.client import (
    GeminiConfigError,
    GeminiUnavailableError,
    make_client,
    redact,
    run_sync,
)
from tender_pipeline.gemini.prompt import estimate_tokens
from tender_pipeline.gemini.ratelimit import RateLimiter
from tender_pipeline.gemini.retry import TRANSPORT_ERRORS, RetryPolicy, call_with_retries, describe_error
from tender_pipeline.gemini.usage import UsageMeter
from tender_pipeline.settings import Settings

log = logging.getLogger(__name__)

DOCUMENT = "RETRIEVAL_DOCUMENT"
QUERY = "RETRIEVAL_QUERY"


class GeminiEmbedder:
    """Embedder protocol on the Gemini API; ``model_id`` names model and dimension for the collection check."""

    def __init__(self, settings: Settings) -> None:
        if settings.gemini_api_key is None or not settings.gemini_api_key.get_secret_value():
            raise GeminiConfigError("EMBED_BACKEND=gemini needs GEMINI_API_KEY; set it or use EMBED_BACKEND=local")
        self.settings = settings
        self.model = settings.gemini_embed_model
        self.dim = settings.gemini_embed_dim
        self.model_id = f"gemini:{self.model}:{self.dim}"
        self.batch_size = min(settings.gemini_embed_batch_size, 100)
        self.policy = RetryPolicy.from_settings(settings)
        self.limiter = RateLimiter(settings.gemini_rpm, settings.gemini_tpm)
        self.meter = UsageMeter(settings, kind="embed")

    def __repr__(self) -> str:
        return f"GeminiEmbedder(model_id={self.model_id!r})"

    def usage(self) -> dict[str, float]:
        return self.meter.snapshot()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, DOCUMENT)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, QUERY)

    def _embed(self, texts: list[str], task_type: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        blank = [i for i, t in enumerate(texts) if not t or not t.strip()]
        if blank:
            raise ValueError(f"cannot embed empty text (positions {blank[:5]}); the API rejects it")
        vectors = run_sync(lambda: self._embed_async(list(texts), task_type))
        self.meter.add(texts=len(texts))
        return l2_normalize(vectors)

    async def _embed_async(self, texts: list[str], task_type: str) -> np.ndarray:
        client = make_client(self.settings)
        semaphore = asyncio.Semaphore(self.settings.gemini_max_concurrency)
        chunks = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        try:
            parts = await asyncio.gather(*(self._chunk(client, semaphore, c, task_type) for c in chunks))
        finally:
            await client.aio.aclose()
        return np.vstack(parts).astype(np.float32)

    async def _chunk(self, client: genai.Client, semaphore: asyncio.Semaphore, texts: list[str],
                     task_type: str) -> np.ndarray:
        estimate = sum(estimate_tokens(t) for t in texts)
        config = types.EmbedContentConfig(task_type=task_type, output_dimensionality=self.dim)

        async def attempt() -> types.EmbedContentResponse:
            self.meter.add(rate_limit_wait_s=await self.limiter.acquire(estimate))
            try:
                response = await client.aio.models.embed_content(model=self.model, contents=texts, config=config)
            except Exception:
                self.meter.add(requests=1, failed_requests=1)
                raise
            self.meter.add_response(response.usage_metadata, estimate)
            return response

        async with semaphore:
            try:
                response = await call_with_retries(attempt, self.policy,
                                                   on_retry=lambda exc, wait: self.meter.add(retries=1))
            except errors.APIError as exc:
                if exc.code in (401, 403, 404):
                    raise GeminiConfigError(redact(
                        f"Gemini embeddings refused (HTTP {exc.code} {exc.status}): {exc.message}; "
                        "check GEMINI_API_KEY, GEMINI_EMBED_MODEL and GEMINI_BASE_URL", self.settings)) from None
                raise GeminiUnavailableError(redact(
                    f"Gemini embeddings failed ({describe_error(exc)}: {exc.message}) after "
                    f"{self.policy.max_retries} retries; no substitute vectors are used", self.settings)) from None
            except TRANSPORT_ERRORS as exc:
                raise GeminiUnavailableError(
                    f"Gemini embeddings unreachable ({describe_error(exc)}) after {self.policy.max_retries} retries"
                ) from None
        embeddings = response.embeddings or []
        if len(embeddings) != len(texts):
            raise GeminiUnavailableError(f"Gemini returned {len(embeddings)} embeddings for {len(texts)} texts")
        matrix = np.asarray([e.values or [] for e in embeddings], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise GeminiUnavailableError(
                f"Gemini returned vectors of shape {matrix.shape}, expected (*, {self.dim}); "
                "does the model support output_dimensionality?")
        return matrix
