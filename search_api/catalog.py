"""Collection-wide facts for /stats and /sectors: counts per sector/country/type, document count, last ingest.

Open-source Chroma has no group-by, so these come from the lexical index's
aggregations over its fast fields (no scan of Chroma, no stored document read;
``bench/sector_counts.py`` measures them at scale). They are computed once per
index version: a request compares the index's ``generation()`` (a stat of its
``meta.json``) with the one the facts were computed from, and when the writer
committed (or a follower copied) a new version, or after ``stats_ttl_s``, the
stale facts are served while one background thread aggregates the new ones.
So a request never pays for the aggregation, except the very first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tender_pipeline.lexical import LexicalIndex

log = logging.getLogger(__name__)


@dataclass
class Facts:
    documents: int = 0
    last_ingest_ts: int = 0
    sectors: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    procurement_types: Counter = field(default_factory=Counter)
    sector_codes: dict[str, str] = field(default_factory=dict)  # sector label -> CPV division ('' if none)
    computed_at: float = 0.0
    generation: tuple = ()  # the index version they were aggregated from (``LexicalIndex.generation``)

    @property
    def last_ingest(self) -> str | None:
        if not self.last_ingest_ts:
            return None
        return datetime.fromtimestamp(self.last_ingest_ts, UTC).isoformat(timespec="seconds")


def scan(index: LexicalIndex) -> Facts:
    """Aggregate the index (terms and max aggregations; no stored document is read). The version is read
    before the reader is reloaded, so the facts are of that version or a newer one (then the next request
    sees another generation and aggregates again)."""
    generation = index.generation()
    index.reload()
    got = index.facets()
    return Facts(documents=got["documents"], last_ingest_ts=got["last_ingest_ts"],
                 sectors=Counter(got["sector"]), countries=Counter(got["country"]),
                 procurement_types=Counter(got["procurement_type"]), sector_codes=got.get("sector_codes", {}),
                 computed_at=time.time(), generation=generation)


class Catalog:
    """``Facts`` cached per index version, with stale-while-refresh."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._facts: Facts | None = None
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self, index: LexicalIndex) -> Facts:
        facts = self._facts
        if facts is None:
            with self._lock:
                if self._facts is None:
                    self._facts = scan(index)
                return self._facts
        if facts.generation != index.generation() or time.time() - facts.computed_at > self.ttl_s:
            self._refresh_in_background(index)
        return facts

    def invalidate(self) -> None:
        self._facts = None

    def _refresh_in_background(self, index: LexicalIndex) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def work() -> None:
            try:
                self._facts = scan(index)
            except Exception as exc:  # keep serving the old facts
                log.warning("catalog refresh failed: %s", exc)
            finally:
                self._refreshing = False

        threading.Thread(target=work, name="catalog-refresh", daemon=True).start()
