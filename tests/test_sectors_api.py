"""Sectors a buyer would recognise, on the search side: sector codes and confidence on results and
``/tenders/{id}``, the published description on the tender page (never the embedded text), the sector list
with counts and Unclassified, filtering by Unclassified, counts per index version, and alerts.

The notices go through the real pipeline (fetch, validate, enrich, embed, upsert) into a real `chroma run`
and a lexical index. The enrich stage's output is given the sectors a CPV classifier would write (a code
and a confidence; ``Unclassified`` with no code when unsure) before embed and upsert, as the enricher of
issue 22 does: these tests are about what the stores and the API do with them.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.alerts.evaluate import BatchSearch
from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import pipeline, staging, store
from tender_pipeline.enrich.refine import REFINED
from tender_pipeline.lexical import open_index
from tender_pipeline.settings import Settings
from tests import stored
from tests.batches import write_rows
from tests.services import wait_app_ready

pytestmark = pytest.mark.slow
BUILD = ("Construction work", "45")
MEDICAL = ("Medical equipments, pharmaceuticals and personal care products", "33")
LONG = ("The hospital needs 40 electric beds with side rails and 40 bedside patient monitors (ECG, SpO2, NIBP). "
        * 22).strip()  # ~2,300 characters: more than the embedded text keeps
COLUMNS = ["tender_id", "title", "description", "buyer", "country", "closing_date"]
# id, title, description, (sector, code) or None for Unclassified, confidence
FIRST = [
    ("SEC-C1", "Rehabilitation of the district road network", "Resurfacing 14 km of district roads and drains.",
     BUILD, 0.92),
    ("SEC-C2", "Construction of a primary school block", "Four classrooms, toilets and a staff room.", BUILD, 0.6),
    ("SEC-C3", "Bridge repair works on the river crossing", "Deck and bearing replacement of the river bridge.",
     BUILD, 0.88),
    ("SEC-M1", "Supply of hospital beds and patient monitors", LONG, MEDICAL, 0.95),
    ("SEC-M2", "Supply of surgical gloves and face masks", "Nitrile gloves and three-ply masks for clinics.",
     MEDICAL, 0.81),
    ("SEC-U1", "Supply of assorted items for the municipal office", "Various items as listed in the schedule.",
     None, 0.2),
    ("SEC-U2", "Framework agreement for miscellaneous services", "Services as required over two years.", None, 0.1),
    ("SEC-U3", "Road maintenance and other services for the district", "Road maintenance, grass cutting and "
     "other services for the district council.", None, 0.3),
]
SECOND = [
    ("SEC-U4", "Provision of sundry services to the regional office", "Sundry services as per the terms.", None, 0.15),
    ("SEC-C4", "Construction of a district health post", "A two-room health post with a water tank.", BUILD, 0.9),
]


def ingest(settings: Settings, base: Path, run_id: str, notices: list[tuple]) -> dict:
    """The pipeline's stages, with the enrichment's sector fields set as the classifier sets them."""
    batch = write_rows(base / f"{run_id}.csv", [dict(zip(COLUMNS, [tid, title, description, "District Council",
                                                                  "Kenya", "2030-01-31"], strict=True))
                                               for tid, title, description, *_ in notices])
    run = pipeline.fetch(settings, run_id, source=str(batch))
    pipeline.validate(settings, run)
    pipeline.enrich(settings, run)
    wanted = {n[0]: n for n in notices}
    path = staging.location(run) / "enriched.jsonl"
    rows = list(staging.read_jsonl(path))
    for row in rows:
        _, _, _, sector, confidence = wanted[row["record"]["tender_id"]]
        label, code = sector or ("Unclassified", "")
        row["enrichment"].update(sector=label, sector_code=code, sector_confidence=confidence)
    staging.write_jsonl(path, iter(rows))
    pipeline.embed(settings, run)
    rows = list(staging.read_jsonl(path))
    for row in rows:  # the sector as set above, not as the embed stage decides it again from the vector
        row.pop(REFINED, None)
    staging.write_jsonl(path, iter(rows))
    return pipeline.upsert(settings, run)


@pytest.fixture(scope="module")
def world(chroma, tmp_path_factory):
    host, port = chroma
    base = tmp_path_factory.mktemp("sectors")
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "sector_ui"}
    settings = Settings(**where, staging_uri=str(base / "staging"), embed_backend="local", enrich_backend="local")
    assert ingest(settings, base, "sectors-1", FIRST)["upserted"] == len(FIRST)
    api = ApiSettings(**where, feedback_path=str(base / "fb.jsonl"), embed_backend="local", stats_ttl_s=3600)
    with TestClient(create_app(api)) as client:
        wait_app_ready(client)
        yield {"client": client, "settings": settings, "api": api, "base": base, "where": where}


def chroma_document(world, tid: str) -> tuple[str, dict]:
    """(embedded text, card) as stored: in the lexical index (Chroma holds ids and vectors only)."""
    card, text = stored.notices(world["settings"])[tid]
    return text, card


def expected(notices) -> dict[str, tuple[str, str, float]]:
    return {tid: ((s or ("Unclassified", ""))[0], (s or ("", ""))[1], conf) for tid, _, _, s, conf in notices}


# --------------------------------------------------------------------------- the tender page and /tenders/{id}
def test_tender_page_shows_the_published_description_and_not_the_embedded_text(world):
    client = world["client"]
    document, _ = chroma_document(world, "SEC-M1")
    sector_line = next(line for line in document.splitlines() if line.startswith("Sector:"))
    keyword_line = next(line for line in document.splitlines() if line.startswith("Keywords:"))
    assert LONG[:1500] in document and LONG not in document  # the embedded text keeps only the start
    page = html.unescape(client.get("/t/SEC-M1").text)
    assert LONG in page  # the description as published, whole
    assert sector_line not in page and keyword_line not in page and "Keywords: " not in page
    assert "Sector: " not in page and "Reference: SEC-M1" not in page
    assert "Notice text" not in page
    for tid, title, description, *_ in FIRST:
        text = html.unescape(client.get(f"/t/{tid}").text)
        assert title in text and description in text, tid


def test_tenders_json_carries_sector_code_confidence_and_description(world):
    client = world["client"]
    for tid, (sector, code, confidence) in expected(FIRST).items():
        body = client.get(f"/tenders/{tid}").json()
        assert (body["sector"], body["sector_code"]) == (sector, code), tid
        assert body["sector_confidence"] == pytest.approx(confidence, abs=1e-4), tid
        assert body["description"] == next(n[2] for n in FIRST if n[0] == tid)
    spec = client.get("/openapi.json").json()["components"]["schemas"]["Tender"]["properties"]
    assert spec["document"].get("deprecated") is True and "description" in spec


def test_chroma_does_not_store_the_card_fields(world):
    coll = store.get_client(world["settings"]).get_collection(world["where"]["tender_collection"])
    got = coll.get(include=["metadatas", "documents"])
    assert not any({"description", "sector_code", "sector_confidence"} & set(m or {}) for m in got["metadatas"])
    assert not any(got["documents"] or [])
    _, card = chroma_document(world, "SEC-M1")
    assert card["sector"] == MEDICAL[0] and card["description"] == LONG


def test_page_marks_unclassified_and_a_tentative_sector(world):
    client = world["client"]
    unclassified = html.unescape(client.get("/t/SEC-U1").text)
    assert 'class="tag sector unclassified"' in unclassified and "No sector could be assigned" in unclassified
    sure = html.unescape(client.get("/t/SEC-C1").text)
    assert "CPV division 45 · confidence 92%" in sure and "· likely" not in sure
    tentative = html.unescape(client.get("/t/SEC-C2").text)
    assert "Construction work · likely" in tentative and "confidence 60%" in tentative


def test_ask_answers_from_the_notice_words(world):
    body = world["client"].post("/tenders/SEC-M1/ask", json={"question": "How many beds are needed?"}).json()
    assert "40 electric beds" in body["answer"]
    assert "Keywords:" not in body["notice_text"] and "Sector:" not in body["notice_text"]


# --------------------------------------------------------------------------- search results and the sector filter
def test_search_results_carry_sector_code_and_confidence(world):
    results = world["client"].get("/search", params={"q": "district road", "limit": 50}).json()["results"]
    want = expected(FIRST)
    assert {r["id"] for r in results} >= {"SEC-C1", "SEC-U3"}
    for r in results:
        sector, code, confidence = want[r["id"]]
        assert (r["sector"], r["sector_code"]) == (sector, code)
        assert r["sector_confidence"] == pytest.approx(confidence, abs=1e-4)


def test_sector_list_has_counts_codes_and_unclassified_last(world):
    body = world["client"].get("/sectors").json()
    got = {s["sector"]: (s["code"], s["count"]) for s in body["sectors"]}
    want: dict[str, list] = {}
    for sector, code, _ in expected(FIRST).values():
        want.setdefault(sector, [code, 0])[1] += 1
    assert got == {k: tuple(v) for k, v in want.items()}
    assert body["sectors"][-1]["sector"] == "Unclassified" and body["unclassified"] == 3
    assert body["documents"] == len(FIRST)
    stats = world["client"].get("/stats").json()
    assert stats["sectors"]["Unclassified"] == 3 and "Unknown" not in stats["sectors"]


@pytest.mark.parametrize("value", ["Unclassified", "unclassified"])
def test_filtering_by_unclassified_returns_exactly_the_unclassified_notices(world, value):
    results = world["client"].get("/search", params={"q": "supply of services", "sector": value,
                                                     "limit": 100}).json()["results"]
    assert {r["id"] for r in results} == {"SEC-U1", "SEC-U2", "SEC-U3"}
    named = world["client"].get("/search", params={"q": "supply of services", "sector": BUILD[0],
                                                   "limit": 100}).json()["results"]
    assert {r["id"] for r in named} == {"SEC-C1", "SEC-C2", "SEC-C3"}


def test_a_sector_alert_never_matches_an_unclassified_notice(world):
    settings = world["api"].model_copy(update={"alert_min_score": 0.0})
    batch = BatchSearch(settings)
    ids = [n[0] for n in FIRST]
    anywhere = {card["id"] for card, _ in batch.matches({"q": "road maintenance"}, ids)}
    assert "SEC-U3" in anywhere  # the words match it...
    in_sector = {card["id"] for card, _ in batch.matches({"q": "road maintenance", "sector": BUILD[0]}, ids)}
    assert "SEC-U3" not in in_sector and "SEC-C1" in in_sector  # ...but it has no confident sector
    assert all(card["sector"] == BUILD[0] for card, _ in batch.matches({"q": "road", "sector": BUILD[0]}, ids))
    followed = batch.cards(["SEC-U3", "SEC-C1"])
    assert followed["SEC-U3"]["sector"] == "Unclassified" and followed["SEC-C1"]["sector_code"] == "45"


# --------------------------------------------------------------------------- counts per index version
def test_counts_are_kept_per_index_version_and_refresh_after_a_new_one(world):
    client = world["client"]
    before = client.get("/sectors").json()
    assert client.get("/sectors").json()["computed_at"] == before["computed_at"]  # same version: not re-counted
    index = open_index(world["settings"].lexical_dir)
    generation = index.generation()
    assert ingest(world["settings"], world["base"], "sectors-2", SECOND)["upserted"] == len(SECOND)
    assert index.generation() != generation
    deadline = time.monotonic() + 20
    while True:  # the first request after the commit is served the old counts while they are re-aggregated
        body = client.get("/sectors").json()
        if body["documents"] == len(FIRST) + len(SECOND):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    got = {s["sector"]: s["count"] for s in body["sectors"]}
    assert body["unclassified"] == got["Unclassified"] == 4 and got[BUILD[0]] == 4
    unclassified = client.get("/search", params={"q": "services", "sector": "Unclassified", "limit": 100}).json()
    assert {r["id"] for r in unclassified["results"]} == {"SEC-U1", "SEC-U2", "SEC-U3", "SEC-U4"}


def test_the_sector_list_is_what_the_page_asks_for(world):
    script = world["client"].get("/static/app.js").text
    assert 'fetch("/sectors")' in script
    assert json.dumps("Unclassified") in script
