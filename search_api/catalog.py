"""Collection-wide facts Chroma cannot aggregate for us: counts per sector/country, buyers, last ingest.

Open-source Chroma has no group-by, so we page through the metadata once and
cache the result for ``stats_ttl_s``; after that a stale cache is served while
one background thread refreshes it, so no request pays for the scan twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

log = logging.getLogger(__name__)
PAGE = 5000


@dataclass
class Facts:
    documents: int = 0
    last_ingest_ts: int = 0
    sectors: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    procurement_types: Counter = field(default_factory=Counter)
    buyer_keys: list[str] = field(default_factory=list)
    computed_at: float = 0.0

    def facets(self) -> dict[str, list[str]]:
        return {"sectors": list(self.sectors), "procurement_types": list(self.procurement_types),
                "buyer_keys": self.buyer_keys}

    @property
    def last_ingest(self) -> str | None:
        if not self.last_ingest_ts:
            return None
        return datetime.fromtimestamp(self.last_ingest_ts, UTC).isoformat(timespec="seconds")


def scan(collection) -> Facts:
    """Read every record's metadata (no vectors, no documents) page by page."""
    facts = Facts()
    buyers: set[str] = set()
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        metas = got.get("metadatas") or []
        for meta in metas:
            meta = meta or {}
            facts.documents += 1
            facts.sectors[meta.get("sector") or "Unknown"] += 1
            facts.countries[meta.get("country") or "Unknown"] += 1
            facts.procurement_types[meta.get("procurement_type") or "Unknown"] += 1
            if meta.get("buyer_key"):
                buyers.add(meta["buyer_key"])
            facts.last_ingest_ts = max(facts.last_ingest_ts, int(meta.get("ingested_ts") or 0))
        if len(metas) < PAGE:
            break
        offset += PAGE
    facts.buyer_keys = sorted(buyers)
    facts.computed_at = time.time()
    return facts


class Catalog:
    """Cached ``Facts`` with stale-while-refresh."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._facts: Facts | None = None
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self, collection) -> Facts:
        facts = self._facts
        if facts is None:
            with self._lock:
                if self._facts is None:
                    self._facts = scan(collection)
                return self._facts
        if time.time() - facts.computed_at > self.ttl_s:
            self._refresh_in_background(collection)
        return facts

    def invalidate(self) -> None:
        self._facts = None

    def _refresh_in_background(self, collection) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def work() -> None:
            try:
                self._facts = scan(collection)
            except Exception as exc:  # keep serving the old facts
                log.warning("catalog refresh failed: %s", exc)
            finally:
                self._refreshing = False

        threading.Thread(target=work, name="catalog-refresh", daemon=True).start()
