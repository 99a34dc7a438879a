"""How many notices pass a set of filters, estimated at a cost that does not grow with the index.

A count walks every match (2-8 ms at 1M for open_only or a value floor, growing with the collection); an
estimate multiplies document frequencies for the terms and the shares of a cached ``Distribution`` for the
ranges. Callers count exactly when the estimate is small (a count is cheap when few notices match).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import tantivy

from tender_pipeline.lexical.filters import Filters, buyer_words, closing_bounds, filter_terms, value_bounds

DISTRIBUTION_TTL_S = 300.0  # the cached spread of closing dates and values is refreshed at least this often
_EDGES = [0.0] + [10 ** (e / 4) for e in range(0, 49)]  # value buckets: unknown (< 0), [0, 1), four a decade to 10^12
VALUE_RANGES = ([{"to": 0.0}] + [{"from": a, "to": b} for a, b in zip(_EDGES, _EDGES[1:], strict=False)]
                + [{"from": _EDGES[-1]}])


@dataclass
class Distribution:
    """How the notices of one index version spread over the range-filtered fields: the number per closing date
    (exact) and per value bucket (four a decade). With document frequencies it estimates how many notices pass
    a set of filters without counting them: a count walks every match (2-8 ms at 1M for open_only or a value
    floor, growing with the collection)."""

    docs: int
    closing: dict[int, int]
    values: dict[str, list[tuple[float, float, int]]]  # field -> (from, to, count); -inf/inf at the ends

    def closing_share(self, lower: int | None, upper: int | None) -> float:
        lo, hi = lower if lower is not None else -1, upper if upper is not None else 1 << 62
        return sum(n for day, n in self.closing.items() if lo <= day <= hi) / max(self.docs, 1)

    def value_share(self, field: str, lower: float | None, upper: float | None) -> float:
        lo = lower if lower is not None else -math.inf
        hi = upper if upper is not None else math.inf
        got = 0.0
        for a, b, n in self.values.get(field, []):
            if b <= lo or a >= hi or n == 0:
                continue
            if a >= lo and b <= hi or math.isinf(a) or math.isinf(b):
                got += n  # wholly inside (an open-ended bucket counts whole: an over-estimate is safe)
            else:
                got += n * (min(b, hi) - max(a, lo)) / (b - a)
        return got / max(self.docs, 1)


class Distributions:
    """The ``Distribution`` of an index, aggregated once per index version (35 ms at 1M) and refreshed when
    the number of notices changes or after ``DISTRIBUTION_TTL_S``; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], float, Distribution] | None = None

    def of(self, searcher) -> Distribution:
        key = (searcher.num_docs, searcher.num_segments)
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == key and time.monotonic() - cached[1] < DISTRIBUTION_TTL_S:
                return cached[2]
        aggs: dict[str, Any] = {"closing_num": {"terms": {"field": "closing_num", "size": 100_000}}}
        aggs.update({name: {"range": {"field": name, "ranges": VALUE_RANGES}} for name in ("value_amount",
                                                                                          "value_report")})
        got = searcher.aggregate(tantivy.Query.all_query(), aggs) if searcher.num_docs else {}
        closing = {int(b["key"]): int(b["doc_count"]) for b in (got.get("closing_num") or {}).get("buckets", [])}
        values = {name: [(float(b.get("from", -math.inf)), float(b.get("to", math.inf)), int(b["doc_count"]))
                         for b in (got.get(name) or {}).get("buckets", [])]
                  for name in ("value_amount", "value_report")}
        found = Distribution(searcher.num_docs, closing, values)
        with self._lock:
            self._cached = (key, time.monotonic(), found)
        return found


def estimate(f: Filters, searcher, distributions: Distributions) -> int:
    """About how many notices pass ``f``: document frequencies for the terms, the cached ``Distribution``
    for the ranges, the filters taken as independent."""
    n = searcher.num_docs
    if n == 0:
        return 0
    share = 1.0
    for name, value in filter_terms(f):
        share *= min(1.0, searcher.doc_freq(name, value) / n)
    if f.buyer:  # words of one name go together: the rarest bounds it
        share *= min(min(1.0, searcher.doc_freq("buyer_words", w) / n) for w in buyer_words(f.buyer))
    if (closing := closing_bounds(f)) is not None:
        share *= distributions.of(searcher).closing_share(*closing)
    if (bounds := value_bounds(f)) is not None:
        share *= distributions.of(searcher).value_share(f.value_field, *bounds)
    if f.ids is not None:
        share = min(share, len(f.ids) / n)
    # exclude_corrigendum is taken as passing every notice (corrigenda are a small share): an over-estimate
    # only narrows the kNN over-fetch
    return math.ceil(n * share)
