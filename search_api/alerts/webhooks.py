"""Signed webhook POSTs with retries.

The body is JSON; ``X-Tender-Signature: sha256=<hex>`` is the HMAC-SHA256 of
the exact body bytes under the saved search's webhook secret (returned once,
when the search was created), so a receiver can verify the sender and that
nothing was altered. ``X-Tender-Delivery`` stays the same across retries so a
receiver can drop a duplicate. 5xx, 408, 429 and connection errors are retried
with exponential backoff (tenacity); any other status gives up at once.
Redirects are not followed (a redirect could lead anywhere). Given
``address``, the request connects there — the address the URL check approved —
with the URL's host still in the Host header and TLS SNI, and the certificate
still verified for that host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

SIGNATURE_HEADER = "X-Tender-Signature"
DELIVERY_HEADER = "X-Tender-Delivery"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (constant-time compare); used by our tests."""
    return hmac.compare_digest(sign(secret, body), header or "")


class _Retryable(Exception):
    pass


@dataclass
class PostResult:
    ok: bool
    attempts: int
    reason: str = ""


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def post(url: str, payload: dict, *, secret: str, delivery_id: str, attempts: int, backoff_s: float,
         timeout_s: float, client: httpx.Client | None = None, address: str | None = None) -> PostResult:
    """POST ``payload`` until a 2xx or ``attempts`` are spent; never raises for HTTP trouble."""
    body = encode(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "tender-search-alerts/1",
               SIGNATURE_HEADER: sign(secret, body), DELIVERY_HEADER: delivery_id}
    target, extensions = httpx.URL(url), {}
    if address:  # connect to the checked address; the host stays in Host and SNI
        headers["Host"] = target.netloc.decode("ascii")
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        target = target.copy_with(host=address)
    own = client is None
    client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    made = 0

    def once() -> PostResult:
        nonlocal made
        made += 1
        try:
            resp = client.post(target, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if 200 <= resp.status_code < 300:
            return PostResult(True, made)
        reason = f"HTTP {resp.status_code} from {httpx.URL(url).host}"
        if resp.status_code in RETRY_STATUSES:
            raise _Retryable(reason)
        return PostResult(False, made, reason)

    try:
        for attempt in Retrying(stop=stop_after_attempt(attempts),
                                wait=wait_exponential(multiplier=backoff_s, max=60),
                                retry=retry_if_exception_type(_Retryable), reraise=False):
            with attempt:
                result = once()
        return result
    except RetryError as exc:
        last = exc.last_attempt.exception()
        return PostResult(False, made, f"gave up after {made} attempts: {last}")
    finally:
        if own:
            client.close()
