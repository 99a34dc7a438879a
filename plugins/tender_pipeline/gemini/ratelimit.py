"""Requests-per-minute and tokens-per-minute budgets for one process.

Two token buckets refilled continuously; a caller reserves its share first and
then sleeps off any deficit, so concurrent coroutines queue fairly without
holding a lock across ``await``. A threading lock guards the bookkeeping so one
limiter can be shared by sync callers running their own loops in threads.
Across processes and concurrent DAG runs the Airflow pool ``gemini_api`` is the bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` (may go negative) and return the seconds until the balance is non-negative."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= min(amount, self.capacity)
        return max(0.0, -self.level / self.rate)


class RateLimiter:
    """Blocks callers just long enough to stay within ``rpm`` requests and ``tpm`` tokens per minute."""

    def __init__(self, rpm: int, tpm: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._requests = _Bucket(rpm, now)
        self._tokens = _Bucket(tpm, now)
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def reserve(self, tokens: int) -> float:
        """Book one request of about ``tokens`` tokens; returns how long the caller must wait first."""
        with self._lock:
            now = self._clock()
            wait = max(self._requests.reserve(1, now), self._tokens.reserve(tokens, now))
            self.waited_s += wait
            return wait

    async def acquire(self, tokens: int) -> float:
        wait = self.reserve(tokens)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
