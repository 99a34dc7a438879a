"""A query word's other spelling (British / American) counts as the word, checked against a real index."""

from __future__ import annotations

import pytest

from search_api.ranking import Candidate, lexical_scores
from search_api.search import query_lexicon
from search_api.spelling import candidates, variants
from tender_pipeline.lexical import LexicalIndex


def test_regular_and_irregular_spellings_both_ways():
    assert "license" in candidates("licence") and "licence" in candidates("license")
    assert "center" in candidates("centre") and "centre" in candidates("center")
    assert "fertilizer" in candidates("fertiliser") and "fertilisers" in candidates("fertilizers")
    assert "tires" in candidates("tyres") and "program" in candidates("programme")
    assert "sulfate" in candidates("sulphate") and "pediatric" in candidates("paediatric")


def test_words_that_only_look_like_a_rule_are_left_alone():
    assert candidates("meter") == []  # the device is a meter in British English too
    assert "flor" not in candidates("flour") and "fense" not in candidates("fence")  # too short a root
    assert candidates("4x4") == [] and candidates("road") == []


def test_only_variants_the_index_holds_are_kept_in_its_analysed_form():
    analyse = {"licence": ["licenc"], "license": ["licens"], "centre": ["centr"], "center": ["center"],
               "roads": ["road"]}.get
    got = variants(["licence", "centre", "roads"], lambda w: analyse(w, [w]), lambda t: t == "licens")
    assert got == {"licenc": ["licens"]}


@pytest.fixture()
def index(tmp_path) -> LexicalIndex:
    idx = LexicalIndex(tmp_path / "lex")
    notices = {"A": "Software license renewal", "B": "Renewal of antivirus licenses", "C": "Road maintenance",
               "D": "Maintenance of the health center", "E": "Maintenance of street lights"}
    idx.upsert(list(notices), [{"title": t} for t in notices.values()], list(notices.values()))
    return idx


def test_query_lexicon_finds_the_other_spelling_and_weighs_terms_by_the_whole_index(index):
    terms, found, idf = query_lexicon(index, index.searcher(), "software licence renewal for the health centre")
    assert terms == ["softwar", "licenc", "renew", "health", "centr"]
    assert found == {"licenc": ["licens"], "centr": ["center"]}  # 'licence' and 'centre' are not in the index
    assert idf["licenc"] == idf["renew"]  # both in 2 of the 5 notices, through 'license' for the first
    _, _, idf = query_lexicon(index, index.searcher(), "maintenance works")
    assert idf["mainten"] < idf["work"]  # in 3 notices vs none


def test_a_variant_held_counts_as_the_term():
    pool = [Candidate(id="A", cosine=0.5, metadata={}, strong={"licens"}), Candidate(id="B", cosine=0.5, metadata={})]
    lexical_scores(pool, ["licenc"], {"licenc": 2.0}, {"licenc": ["licens"]})
    assert pool[0].lexical == 1.0 and pool[1].lexical == 0.0


def test_short_forms_notices_use_count_both_ways():
    assert "lab" in candidates("laboratory") and "laboratory" in candidates("lab")
    assert "eqpt" in candidates("equipment") and "equipment" in candidates("eqpt")
    assert "lab" not in candidates("labour") and candidates("labs") == ["laboratories"]  # whole words only


def test_a_query_for_laboratory_finds_the_notice_that_says_lab(tmp_path):
    idx = LexicalIndex(tmp_path / "lex")
    notices = {"A": "Supply of lab equipment", "B": "Supply of laboratory equipment", "C": "Supply of equipment"}
    idx.upsert(list(notices), [{"title": t} for t in notices.values()], list(notices.values()))
    terms, found, idf = query_lexicon(idx, idx.searcher(), "laboratory equipment")
    assert found == {"laboratori": ["lab"]}
    pool = [Candidate(id=i, cosine=0.5, metadata={}, strong=set(idx.analyze(t))) for i, t in notices.items()]
    lexical_scores(pool, terms, idf, found)
    assert pool[0].lexical == pool[1].lexical == 1.0 > pool[2].lexical
