"""The alerts' batch search (BatchSearch) against the real sample index: a big batch loses no matches.

A batch with more notices than SEARCH_EXHAUSTIVE_MAX used to go through one
search whose ids filter took the broad-filter path: the collection-wide nearest
vectors (capped by SEARCH_MAX_OVERFETCH) plus the BM25 top notices, so at scale
(a 20,000-notice batch, a million indexed) most of a batch's matches were never
candidates and never sent. The scale is reproduced on the 240-notice sample by
shrinking the caps: the batch is 12 times SEARCH_EXHAUSTIVE_MAX and the fetch
caps are a fraction of the collection.
"""

from __future__ import annotations

import pytest

from search_api.alerts.evaluate import BatchSearch
from search_api.settings import ApiSettings
from tests.batches import SAMPLE, read_rows

SCALED = {"search_exhaustive_max": 10, "search_candidates": 10, "search_max_overfetch": 10,
          "search_lexical_candidates": 5}


@pytest.fixture(scope="module")
def batch() -> list[str]:
    return [r["tender_id"] for r in read_rows(SAMPLE)][::2]  # 120 of the 240 indexed notices


@pytest.mark.parametrize("query", ["school", "vehicles", "supply"])
def test_a_batch_larger_than_the_exhaustive_limit_finds_the_same_matches(indexed_sample, batch, query):
    whole = BatchSearch(ApiSettings(**indexed_sample, embed_backend="local"))  # 120 <= 1000: one exhaustive search
    scaled = BatchSearch(ApiSettings(**indexed_sample, embed_backend="local", **SCALED))
    expected = whole.matches({"q": query}, batch)
    found = scaled.matches({"q": query}, batch)
    assert len(expected) >= 10  # enough matches that the scaled caps could drop some
    assert {c["id"] for c, _ in found} == {c["id"] for c, _ in expected}
    assert {c["id"] for c, _ in found} <= set(batch)
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= scaled.settings.alert_min_score


def test_the_per_search_cap_keeps_the_best_matches_across_slices(indexed_sample, batch):
    capped = BatchSearch(ApiSettings(**indexed_sample, embed_backend="local", alert_max_per_search=4, **SCALED))
    every = BatchSearch(ApiSettings(**indexed_sample, embed_backend="local")).matches({"q": "supply"}, batch)
    best = capped.matches({"q": "supply"}, batch)
    assert len(best) == 4
    assert [s for _, s in best] == [s for _, s in every[:4]]
