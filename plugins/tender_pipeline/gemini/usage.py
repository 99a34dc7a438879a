"""Per-run counters and cost estimate from the responses' usage metadata.

Prices are per million tokens and come from settings, so a price change is a
config change. Input tokens include cached tokens (as the API reports them);
the cached part is billed at the cached rate.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from tender_pipeline.settings import Settings


class UsageMeter:
    """Thread-safe counters; ``snapshot()`` is what ``usage()`` returns to the run summary."""

    def __init__(self, settings: Settings, kind: str = "generate") -> None:
        self.kind = kind  # "generate" or "embed": decides which prices apply
        self._prices = {
            "input": settings.gemini_price_input_per_m,
            "output": settings.gemini_price_output_per_m,
            "cached": settings.gemini_price_cached_input_per_m,
            "embed": settings.gemini_price_embed_per_m,
            "storage": settings.gemini_price_cache_storage_per_m_hour,
        }
        self._counts: defaultdict[str, float] = defaultdict(float)  # token counts, costs and waits
        self._lock = threading.Lock()

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                self._counts[name] += value

    def merge(self, other: UsageMeter) -> None:
        """Add another meter's counts (a per-request meter folded into the process total)."""
        with other._lock:
            counts = dict(other._counts)
        self.add(**counts)

    def add_response(self, usage: Any, estimated_input_tokens: int = 0) -> None:
        """Count one successful request; fall back to our estimate when the server reports no usage."""
        prompt = int(getattr(usage, "prompt_token_count", None) or 0) if usage is not None else 0
        output = 0
        cached = 0
        if usage is not None:
            output = int(getattr(usage, "candidates_token_count", None) or 0)
            output += int(getattr(usage, "thoughts_token_count", None) or 0)  # billed as output
            cached = int(getattr(usage, "cached_content_token_count", None) or 0)
        estimated = 0
        if not prompt:
            prompt, estimated = estimated_input_tokens, estimated_input_tokens
        self.add(requests=1, input_tokens=prompt, output_tokens=output, cached_tokens=cached,
                 estimated_tokens=estimated)

    def add_cache_storage(self, tokens: int, seconds: float) -> None:
        self.add(context_cache_token_hours=tokens * seconds / 3600.0)

    def cost_usd(self) -> float:
        with self._lock:
            c = dict(self._counts)
        p = self._prices
        per_m = 1_000_000.0
        if self.kind == "embed":
            return c.get("input_tokens", 0) * p["embed"] / per_m
        uncached = max(0.0, c.get("input_tokens", 0) - c.get("cached_tokens", 0))
        return (uncached * p["input"] + c.get("cached_tokens", 0) * p["cached"]
                + c.get("output_tokens", 0) * p["output"]
                + c.get("context_cache_token_hours", 0) * p["storage"]) / per_m

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {
                name: float(self._counts.get(name, 0))
                for name in ("requests", "failed_requests", "input_tokens", "output_tokens", "cached_tokens",
                             "retries", "rate_limit_wait_s")
            }
            out.update({k: float(v) for k, v in self._counts.items()})
        out["estimated_cost_usd"] = round(self.cost_usd(), 9)
        return out
