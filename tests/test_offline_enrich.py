"""The offline enricher: taxonomy from CPV codes, text classification, type, corrigenda, keywords."""

from __future__ import annotations

import json

import pytest

from tender_pipeline.enrich.offline import OfflineEnricher
from tender_pipeline.models import TenderRecord
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def enricher() -> OfflineEnricher:
    return OfflineEnricher.from_settings(Settings())


def test_ships_the_45_cpv_divisions():
    taxonomy = load_taxonomy()
    assert len(taxonomy.divisions) == 45
    assert taxonomy.divisions["45"].label == "Construction work"
    assert taxonomy.divisions["45"].procurement_type == "Works"
    assert taxonomy.divisions["33"].procurement_type == "Supply"
    assert taxonomy.divisions["90"].procurement_type == "Services"


def test_sector_from_cpv_code_wins_over_text(enricher):
    record = TenderRecord(tender_id="1", title="Supply of laptops", cpv_codes="45233140-2")
    [result] = enricher.enrich([record])
    assert result.sector == "Construction work" and result.procurement_type == "Works"


EXAMPLES = [
    ("Supply of laptops and desktop computers for head office", "30"),
    ("Supply of essential medicines and antibiotics to district hospitals", "33"),
    ("Refuse collection and street sweeping services", "90"),
    ("Rehabilitation of the N2 road and bridge culverts", "45"),
    ("Bulk supply of diesel fuel for generators", "09"),
    ("Provision of comprehensive motor vehicle insurance cover", "66"),
]


def test_text_classification_without_cpv(enricher):
    """Each title gets its division or, when the model is unsure, Unclassified; never a confident wrong one."""
    results = enricher.enrich([TenderRecord(tender_id=str(i), title=t) for i, (t, _) in enumerate(EXAMPLES)])
    labels = load_taxonomy().divisions
    for (title, division), result in zip(EXAMPLES, results, strict=True):
        assert result.sector in (labels[division].label, "Unclassified"), title
    assert sum(r.sector_code == d for (_, d), r in zip(EXAMPLES, results, strict=True)) >= 5


def test_corrigendum_type_keywords_and_determinism(enricher):
    records = [
        TenderRecord(tender_id="c", title="Corrigendum: extension of closing date - School furniture",
                     buyer="Ghana Education Service", country="Ghana", category="Goods"),
        TenderRecord(tender_id="n", title="School furniture for 20 classrooms", category="Services"),
    ]
    first, second = enricher.enrich(records)
    assert first.is_corrigendum and not second.is_corrigendum
    assert first.procurement_type == "Supply"  # stated by the source's category
    assert second.procurement_type == "Services"
    assert "furniture" in second.keywords and len(second.keywords) <= 12
    assert "Ghana Education Service" in first.summary
    assert enricher.enrich(records) == [first, second]


def test_fuller_taxonomy_gives_subsectors(tmp_path):
    path = tmp_path / "cpv.json"
    path.write_text(json.dumps({"45000000-7": "Construction work",
                                "45200000-9": "Works for complete or part construction"}), encoding="utf-8")
    enricher = OfflineEnricher(load_taxonomy(str(path)), embedder=None)
    [result] = enricher.enrich([TenderRecord(tender_id="1", title="Bridge", cpv_codes="45221111")])
    assert result.subsector == "Works for complete or part construction"


def test_classify_gives_the_best_division_of_free_text(enricher):
    divisions = enricher.classify(["Refuse collection and street sweeping services", "School desks and chairs"])
    assert [d.code for d in divisions] == ["90", "39"]
    assert enricher.classify([]) == []
