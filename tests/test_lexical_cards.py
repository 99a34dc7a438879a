"""The card-only fields in the lexical index: sector code and confidence, Unclassified, the published
description (also for a card written before it kept one), and the sector counts with their codes."""

from __future__ import annotations

from search_api.search import query_lexicon
from tender_pipeline.documents import document_text
from tender_pipeline.lexical import Filters, LexicalIndex
from tender_pipeline.lexical.cards import card_extras, description_from_text
from tender_pipeline.models import EnrichedTender


def tender(tid: str, sector: str, code: str, confidence: float, description: str, keywords=("beds",)):
    return EnrichedTender.model_validate({
        "record": {"tender_id": tid, "title": f"Title of {tid}", "description": description, "buyer": "Council"},
        "enrichment": {"tender_id": tid, "summary": f"Summary of {tid}", "sector": sector, "sector_code": code,
                       "sector_confidence": confidence, "procurement_type": "Supply", "keywords": list(keywords)},
        "content_hash": tid})


def test_the_description_is_read_back_from_the_embedded_text():
    for description in ("Forty hospital beds with side rails.", ""):
        item = tender("T-1", "Medical", "33", 0.9, description)
        assert description_from_text(document_text(item)) == description
    no_keywords = tender("T-2", "Medical", "33", 0.9, "Gloves.", keywords=())
    assert description_from_text(document_text(no_keywords)) == "Gloves."
    unsure = document_text(tender("T-3", "Unclassified", "", 0.1, "Spare parts."))
    assert "Unclassified" not in unsure and "Sector:" not in unsure  # an unsure sector never steers the vector
    assert description_from_text(unsure) == "Spare parts."


def test_cards_keep_description_and_sector_fields_and_file_unclassified_apart(tmp_path):
    items = [tender("A", "Construction work", "45", 0.9, "Roads."), tender("B", "Construction work", "45", 0.6, ""),
             tender("C", "Unclassified", "", 0.2, "Misc."), tender("D", "Construction work", "", 0.0, "Old."),
             tender("E", "", "", 0.0, "Empty sector.")]
    metas = [{"title": i.record.title, "sector": i.enrichment.sector} | card_extras(i) for i in items]
    texts = [document_text(i) for i in items]
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    index.upsert([i.record.tender_id for i in items], metas, texts)
    cards = index.cards(list("ABCDE"))
    assert cards["A"]["sector_code"] == "45" and cards["A"]["sector_confidence"] == 0.9
    assert cards["A"]["description"] == "Roads." and cards["B"]["description"] == ""
    facets = index.facets()
    assert facets["sector"] == {"Construction work": 3, "Unclassified": 2}
    assert facets["sector_codes"] == {"Construction work": "45", "Unclassified": ""}
    assert index.count(Filters(sector="Unclassified")) == 2 and index.count(Filters(sector="construction work")) == 3
    # a card written before cards kept the description: it comes back from the embedded text
    older = {k: v for k, v in metas[0].items() if k not in ("description", "sector_code", "sector_confidence")}
    index.upsert(["A"], [older], [texts[0]])
    assert index.cards(["A"])["A"]["description"] == "Roads." and "sector_code" not in index.cards(["A"])["A"]



def test_a_confident_sector_expands_the_indexed_words_but_never_the_keywords(tmp_path):
    items = [tender("A", "Construction work", "45", 0.9, "Box drain at Pubali path.", keywords=("box", "drain")),
             tender("B", "Unclassified", "", 0.2, "Box drain at Pubali path.", keywords=("box", "drain"))]
    metas = [{"title": i.record.title, "sector": i.enrichment.sector, "keywords": ", ".join(i.enrichment.keywords)}
             | card_extras(i) for i in items]
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    index.upsert(["A", "B"], metas, [document_text(i) for i in items])
    index.index.reload()
    words, _, _ = query_lexicon(index, index.searcher(), "drainage")  # the query's words as the index spells them
    found = {h.id for h in index.search(words, Filters(), 10)}
    assert found == {"A"}  # division 45's words reach the confident notice only
    assert index.cards(["A"])["A"]["keywords"] == "box, drain"  # what a user sees stays the notice's own words
