"""What keeps the lexical index's cost flat as it grows: filter estimates instead of counts, and common
words looked up in titles only. Small indexes here, with the thresholds scaled down to them."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

import tender_pipeline.lexical.evidence as evidence_module
import tender_pipeline.lexical.queries as queries_module
from search_api.search import COUNT_BELOW, Searcher
from tender_pipeline.lexical import Filters, LexicalIndex
from tests.test_lexical import meta

COUNTRIES = ["Ghana"] * 6 + ["Kenya"] * 3 + ["Peru"]


@pytest.fixture(scope="module")
def spread(tmp_path_factory) -> LexicalIndex:
    """600 notices: countries 60/30/10 %, closing dates over 60 days (one in ten unknown), values over five
    decades (one in five unknown)."""
    rng = random.Random(3)
    idx = LexicalIndex(tmp_path_factory.mktemp("spread") / "lex")
    ids, metas = [], []
    for i in range(600):
        ids.append(f"N-{i}")
        metas.append(meta(f"Notice {i}", country=COUNTRIES[i % 10], sector=rng.choice(["Medical", "IT"]),
                          closing_num=0 if i % 10 == 9 else 20261201 + rng.randrange(30) + 70 * rng.randrange(2),
                          value_amount=-1.0 if i % 5 == 4 else 10 ** rng.uniform(2, 7)))
    idx.upsert(ids, metas, [m["title"] for m in metas])
    return idx


CASES = [
    Filters(country="ghana"), Filters(country="Peru"), Filters(sector="it"),
    Filters(closing_min=20261215), Filters(closing_min=20261201, closing_max=20261220),
    Filters(value_min=10_000.0), Filters(value_max=5_000.0), Filters(value_min=1_000.0, value_max=100_000.0),
    Filters(country="Ghana", closing_min=20261215), Filters(country="Kenya", value_min=50_000.0),
]


@pytest.mark.parametrize("filters", CASES, ids=lambda f: repr({k: v for k, v in vars(f).items()
                                                               if v not in (None, False, "value_amount")}))
def test_estimate_is_close_to_the_count(spread, filters):
    searcher = spread.searcher()
    exact = spread.count(filters, searcher)
    estimate = spread.estimate(filters, searcher)
    single = sum(v not in (None, False) for k, v in vars(filters).items() if k != "value_field") == 1
    if single and (filters.country or filters.sector or filters.closing_min is not None):
        assert estimate == exact  # document frequencies and the per-date counts are exact
    else:  # value buckets are interpolated; combinations assume independent filters
        assert abs(estimate - exact) <= max(0.2 * exact, 15), (estimate, exact)


def test_estimate_follows_new_notices(tmp_path):
    idx = LexicalIndex(tmp_path / "lex")
    idx.upsert(["A"], [meta("a", closing_num=20261210)], ["a"])
    assert idx.estimate(Filters(closing_min=20261201), idx.searcher()) == 1
    idx.upsert(["B", "C"], [meta("b", closing_num=20261211), meta("c", closing_num=20261101)], ["b", "c"])
    assert idx.estimate(Filters(closing_min=20261201), idx.searcher()) == 2  # re-aggregated: 3 notices now


def test_small_estimates_are_counted_and_large_ones_are_not(spread, monkeypatch):
    counted = []
    original = LexicalIndex.count
    monkeypatch.setattr(LexicalIndex, "count", lambda self, f, s=None: counted.append(f) or original(self, f, s))
    settings = SimpleNamespace(search_exhaustive_max=10)
    searcher = Searcher(settings, embedder=None, lexical=spread)
    s = spread.searcher()
    assert spread.estimate(Filters(country="Ghana"), s) > COUNT_BELOW * 10
    assert searcher._passing(Filters(country="Ghana"), s, s.num_docs) == spread.estimate(Filters(country="Ghana"), s)
    assert counted == []
    few = Filters(country="Peru", closing_min=20261201, closing_max=20261203)
    assert searcher._passing(few, s, s.num_docs) == spread.count(few, s)
    assert counted and counted[0] is few
    assert searcher._passing(Filters(), s, s.num_docs) == 600


def test_common_words_are_looked_up_in_titles_only(tmp_path, monkeypatch):
    """'supply' is in every body but one title: with the floor scaled down, BM25 takes it from titles, while a
    rarer word still matches bodies, and the evidence for re-ranking still sees the body."""
    idx = LexicalIndex(tmp_path / "lex")
    ids = [f"T-{i}" for i in range(40)]
    titles = ["Supply of beds" if i == 0 else f"Notice {i}" for i in range(40)]
    bodies = [f"general supply notice {'oxygen' if i == 7 else ''}" for i in range(40)]
    idx.upsert(ids, [meta(t) for t in titles], bodies)
    s = idx.searcher()
    terms = idx.analyze("supply oxygen")
    assert {h.id for h in idx.search(terms, Filters(), 50, s)} == {f"T-{i}" for i in range(40)}  # below the floor
    monkeypatch.setattr(queries_module, "COMMON_MIN_DF", 5)
    assert {h.id for h in idx.search(terms, Filters(), 50, s)} == {"T-0", "T-7"}
    hits = idx.matching(Filters(ids=["T-3", "T-7"]), 10, s)
    evidence = idx.present(terms, hits, s)
    assert evidence.body["suppli"] == {"T-3", "T-7"} and evidence.body["oxygen"] == {"T-7"}


@pytest.mark.parametrize("dense_share", [0.0, 0.3, 2.0])  # every clause with postings nested, some, none (one union)
def test_resolve_decodes_positions_and_evidence_for_a_full_chunk(tmp_path, monkeypatch, dense_share):
    """300 ids take 9 bits of the score for their position, the evidence the bits above: both read back
    exactly, the same as ``present`` gives, for ids asked in any order among ids the index lacks, whether the
    evidence clauses are chained (dense postings) or share a union (sparse)."""
    monkeypatch.setattr(evidence_module, "DENSE_SHARE", dense_share)
    idx = LexicalIndex(tmp_path / "lex")
    ids = [f"T-{i}" for i in range(40)]
    idx.upsert(ids, [meta("Oxygen plant" if i % 3 == 0 else f"Notice {i}", sector="Works" if i % 2 else "IT")
                     for i in range(40)],
               [f"general supply {'oxygen' if i % 5 == 0 else ''}" for i in range(40)])
    s = idx.searcher()
    asked = [f"absent-{i}" for i in range(260)] + ids[::-1]
    terms = idx.analyze("oxygen supply notice")
    found, evidence = idx.resolve(Filters(), asked, terms, s, sector="works")
    assert sorted(h.id for h in found) == sorted(ids)
    same = idx.present(terms, found, s, sector="works")
    assert (evidence.strong, evidence.body, evidence.in_sector) == (same.strong, same.body, same.in_sector)
    assert evidence.in_sector == {f"T-{i}" for i in range(1, 40, 2)}
    assert evidence.strong["oxygen"] == {f"T-{i}" for i in range(0, 40, 3)}
    assert evidence.body["oxygen"] == {f"T-{i}" for i in range(0, 40, 5)}


def test_a_query_keeps_only_its_rarest_common_terms(tmp_path, monkeypatch):
    """A pasted reference splits into many terms; past MAX_COMMON_TERMS the most frequent are dropped, while
    rare terms and short queries are kept whole."""
    idx = LexicalIndex(tmp_path / "lex")
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]  # word k in 40 - 5k notices
    ids = [f"F-{i}" for i in range(40)]
    bodies = [" ".join(w for k, w in enumerate(words) if i < 40 - 5 * k) for i in range(40)]
    idx.upsert(ids, [meta(f"Notice {i}") for i in range(40)], [b + (" rareword" if i == 3 else "") for i, b in
                                                               enumerate(bodies)])
    s = idx.searcher()
    terms = idx.analyze("alpha beta gamma rareword delta epsilon zeta")
    assert idx.focus(terms, s) == terms  # below the floor nothing is common
    monkeypatch.setattr(queries_module, "COMMON_MIN_DF", 5)
    assert idx.focus(terms, s) == idx.analyze("gamma rareword delta epsilon zeta")  # 4 rarest common + rare
    assert idx.focus(idx.analyze("alpha beta"), s) == idx.analyze("alpha beta")
