"""Retries for transient Gemini failures: 408, 429, 5xx and dropped connections.

Why not the SDK's ``HttpRetryOptions``: it retries the same status codes with
exponential backoff and jitter (we keep those semantics and defaults), but it
ignores ``Retry-After`` and Google's ``RetryInfo.retryDelay``, its retries
bypass our rate limiter, and it cannot count them for the run summary. So the
SDK is told not to retry and this tenacity loop (the same library the SDK
uses) wraps each request instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from google.genai import errors

from tender_pipeline.retry_after import parse_retry_after
from tender_pipeline.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})  # the SDK's own default list
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _transient_transport() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [TimeoutError, ConnectionError]
    try:
        import httpx

        kinds.append(httpx.TransportError)
    except ImportError:  # pragma: no cover - httpx is a google-genai dependency
        pass
    try:
        import aiohttp

        kinds.extend([aiohttp.ClientConnectionError, aiohttp.ClientPayloadError])
    except ImportError:  # pragma: no cover - aiohttp is optional for the SDK
        pass
    return tuple(kinds)


TRANSPORT_ERRORS = _transient_transport()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; defaults mirror the SDK's (1 s, ×2, ≤60 s, 1 s jitter)."""

    max_retries: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0
    jitter_s: float = 1.0
    exp_base: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_retries=settings.gemini_max_retries,
            initial_s=settings.gemini_retry_initial_s,
            max_s=settings.gemini_retry_max_s,
            jitter_s=settings.gemini_retry_jitter_s,
        )


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.APIError):
        return exc.code in RETRYABLE_CODES
    return isinstance(exc, TRANSPORT_ERRORS)


def retry_after_s(exc: BaseException) -> float | None:
    """The server's requested wait: the Retry-After header, else RetryInfo.retryDelay in the body."""
    if not isinstance(exc, errors.APIError):
        return None
    headers = getattr(exc.response, "headers", None)
    wait = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
    if wait is not None:
        return wait
    details = exc.details.get("error", exc.details) if isinstance(exc.details, dict) else {}
    for item in details.get("details", []) if isinstance(details, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            m = _DURATION.match(str(item.get("retryDelay", "")))
            if m:
                return float(m.group(1))
    return None


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than what the server asked for (capped)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = tenacity.wait_exponential_jitter(
            initial=policy.initial_s, max=policy.max_s, exp_base=policy.exp_base, jitter=policy.jitter_s
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = retry_after_s(exc) if exc is not None else None
        if hint is not None:
            wait = max(wait, min(hint, self.policy.max_s))
        return wait


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    on_retry: Callable[[BaseException, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``attempt()`` until it succeeds, a non-retryable error occurs, or retries run out (re-raises)."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("Gemini call failed (%s); retry %d/%d in %.2fs",
                 describe_error(exc), state.attempt_number, policy.max_retries, wait)
        if on_retry is not None and exc is not None:
            on_retry(exc, wait)

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.max_retries + 1),
        wait=_WaitRetryAfter(policy),
        retry=tenacity.retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )

    async def once() -> T:  # tenacity awaits only coroutine functions, not lambdas returning coroutines
        return await attempt()

    return await retrying(once)


def describe_error(exc: BaseException | None) -> str:
    """A short, key-free description (status code and name, or the exception type)."""
    if isinstance(exc, errors.APIError):
        return f"HTTP {exc.code} {exc.status or ''}".strip()
    return type(exc).__name__ if exc is not None else "unknown"

