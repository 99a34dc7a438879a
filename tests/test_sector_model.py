"""The shipped sector model: checksums checked on load, deterministic, Unclassified below the threshold,
and the offline enricher's keywords taken from the notice's own words."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from tender_pipeline.enrich.offline import UNCLASSIFIED, OfflineEnricher
from tender_pipeline.models import TenderRecord
from tender_pipeline.sector_model import MODEL_DIR, SectorModel, SectorModelError, read_manifest
from tender_pipeline.taxonomy import load_taxonomy

NOTICES = [
    TenderRecord(tender_id="a", title="Supply of laptops and desktop computers",
                 description="Framework for laptops, monitors and docking stations for 400 staff."),
    TenderRecord(tender_id="b", title="Home to school transport", category="Services",
                 description="Taxi and minibus journeys for pupils with special educational needs."),
    TenderRecord(tender_id="c", title="Grounds maintenance", description="Grass cutting, hedge trimming and "
                 "tree works across parks and cemeteries. Grass cutting from March to October."),
    TenderRecord(tender_id="d", title="Refurbishment of the town hall roof", category="Works",
                 description="Strip and replace the slate roof, new lead flashings and gutters."),
    TenderRecord(tender_id="e", title="Open tender award", description="See the attached documents."),
]


def test_manifest_lists_the_weights_with_their_checksum():
    manifest = read_manifest()
    assert manifest["weights"] in manifest["sha256"]
    assert set(manifest["divisions"]) <= set(load_taxonomy().divisions)


def test_a_changed_or_missing_weights_file_is_refused(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    SectorModel(copy)  # an intact copy loads
    weights = copy / read_manifest(copy)["weights"]
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(SectorModelError, match="sha256"):
        SectorModel(copy)
    weights.unlink()
    with pytest.raises(SectorModelError, match="missing"):
        SectorModel(copy)


def test_the_same_notices_get_the_same_probabilities_from_two_loads():
    first = SectorModel().guess_records(NOTICES)
    second = SectorModel().guess_records(list(reversed(NOTICES)))[::-1]  # order and batch do not matter
    assert first == second
    probs = SectorModel().probabilities([["laptops"], []])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_clear_notices_get_their_division():
    guesses = SectorModel().guess_records(NOTICES[:4])
    assert [g.code for g in guesses] == ["30", "60", "77", "45"]


def test_below_the_threshold_the_sector_is_unclassified_and_the_confidence_kept():
    taxonomy = load_taxonomy()
    sure = OfflineEnricher(taxonomy, min_confidence=0.0).enrich(NOTICES)
    never = OfflineEnricher(taxonomy, min_confidence=1.0).enrich(NOTICES)
    for a, b in zip(sure, never, strict=True):
        assert a.sector == taxonomy.divisions[a.sector_code].label and 0 < a.sector_confidence < 1
        assert (b.sector, b.sector_code) == (UNCLASSIFIED, "")
        assert b.sector_confidence == a.sector_confidence
    default = OfflineEnricher(taxonomy)
    vague = default.enrich(NOTICES)
    assert vague[4].sector == UNCLASSIFIED  # "Open tender award / see the attached documents" says nothing
    assert vague[4].sector_confidence < default.min_confidence
    assert vague[0].sector_code == "30" and vague[0].sector_confidence >= default.min_confidence


def test_a_cpv_code_is_certain():
    [result] = OfflineEnricher(load_taxonomy(), min_confidence=1.0).enrich(
        [TenderRecord(tender_id="x", title="Lot 3", cpv_codes="45233140-2")])
    assert (result.sector_code, result.sector_confidence, result.sector) == ("45", 1.0, "Construction work")


def test_keywords_are_words_of_the_notice():
    hints = {w for d in load_taxonomy().divisions.values() for w in d.hints.split()}
    for record, result in zip(NOTICES, OfflineEnricher(load_taxonomy()).enrich(NOTICES), strict=True):
        text = set(re.findall(r"[a-z][a-z0-9\-]+", f"{record.title} {record.category} {record.description}".lower()))
        assert result.keywords and set(result.keywords) <= text, (record.tender_id, result.keywords)
        assert len(result.keywords) <= 12
    lift = TenderRecord(tender_id="l", title="Lift maintenance and servicing")
    [result] = OfflineEnricher(load_taxonomy()).enrich([lift])
    assert set(result.keywords) == {"lift", "maintenance", "servicing"}  # no hint words padded in
    assert not set(result.keywords) & (hints - {"lift", "maintenance", "servicing"})


def test_query_intent_uses_the_same_model_and_only_when_sure():
    from search_api.intent import SectorIntent

    intent = SectorIntent(None)
    intent.warm()
    [guess] = SectorModel().guess_texts(["cleaning services for council offices"])
    assert guess.code == "90" and guess.confidence >= 0.5
    assert intent.sector_for("cleaning services for council offices") == load_taxonomy().divisions["90"].label
    assert SectorModel().guess_texts(["Eskom"])[0].confidence < 0.5
    assert intent.sector_for("Eskom") is None  # a name says nothing about what is bought


def test_the_procurement_type_a_source_states_weighs_the_divisions_of_that_type():
    taxonomy = load_taxonomy()
    enricher = OfflineEnricher(taxonomy, min_confidence=0.2)
    model = enricher.model
    assert 0 < model.stated_type_factor < 1  # shipped in the manifest

    def division(category: str) -> str:
        [call] = enricher.sectors([TenderRecord(tender_id="r", title="Boiler repairs", category=category)])
        return call.division.code if call.division else ""

    # heating installation work / repair services: the words alone say repair services for both
    assert (division("Works"), division("Services")) == ("45", "50")

    types = {code: d.procurement_type for code, d in taxonomy.divisions.items()}
    probs = model.probabilities([["roof", "repair"], ["roof", "repair"]])
    weighed = model.given_types(probs, [None, "Services"], types)
    assert np.allclose(weighed[0], probs[0]) and np.isclose(weighed[1].sum(), 1.0)
    ratio = weighed[1] / probs[1]
    services = np.array([types[c] == "Services" for c in model.codes])
    assert np.allclose(ratio[~services] / ratio[services][0], model.stated_type_factor, rtol=1e-4)
    assert model.given_types(probs, [None, None], types) is probs
