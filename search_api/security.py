"""Public-facing hardening: request size limits, per-client rate limiting and security headers.

Plain ASGI middlewares (no per-route decorators), so every route — including
ones added later — gets the same protection. Rate limits use the ``limits``
library: ``memory://`` keeps counts per process; ``redis://host:6379`` shares
them between replicas.
"""

from __future__ import annotations

import json
import math
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The web page loads only its own files: no inline script, no third-party origin.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages are inline HTML that load Swagger/ReDoc from a CDN; they get
# no script policy (they show only our own OpenAPI document) but still may not be framed.
DOCS_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # queries sit in URLs; tender sites need not see them
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# Probes and scrapes are never rate limited: an orchestrator must always see the truth.
UNLIMITED_PATHS = ("/health", "/ready", "/metrics", "/static/", "/favicon")


async def _send_json(send: Send, status: int, error: str, detail: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds CSP and the usual hardening headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else PAGE_CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", csp.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestLimits:
    """413 for bodies over ``max_body`` bytes (declared or streamed), 414 for long query strings.

    Checked before the body is read, and while it streams in, so an oversized
    request never sits in memory.
    """

    def __init__(self, app: ASGIApp, max_body: int, max_query: int) -> None:
        self.app, self.max_body, self.max_query = app, max_body, max_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await _send_json(send, 414, "uri_too_long",
                             f"query string longer than {self.max_query} bytes (MAX_QUERY_BYTES)")
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, "bad_request", "invalid Content-Length header")
                return
            if int(declared) > self.max_body:
                await _send_json(send, 413, "payload_too_large",
                                 f"request body larger than {self.max_body} bytes (MAX_BODY_BYTES)")
                return
        received = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # chunked upload without a Content-Length
                    # HTTPException passes through FastAPI's body parsing to our JSON error handler
                    raise HTTPException(413, f"request body larger than {limit} bytes (MAX_BODY_BYTES)")
            return message

        await self.app(scope, counted, send)


class RateLimit:
    """Per-client-address request limit; over it: 429 with ``Retry-After`` in seconds."""

    def __init__(self, app: ASGIApp, limit: str, storage_uri: str = "memory://") -> None:
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.app = app
        self.item = parse(limit)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]  # the real client behind a proxy: uvicorn --proxy-headers
        if not self.limiter.hit(self.item, "search-api", client):
            reset = self.limiter.get_window_stats(self.item, "search-api", client).reset_time
            retry_after = max(1, math.ceil(reset - time.time()))
            await _send_json(send, 429, "rate_limited",
                             f"more than {self.item} requests from this address; retry in {retry_after} s",
                             [(b"retry-after", str(retry_after).encode())])
            return
        await self.app(scope, receive, send)
