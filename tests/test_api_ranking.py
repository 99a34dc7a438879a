"""Pure ranking pieces: term extraction, regex patterns, lexical scoring, fusion (no services)."""

from __future__ import annotations

import re

from search_api.filters import build_where, resolve_buyer, resolve_label
from search_api.models import SearchParams
from search_api.ranking import Candidate, exact_terms, fuse, query_terms, term_pattern


def cand(tid: str, cosine: float, title: str, buyer: str = "", city: str = "", doc: str = "",
         sector: str = "") -> Candidate:
    meta = {"title": title, "buyer": buyer, "city": city, "tender_id": tid, "sector": sector}
    return Candidate(id=tid, cosine=cosine, metadata=meta, document=doc or title)


def test_exact_terms_put_references_and_acronyms_first():
    assert exact_terms("road works by NHA ref PK-NHA-2026-1002", 3) == ["NHA", "PK-NHA-2026-1002", "works"]
    assert exact_terms("the and of", 4) == []
    assert exact_terms("WTC 2025/3.", 4) == ["WTC 2025/3", "WTC", "2025/3"]  # a reference with a space
    assert query_terms("Hospitals and the X-ray units") == ["hospital", "ray", "unit"]  # single letters are noise


def test_term_patterns_are_case_insensitive_and_whole_word_for_codes():
    nha = term_pattern("NHA")
    assert re.search(nha, "National Highway Authority (nha)") and not re.search(nha, "enhanced drainage")
    ref = term_pattern("pk-nha-2026-1002")
    assert re.search(ref, "Reference: PK-NHA-2026-1002") and not re.search(ref, "PK-NHA-2026-10021")
    word = term_pattern("Hospitals")
    assert re.search(word, "district HOSPITAL maternity ward") and not re.search(word, "the inhospitable")


def test_lexical_evidence_lifts_the_notice_naming_the_buyer_over_a_closer_vector():
    pool = [cand("A", 0.60, "Supply of laptops", buyer="Leeds City Council"),
            cand("B", 0.45, "Supply of laptops", buyer="Transport for London (TfL)"),
            cand("C", 0.50, "Supply of desktop computers", buyer="Glasgow City Council")]
    ranked = fuse(pool, "TfL laptops", vector_weight=0.55, sector=None, sector_bonus=0.0)
    assert [c.id for c in ranked] == ["B", "A", "C"]
    assert ranked[0].lexical == 1.0 and 0 <= ranked[-1].score <= 1


def test_body_matches_count_less_than_title_matches():
    pool = [cand("T", 0.5, "Bridge over Umgeni"), cand("D", 0.5, "Bridge works", doc="Bridge works near the Umgeni"),
            cand("N", 0.5, "Road works")]
    ranked = fuse(pool, "umgeni", vector_weight=0.5, sector=None, sector_bonus=0.0)
    assert [c.id for c in ranked] == ["T", "D", "N"]
    assert ranked[0].lexical > ranked[1].lexical > ranked[2].lexical == 0


def test_reference_typed_without_its_source_prefix_is_exact():
    pool = [cand("uk-cf:WTC 2025/3", 0.1, "Cleaning contract"), cand("uk-cf:WTC 2025/4", 0.5, "Cleaning")]
    assert fuse(pool, "wtc 2025/3", 0.55, None, 0.0)[0].id == "uk-cf:WTC 2025/3"
    assert fuse(pool, "wtc 2025/3", 0.55, None, 0.0)[1].exact is False


def test_exact_reference_scores_one_and_ranks_first_whatever_its_vector():
    pool = [cand("ZA-CITY-2026-1000", 0.05, "Pothole patching"), cand("ZA-CITY-2026-1001", 0.9, "Pothole patching")]
    ranked = fuse(pool, "za-city-2026-1000", vector_weight=0.9, sector=None, sector_bonus=0.0)
    assert ranked[0].id == "ZA-CITY-2026-1000" and ranked[0].score == 1.0 and ranked[1].score < 1.0


def test_sector_preference_is_a_bonus_not_a_filter():
    pool = [cand("H", 0.62, "Renovation of hospital ward", sector="Construction work"),
            cand("M", 0.60, "Hospital beds", sector="Medical equipments")]
    ranked = fuse(pool, "hospital", vector_weight=1.0, sector="Medical equipments", sector_bonus=0.04)
    assert [c.id for c in ranked] == ["M", "H"]  # boosted, and the other sector is still there
    assert [c.id for c in fuse(pool, "hospital", 1.0, None, 0.04)] == ["H", "M"]


def test_filters_resolve_case_and_synonyms_and_build_where():
    assert resolve_label("GOODS", ["Works", "Supply", "Services"]) == ["Supply"]
    assert resolve_buyer("tfl", ["transport for london (tfl)", "leeds city council"]) == ["transport for london (tfl)"]
    assert resolve_buyer("city council", ["leeds city council", "glasgow city council", "tfl"]) == [
        "leeds city council", "glasgow city council"]
    params = SearchParams(q="x", country=" Ghana ", open_only=True, max_value=10, include_corrigendum=False)
    from datetime import date

    where = build_where(params, {}, date(2026, 11, 28))
    assert where == {"$and": [{"country_key": "ghana"}, {"closing_num": {"$gte": 20261128}},
                              {"value_amount": {"$lte": 10.0}}, {"value_amount": {"$gte": 0.0}},
                              {"is_corrigendum": False}]}
    assert build_where(SearchParams(q="x"), {}, date(2026, 1, 1)) is None
