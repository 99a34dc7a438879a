"""The sector decided again from the notice's vector: the model's embedding head, the refiner's rules, and the
embed stage writing the decision where upsert and every rebuild read it (real stages, embedded Chroma)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tender_pipeline import kept, pipeline, staging
from tender_pipeline.documents import document_text
from tender_pipeline.embed import get_embedder
from tender_pipeline.enrich.offline import OfflineEnricher, given_types
from tender_pipeline.enrich.refine import REFINED, SectorRefiner, apply
from tender_pipeline.models import UNCLASSIFIED, EnrichedTender, Enrichment, TenderRecord
from tender_pipeline.sector_model import SectorModel, read_manifest
from tender_pipeline.sector_model.features import record_terms
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import load_taxonomy
from tests import stored

ONNX_ID = "local:all-MiniLM-L6-v2:onnx-int8"


def item(tid: str, title: str, description: str = "", cpv: str = "", source: str = "local") -> EnrichedTender:
    record = TenderRecord(tender_id=tid, title=title, description=description, cpv_codes=cpv)
    enrichment = Enrichment(tender_id=tid, summary=title, sector=UNCLASSIFIED, procurement_type="Supply",
                            enrichment_source=source)
    return EnrichedTender(record=record, enrichment=enrichment, content_hash=tid)


def test_the_head_ships_with_its_checksum_for_the_embedder_it_was_trained_on():
    manifest = read_manifest()
    head = manifest["embedding"]
    assert head["weights"] in manifest["sha256"] and head["embedder"] == ONNX_ID and head["dim"] == 384
    model = SectorModel()
    vectors = np.asarray(get_embedder(Settings(embed_backend="local")).embed_documents(["Supply of laptops"]))
    probs = model.embedding_probabilities(vectors)
    assert probs.shape == (1, len(model.codes)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_the_blend_is_a_weighted_geometric_mean_of_the_two_heads():
    model = SectorModel()
    words = model.probabilities([["laptop", "computer"], ["road", "resurfacing"]])
    vectors = np.asarray(get_embedder(Settings(embed_backend="local")).embed_documents(
        ["Supply of laptops", "Road resurfacing works"]))
    head = model.embedding_probabilities(vectors)
    model.embedding["weight"] = 0.0
    assert np.allclose(model.blend(words, vectors), words / words.sum(axis=1, keepdims=True), atol=1e-5)
    model.embedding["weight"] = 1.0
    assert np.allclose(model.blend(words, vectors), head, atol=1e-5)
    model.embedding["weight"] = 0.5
    mixed = model.blend(words, vectors)
    expected = np.sqrt(words * head)
    assert np.allclose(mixed, expected / expected.sum(axis=1, keepdims=True), atol=1e-4)


def test_the_refiner_decides_only_offline_guesses_without_cpv_codes():
    taxonomy = load_taxonomy()
    items = [item("words", "Supply of laptops and desktop computers", "Laptops, monitors and docking stations."),
             item("coded", "Lot 3", cpv="45233140-2"),
             item("gemini", "Supply of laptops", source="gemini")]
    vectors = np.asarray(get_embedder(Settings(embed_backend="local")).embed_documents(
        [i.record.title for i in items]))
    decided = SectorRefiner(taxonomy, 0.2).decide(items, vectors)
    assert decided[1] is None and decided[2] is None
    assert decided[0] is not None and decided[0]["sector_code"] == "30"
    assert decided[0]["sector"] == taxonomy.divisions["30"].label and 0.2 <= decided[0]["sector_confidence"] <= 1
    [never] = SectorRefiner(taxonomy, 1.0).decide(items[:1], vectors[:1])
    assert never is not None and (never["sector"], never["sector_code"]) == (UNCLASSIFIED, "")
    assert never["sector_confidence"] == decided[0]["sector_confidence"]  # the confidence is kept
    applied = apply(items[0], {REFINED: decided[0]})
    assert applied.enrichment.sector_code == "30" and items[0].enrichment.sector_code == ""
    assert apply(items[0], {}) is items[0]


def test_the_procurement_type_and_summary_follow_the_decided_sector_unless_the_source_states_one():
    taxonomy = load_taxonomy()
    title = "Supply of laptops and desktop computers"
    guessed, stated = (item(tid, title, "Laptops, monitors and docking stations.") for tid in ("guessed", "stated"))
    stated = stated.model_copy(update={"record": stated.record.model_copy(update={"category": "Works"})})
    for it in (guessed, stated):  # the enrich stage had taken it for works
        it.enrichment.procurement_type, it.enrichment.summary = "Works", f"Works: {title}"
    vectors = np.asarray(get_embedder(Settings(embed_backend="local")).embed_documents([title, title]))
    ours, theirs = SectorRefiner(taxonomy, 0.2).decide([guessed, stated], vectors)
    assert ours is not None and theirs is not None and ours["sector_code"] == theirs["sector_code"] == "30"
    expected = taxonomy.divisions["30"].procurement_type
    assert expected != "Works"
    assert ours["procurement_type"] == expected and ours["summary"].startswith(f"{expected}: ")
    assert theirs["procurement_type"] == "Works" and theirs["summary"].startswith("Works: ")  # the source's word
    card = apply(guessed, {REFINED: ours}).enrichment
    assert (card.sector_code, card.procurement_type) == ("30", expected)

def test_a_row_decided_before_the_type_followed_the_sector_gets_its_type_when_applied():
    taxonomy = load_taxonomy()
    old = item("old", "Supply of laptops and desktop computers")
    old.enrichment.procurement_type, old.enrichment.summary = "Works", "Works: Supply of laptops"
    laptops = {"sector": taxonomy.divisions["30"].label, "sector_code": "30", "sector_confidence": 0.6,
               "subsector": ""}
    mended = apply(old, {REFINED: laptops}).enrichment
    expected = taxonomy.divisions["30"].procurement_type
    assert (mended.sector_code, mended.procurement_type) == ("30", expected) and expected != "Works"
    assert mended.summary.startswith(f"{expected}: ")
    unsure = {"sector": UNCLASSIFIED, "sector_code": "", "sector_confidence": 0.1, "subsector": ""}
    kept = apply(old, {REFINED: unsure}).enrichment  # the row does not say which guess it was
    assert (kept.sector, kept.procurement_type, kept.summary) == (UNCLASSIFIED, "Works", "Works: Supply of laptops")

def test_only_vectors_of_the_embedder_the_head_was_trained_on_are_read():
    settings = Settings()
    assert SectorRefiner.for_embedder(settings, ONNX_ID, 384) is not None
    assert SectorRefiner.for_embedder(settings, "gemini:gemini-embedding-001:384", 384) is None
    assert SectorRefiner.for_embedder(settings, "local:all-MiniLM-L6-v2", 384) is None  # the torch build


NOTICES = [  # no CPV codes: the sector is the model's
    ("R-1", "Supply of laptops and desktop computers", "Laptops, monitors and docking stations for staff."),
    ("R-2", "Construction of a classroom block", "Two classrooms with an office and store at the primary school."),
    ("R-3", "Supply of X-ray machine and ultrasound scanner", "Digital radiography unit for the district hospital."),
    ("R-4", "Hire of TLB and grader", "Plant hire for the upgrading of gravel roads, wet rates."),
    ("R-5", "Open tender award", "See the attached documents."),
]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(chroma_host="", chroma_path=str(tmp_path / "chroma"), staging_uri=str(tmp_path / "staging"),
                    lexical_index_path=str(tmp_path / "lexical"), tender_collection="refine",
                    enrich_backend="local", embed_backend="local", profile="", profiles_path="")


def write_batch(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["tender_id", "title", "description", "country", "cpv_codes"])
        for tid, title, description in NOTICES:
            out.writerow([tid, title, description, "Ghana", ""])
        out.writerow(["R-6", "Lot 3", "Resurfacing.", "Ghana", "45233140-2"])
    return path


def test_the_embed_stage_decides_the_sector_and_upsert_and_rebuilds_store_it(settings, tmp_path):
    run = pipeline.fetch(settings, "refine-1", source=str(write_batch(tmp_path / "batch.csv")))
    pipeline.validate(settings, run)
    pipeline.enrich(settings, run)
    before = {r["record"]["tender_id"]: r for r in staging.read_jsonl(staging.location(run) / "enriched.jsonl")}
    assert not any(REFINED in r for r in before.values())
    pipeline.embed(settings, run)
    path = staging.location(run) / "enriched.jsonl"
    first = path.read_bytes()
    rows = {r["record"]["tender_id"]: r for r in staging.read_jsonl(path)}
    assert set(rows) == set(before)
    assert REFINED not in rows["R-6"]  # its CPV code decides
    assert all(REFINED in rows[tid] for tid, *_ in NOTICES)
    for tid in rows:  # the enrich stage's own fields are left as they were
        assert rows[tid]["enrichment"] == before[tid]["enrichment"]
    # the decision is the refiner's on the very vectors the stage wrote
    vectors = staging.read_npy(staging.location(run) / "embeddings.npy")
    items = [EnrichedTender.model_validate(r) for r in staging.read_jsonl(path)]
    again = SectorRefiner.for_embedder(settings, ONNX_ID, 384).decide(items, vectors)
    assert [r.get(REFINED) for r in staging.read_jsonl(path)] == again
    assert rows["R-1"][REFINED]["sector_code"] == "30" and rows["R-2"][REFINED]["sector_code"] == "45"
    assert rows["R-5"][REFINED]["sector"] == UNCLASSIFIED
    pipeline.embed(settings, run)  # a retry decides the same from the same vectors
    assert path.read_bytes() == first
    summary = pipeline.upsert(settings, run)
    assert summary["upserted"] == 6 and summary["sectors_refined"] == 5
    cards = stored.cards(settings)
    for tid, row in rows.items():
        want = row.get(REFINED) or row["enrichment"]
        assert (cards[tid]["sector_code"], cards[tid]["sector_confidence"], cards[tid]["procurement_type"],
                cards[tid]["summary"]) == (want["sector_code"], want["sector_confidence"],
                                           want["procurement_type"], want["summary"]), tid
    embed_stats = json.loads((staging.location(run) / "embed.json").read_text("utf-8"))
    assert embed_stats["sectors_refined"] == 5
    # a rebuild replays the kept rows: the same cards
    replayed = {tid: meta for ids, metas, _, _ in kept.live_notices(settings)
                for tid, meta in zip(ids, metas, strict=True)}
    for tid in rows:
        for key in ("sector", "sector_code", "sector_confidence", "procurement_type", "summary"):
            assert replayed[tid][key] == cards[tid][key], (tid, key)


def test_upsert_refuses_rows_the_enrich_stage_wrote_again_after_embed(settings, tmp_path):
    """Enrich rerun alone rewrites enriched.jsonl without the embed stage's sectors: upsert must not store
    the enrich stage's guesses silently; after embed runs again it goes through."""
    run = pipeline.fetch(settings, "refine-2", source=str(write_batch(tmp_path / "batch.csv")))
    pipeline.validate(settings, run)
    pipeline.enrich(settings, run)
    pipeline.embed(settings, run)
    pipeline.enrich(settings, run)
    assert not any(REFINED in r for r in staging.read_jsonl(staging.location(run) / "enriched.jsonl"))
    with pytest.raises(RuntimeError, match="rerun embed"):
        pipeline.upsert(settings, run)
    assert not stored.cards(settings)
    pipeline.embed(settings, run)
    assert pipeline.upsert(settings, run)["upserted"] == 6
    assert stored.cards(settings)["R-4"]["sector_code"] == next(
        r for r in staging.read_jsonl(staging.location(run) / "enriched.jsonl")
        if r["record"]["tender_id"] == "R-4")[REFINED]["sector_code"]


def test_the_refiner_weighs_the_procurement_type_the_source_states_as_the_enricher_does():
    taxonomy = load_taxonomy()
    enricher = OfflineEnricher(taxonomy, min_confidence=0.2)
    records = [TenderRecord(tender_id=c, title="Boiler repairs", category=c) for c in ("Works", "Services")]
    items = [EnrichedTender(record=r, enrichment=e, content_hash=r.tender_id)
             for r, e in zip(records, enricher.enrich(records), strict=True)]
    vectors = np.asarray(get_embedder(Settings(embed_backend="local")).embed_documents(
        [document_text(it) for it in items]))  # what the embed stage embeds
    decided = SectorRefiner(taxonomy, 0.2).decide(items, vectors)
    assert [d["sector_code"] for d in decided if d] == ["45", "50"]
    assert [d["procurement_type"] for d in decided if d] == ["Works", "Services"]
    model = enricher.model  # the decision is the blend weighed by the stated type, as the enricher weighs words
    blended = model.blend(model.probabilities([record_terms(r) for r in records]), vectors)
    weighed = given_types(model, taxonomy, records, blended)
    assert [d["sector_confidence"] for d in decided if d] == [round(float(p.max()), 4) for p in weighed]
    assert not np.allclose(weighed, blended)
