"""The ``Retry-After`` header (RFC 9110): seconds, or an HTTP date, as seconds to wait."""

from __future__ import annotations

import email.utils
import time


def parse_retry_after(value: str | None) -> float | None:
    """Seconds the server asked us to wait (never negative); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
