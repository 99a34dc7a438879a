"""Building the google-genai client and running its async API from sync callers.

A new client per run: the SDK's aiohttp session is bound to the event loop
that created it, and each sync call runs its own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from google import genai
from google.genai import types

from tender_pipeline.settings import Settings

T = TypeVar("T")


class GeminiConfigError(RuntimeError):
    """The configuration cannot work (no key, key rejected, unknown model): retrying will not help."""


class GeminiUnavailableError(RuntimeError):
    """Gemini kept failing after every retry; the task should fail (and Airflow retry it) rather than fake results."""


def make_client(settings: Settings) -> genai.Client:
    """An SDK client for the configured endpoint, with the SDK's own retries switched off.

    ``HttpRetryOptions(attempts=1)`` also disables the SDK's hidden 1–10 s
    reconnect retry: ``gemini.retry`` owns every retry so each attempt passes
    the rate limiter, is counted, and honours Retry-After.
    """
    if settings.gemini_api_key is None or not settings.gemini_api_key.get_secret_value():
        raise GeminiConfigError("GEMINI_API_KEY is not set; set it or choose the local backends "
                                "(ENRICH_BACKEND=local, EMBED_BACKEND=local)")
    options = types.HttpOptions(
        timeout=int(settings.gemini_timeout_s * 1000),  # the SDK takes milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    if settings.gemini_base_url:
        options.base_url = settings.gemini_base_url
    if settings.gemini_api_version:
        options.api_version = settings.gemini_api_version
    return genai.Client(api_key=settings.gemini_api_key.get_secret_value(), http_options=options)


def redact(text: str, settings: Settings) -> str:
    """``text`` with the API key masked, for messages that quote server or library output."""
    key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else ""
    return text.replace(key, "***") if key else text


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop is already running.

    Inside a running loop (FastAPI, notebooks) ``asyncio.run`` would raise, so
    the coroutine gets its own loop in a worker thread and we block on it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gemini-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]
