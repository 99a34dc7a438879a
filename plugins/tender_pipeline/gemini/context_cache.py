"""Model-side context cache for the (long, constant) system instruction.

Cached input tokens are billed at a fraction of the normal rate, so when the
instruction reaches the model's caching minimum and a run makes more than one
request, we store it once per run and reference it from every request. If the
cache cannot be created (proxy without the endpoint, model without caching),
requests simply carry the instruction inline: caching is an optimisation,
never a reason to fail.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from google import genai
from google.genai import errors, types

from tender_pipeline.gemini.prompt import estimate_tokens
from tender_pipeline.gemini.retry import TRANSPORT_ERRORS, describe_error
from tender_pipeline.gemini.usage import UsageMeter
from tender_pipeline.settings import Settings

# a tuple, so that mypy reads the except clauses (it cannot follow a starred tuple there)
CACHE_ERRORS: tuple[type[BaseException], ...] = (errors.APIError, *TRANSPORT_ERRORS)

log = logging.getLogger(__name__)


class InstructionCache:
    """Either a cached-content name or the inline instruction, whichever the run can use."""

    def __init__(self, client: genai.Client, settings: Settings, model: str, instruction: str,
                 meter: UsageMeter) -> None:
        self.client = client
        self.settings = settings
        self.model = model
        self.instruction = instruction
        self.meter = meter
        self.name: str | None = None
        self._tokens = 0
        self._opened = 0.0

    def worth_caching(self, planned_requests: int) -> bool:
        return (self.settings.gemini_context_cache and planned_requests > 1
                and estimate_tokens(self.instruction) >= self.settings.gemini_cache_min_tokens)

    async def open(self, planned_requests: int) -> None:
        if not self.worth_caching(planned_requests):
            return
        try:
            cache = await self.client.aio.caches.create(
                model=self.model,
                config=types.CreateCachedContentConfig(
                    system_instruction=self.instruction,
                    ttl=f"{self.settings.gemini_cache_ttl_s}s",
                    display_name="tender-enrich-instruction",
                ),
            )
        except CACHE_ERRORS as exc:
            log.warning("context cache unavailable (%s); sending the instruction inline", describe_error(exc))
            self.meter.add(context_cache_failures=1)
            return
        self.name = cache.name
        usage = cache.usage_metadata
        self._tokens = int(getattr(usage, "total_token_count", 0) or 0) or estimate_tokens(self.instruction)
        self._opened = time.monotonic()
        self.meter.add(context_caches=1)
        log.info("context cache %s holds the system instruction (%d tokens)", self.name, self._tokens)

    def config(self) -> dict[str, Any]:
        """GenerateContentConfig arguments for the instruction."""
        if self.name:
            return {"cached_content": self.name}
        return {"system_instruction": self.instruction}

    def drop(self) -> None:
        """Stop using the cache (it expired or was rejected); later requests go inline."""
        if self.name:
            log.warning("context cache %s rejected; sending the instruction inline", self.name)
            self.name = None

    async def close(self) -> None:
        """Delete the cache now rather than paying storage until the TTL runs out."""
        if self._opened:
            self.meter.add_cache_storage(self._tokens, time.monotonic() - self._opened)
            self._opened = 0.0
        if not self.name:
            return
        name, self.name = self.name, None
        try:
            await self.client.aio.caches.delete(name=name)
        except CACHE_ERRORS as exc:
            log.warning("could not delete context cache %s (%s); it expires by TTL", name, describe_error(exc))

