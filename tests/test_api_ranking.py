"""Pure ranking pieces: query terms, lexical scoring, fusion, filter building (no services)."""

from __future__ import annotations

from datetime import date

from search_api.filters import build_filters
from search_api.models import SearchParams
from search_api.ranking import Candidate, blend_bm25, fuse, index_idf, query_terms, query_words
from search_api.search import typed_forms


def cand(tid: str, cosine: float, strong: set[str] = frozenset(), body: set[str] = frozenset(),
         sector: str = "") -> Candidate:
    """A candidate holding the given query terms in its strong fields / body (as the index reports them)."""
    return Candidate(id=tid, cosine=cosine, metadata={}, strong=set(strong), body=set(body), sector=sector)


def test_query_terms_drop_stopwords_and_single_letters():
    assert query_terms("Hospitals and the X-ray units") == ["hospital", "ray", "unit"]
    assert query_terms("the and of") == []


def test_query_words_are_left_unstemmed_for_the_index_analyser():
    assert query_words("PHCs and CHPS compounds") == ["phcs", "chps", "compounds"]  # 'chps' is not a plural


def test_idf_from_the_whole_index_not_the_pool():
    """Most candidates share the query's rare word, one holds the generic word: over the pool the generic word
    looked rarer and won; from the index's document frequencies the rare word decides."""
    pool = [cand("G", 0.5, strong={"panel"})] + [cand(f"R{i}", 0.5, strong={"broker"}) for i in range(4)]
    idf = index_idf({"panel": 5_000, "broker": 40}, 100_000)
    ranked = fuse(pool, "insurance broker panel", ["broker", "panel"], 0.55, None, 0.0, idf)
    assert ranked[-1].id == "G" and ranked[0].lexical > 0.7
    assert fuse(pool, "insurance broker panel", ["broker", "panel"], 0.55, None, 0.0)[0].id == "G"  # pool IDF


def test_typed_forms_keep_references_whole():
    forms = typed_forms("WTC 2025/3.")
    assert "wtc 2025/3" in forms and "2025/3" in forms and "wtc" in forms
    assert "pk-nha-2026-1002" in typed_forms("road works PK-NHA-2026-1002")


def test_lexical_evidence_lifts_the_notice_naming_the_buyer_over_a_closer_vector():
    pool = [cand("A", 0.60, strong={"laptop"}), cand("B", 0.45, strong={"laptop", "tfl"}), cand("C", 0.50)]
    ranked = fuse(pool, "TfL laptops", ["tfl", "laptop"], vector_weight=0.55, sector=None, sector_bonus=0.0)
    assert [c.id for c in ranked] == ["B", "A", "C"]
    assert ranked[0].lexical == 1.0 and 0 <= ranked[-1].score <= 1


def test_body_matches_count_less_than_title_matches():
    pool = [cand("T", 0.5, strong={"umgeni"}), cand("D", 0.5, body={"umgeni"}), cand("N", 0.5)]
    ranked = fuse(pool, "umgeni", ["umgeni"], vector_weight=0.5, sector=None, sector_bonus=0.0)
    assert [c.id for c in ranked] == ["T", "D", "N"]
    assert ranked[0].lexical > ranked[1].lexical > ranked[2].lexical == 0


def test_reference_typed_without_its_source_prefix_is_exact():
    pool = [cand("uk-cf:WTC 2025/3", 0.1), cand("uk-cf:WTC 2025/4", 0.5)]
    assert fuse(pool, "wtc 2025/3", [], 0.55, None, 0.0)[0].id == "uk-cf:WTC 2025/3"
    assert fuse(pool, "wtc 2025/3", [], 0.55, None, 0.0)[1].exact is False


def test_exact_reference_scores_one_and_ranks_first_whatever_its_vector():
    pool = [cand("ZA-CITY-2026-1000", 0.05), cand("ZA-CITY-2026-1001", 0.9)]
    ranked = fuse(pool, "za-city-2026-1000", [], vector_weight=0.9, sector=None, sector_bonus=0.0)
    assert ranked[0].id == "ZA-CITY-2026-1000" and ranked[0].score == 1.0 and ranked[1].score < 1.0


def test_sector_preference_is_a_bonus_not_a_filter():
    pool = [cand("H", 0.62, sector="Construction work"), cand("M", 0.60, sector="Medical equipments")]
    ranked = fuse(pool, "hospital", ["hospit"], vector_weight=1.0, sector="Medical equipments", sector_bonus=0.04)
    assert [c.id for c in ranked] == ["M", "H"]  # boosted, and the other sector is still there
    assert [c.id for c in fuse(pool, "hospital", ["hospit"], 1.0, None, 0.04)] == ["H", "M"]


def test_bm25_separates_notices_that_hold_the_same_words():
    """Presence ties a short 'PLANT HIRE' notice with a long one holding 'plant' and 'hire' once each, so the
    slightly closer vector wins; the index's BM25 score (term frequency, length) breaks the tie instead."""
    short = cand("short", 0.30, strong={"plant", "hire"})
    long_ = cand("long", 0.32, strong={"plant", "hire"})
    short.bm25, long_.bm25 = 9.0, 4.0
    idf = {"plant": 2.0, "hire": 2.0}
    assert [c.id for c in fuse([short, long_], "plant hire", ["plant", "hire"], 0.55, None, 0.0, idf)] == [
        "long", "short"]  # off (the default): presence only
    ranked = fuse([short, long_], "plant hire", ["plant", "hire"], 0.55, None, 0.0, idf, bm25_weight=0.4)
    assert [c.id for c in ranked] == ["short", "long"]
    assert ranked[0].lexical == 1.0 and abs(ranked[1].lexical - (0.6 + 0.4 * 4 / 9)) < 1e-9


def test_a_vector_hit_outside_the_bm25_list_is_capped_at_the_last_bm25_hit():
    """A vector hit was not among the BM25 hits, so its BM25 is at most the last one's: its share is its
    coverage capped at last / best, never more than a BM25 hit that holds the same words."""
    hits = [cand("b1", 0.3, strong={"pipe"}), cand("b2", 0.3, strong={"pipe"})]
    hits[0].bm25, hits[1].bm25 = 10.0, 5.0
    vec = cand("v", 0.3, strong={"pipe"})
    none = cand("n", 0.3)
    for c in (*hits, vec, none):
        c.lexical = 1.0 if c is not none else 0.0
    blend_bm25([*hits, vec, none], 0.5)
    assert [c.lexical for c in hits] == [1.0, 0.75]
    assert vec.lexical == 0.75 and none.lexical == 0.0
    alone = cand("v2", 0.3, strong={"pipe"})
    alone.lexical = 0.8
    blend_bm25([alone], 0.5)  # no BM25 hit in the pool: nothing to scale by, coverage kept
    assert alone.lexical == 0.8


def test_filters_from_params():
    params = SearchParams(q="x", country=" Ghana ", open_only=True, closing_after="2026-01-01", max_value=10,
                          include_corrigendum=False, procurement_type="goods")
    f = build_filters(params, date(2026, 11, 28))
    assert f.country == " Ghana " and f.procurement_type == "goods"  # normalised by the index
    assert f.closing_min == 20261128  # open_only wins over an earlier closing_after
    assert f.value_max == 10 and f.value_min is None and f.exclude_corrigendum and f.active()
    assert not build_filters(SearchParams(q="x"), date(2026, 1, 1)).active()
    assert build_filters(SearchParams(q="x"), date(2026, 1, 1), ids=["A"]).active()
