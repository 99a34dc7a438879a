"""Shared plumbing for the Gemini backends (enrichment and embeddings).

Small modules, one job each: ``client`` builds the SDK client and runs async
work from sync code, ``retry`` retries transient failures honouring
Retry-After, ``ratelimit`` keeps requests and tokens under per-minute budgets,
``usage`` counts requests, tokens and cost, ``cache`` persists enrichment
results, ``prompt`` holds the versioned prompt and response schema, and
``context_cache`` manages the model-side cache of the system instruction.
"""

from tender_pipeline.gemini.client import GeminiConfigError, GeminiUnavailableError

__all__ = ["GeminiConfigError", "GeminiUnavailableError"]
