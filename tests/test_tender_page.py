"""The tender page, asking about a tender, reporting-currency values and the CSV export, on a real `chroma run`.

The 240-tender sample is indexed once per session (conftest ``indexed_sample``);
the export-injection and unknown-currency cases ingest their own small batch
through the same pipeline into another collection.
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import pipeline, slots, store
from tender_pipeline.lexical import open_index
from tender_pipeline.settings import Settings
from tests import stored
from tests.services import wait_app_ready as wait_ready

pytestmark = pytest.mark.slow
SAMPLE = Path(__file__).parent / "fixtures" / "sample_tenders.csv"
SOLAR = "IN-GUWA-2026-1001"  # Supply and installation of solar street lights, closes 2026-12-15


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        return {r["tender_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def api(tmp_path_factory, indexed_sample):
    settings = ApiSettings(**indexed_sample, feedback_path=str(tmp_path_factory.mktemp("page") / "fb.jsonl"),
                           embed_backend="local", stats_ttl_s=300)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def odd(chroma, tmp_path_factory) -> tuple[dict, dict]:
    """A small batch with formula-like text and unknown currencies, ingested by the pipeline."""
    base = tmp_path_factory.mktemp("odd")
    batch = base / "odd.csv"
    with batch.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["tender_id", "title", "description", "buyer", "country", "closing_date", "value_amount",
                    "currency"])
        w.writerow(["ODD-1", '=HYPERLINK("http://evil.example/","Supply of office chairs")',
                    "Supply of ergonomic office chairs for the head office.", "+Acme Procurement Unit", "Kenya",
                    "2027-01-15", "250000", "KES"])
        w.writerow(["ODD-2", "@SUM(1+1) office chairs framework", "-2+3 chairs and desks for schools.",
                    "Ministry of Education", "Ghana", "2027-01-20", "5000", ""])
        w.writerow(["ODD-3", "Supply of office chairs for clinics", "Chairs for waiting rooms.",
                    "Ghana Health Service", "Ghana", "2027-01-25", "120000", "GHS"])
    host, port = chroma
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "odd_values"}
    summary = pipeline.run_all(Settings(**where, staging_uri=str(base / "staging"), embed_backend="local",
                                        enrich_backend="local"), "odd", source=str(batch))
    return where, summary


def page_ids(text: str) -> list[str]:
    from urllib.parse import unquote

    return [unquote(m) for m in re.findall(r'href="/t/([^"#?]+)"', text)]


# --------------------------------------------------------------------------- the page
def test_page_shows_stored_fields_source_versions_and_values(api, rows):
    row = rows["PK-NHA-2026-1002"]
    resp = api.get("/t/PK-NHA-2026-1002")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    text = html.unescape(resp.text)
    for value in (row["title"], row["buyer"], row["city"], row["url"], "PKR 47,683,000", "Version 1"):
        assert value in text, value
    assert f'href="{row["url"]}"' in resp.text
    usd = api.get("/tenders/PK-NHA-2026-1002").json()
    assert usd["report_currency"] == "USD" and 100_000 < usd["value_report"] < 250_000  # rupees are not dollars
    assert f"USD {usd['value_report']:,.0f}" in text
    assert "<script" not in resp.text.lower()  # server-rendered: a strict CSP can apply


def test_similar_tenders_are_open_nearest_neighbours(api, rows, indexed_sample):
    today = date.today()
    ids = page_ids(api.get(f"/t/{SOLAR}").text.split('id="similar-h"', 1)[1])
    assert ids and SOLAR not in ids
    for tid in ids:
        closing = rows[tid]["closing_date"]
        assert closing and date.fromisoformat(closing) >= today, (tid, closing)
    # the same order as a plain kNN on the tender's stored vector, closed ones skipped
    client = store.get_client(Settings(**indexed_sample))
    coll = client.get_collection(indexed_sample["tender_collection"])
    vector = np.frombuffer(open_index(Settings(**indexed_sample).lexical_dir).notices([SOLAR])[SOLAR][2], np.int8)
    knn = coll.query(query_embeddings=[vector.astype(np.float32)], n_results=60, include=["metadatas"])
    metas = stored.cards(Settings(**indexed_sample))
    open_order = [t for t in slots.tenders(knn["ids"][0], knn["metadatas"][0])
                  if t != SOLAR and metas[t]["closing_num"] >= int(today.strftime("%Y%m%d"))]
    assert ids == open_order[:len(ids)]


def test_similar_tenders_show_both_values(api, rows):
    """The similar list shows a neighbour's value in its own currency and in the reporting currency."""
    seen = 0
    for tid in list(rows)[:40]:
        section = html.unescape(api.get(f"/t/{tid}").text.split('id="similar-h"', 1)[1])
        for item in re.findall(r"<li>(.*?)</li>", section, re.S):
            value = re.search(r" · ([A-Z]{3}) [0-9][0-9,.]*", item)
            if value and value[1] != "USD":
                assert re.search(r"≈ USD [0-9][0-9,.]*", item), item
                seen += 1
        if seen >= 5:
            break
    assert seen >= 5


def test_unknown_tender_page_is_a_404_page(api):
    resp = api.get("/t/NO-SUCH-TENDER")
    assert resp.status_code == 404 and "No tender with this id" in resp.text


def test_page_answers_a_question_without_javascript(api, rows):
    resp = api.get(f"/t/{SOLAR}", params={"question": "What is the closing date?"})
    assert resp.status_code == 200
    answer = html.unescape(resp.text.split('id="answer"', 1)[1])
    assert "15 December 2026" in answer and "passage" in answer
    long = api.get(f"/t/{SOLAR}", params={"question": "x" * 600})
    assert long.status_code == 200 and "under 500 characters" in long.text


# --------------------------------------------------------------------------- ask
def test_ask_offline_finds_the_closing_date_with_its_position(api):
    body = api.post(f"/tenders/{SOLAR}/ask", json={"question": "What is the closing date?"}).json()
    assert body["mode"] == "extractive" and body["stated"] is True
    assert "15 December 2026" in body["answer"] and "2026-12-15" in body["answer"]
    top = body["passages"][0]
    assert top["field"] == "closing_date" and top["text"] == body["answer"]
    for p in body["passages"]:
        assert body["notice_text"][p["start"]:p["end"]] == p["text"]


@pytest.mark.parametrize(("question", "expected"), [
    ("Who is the buyer?", "Guwahati Municipal Corporation"),
    ("Where will the work be done?", "Dibrugarh"),
    ("How many street lights are needed?", "12 solar-powered LED street lights"),
])
def test_ask_offline_other_questions(api, question, expected):
    body = api.post(f"/tenders/{SOLAR}/ask", json={"question": question}).json()
    assert expected in body["answer"], body


def test_answers_never_quote_another_notice(api, rows):
    # ask the solar-lights notice about hospital beds: whatever comes back is from the solar notice
    body = api.post(f"/tenders/{SOLAR}/ask", json={"question": "Supply of hospital beds and patient monitors"}).json()
    own = api.get(f"/tenders/{SOLAR}").json()
    others = [r["description"] for tid, r in rows.items() if "hospital beds" in r["title"].lower()]
    assert others
    for p in body["passages"]:
        assert p["text"] in body["notice_text"]
        assert not any(p["text"] in o for o in others)
    assert own["document"].split("\n")[0] in body["notice_text"]
    assert all(o not in body["notice_text"] for o in others)


def test_ask_validates_the_question_and_the_id(api):
    assert api.post(f"/tenders/{SOLAR}/ask", json={"question": "x" * 501}).status_code == 422
    assert api.post(f"/tenders/{SOLAR}/ask", json={"question": "   "}).status_code == 422
    missing = api.post("/tenders/NO-SUCH/ask", json={"question": "closing date?"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# --------------------------------------------------------------------------- cards and export
def test_search_results_carry_both_values(api):
    results = api.get("/search", params={"q": "road rehabilitation", "limit": 50}).json()["results"]
    valued = [r for r in results if r["value_amount"] is not None]
    assert {r["currency"] for r in valued} >= {"PKR", "ZAR"}
    for r in valued:
        assert r["report_currency"] == "USD" and r["value_report"] is not None
        if r["currency"] == "GBP":  # the pound is worth more than a dollar, the others far less
            assert r["value_amount"] < r["value_report"] < 2 * r["value_amount"]
        else:
            assert r["value_report"] < r["value_amount"] / 5


def test_csv_export_matches_search_and_streams_up_to_the_limit(api):
    params = {"q": "supply of hospital beds", "country": "Ghana"}
    json_ids = [r["id"] for r in api.get("/search", params={**params, "limit": 100}).json()["results"]]
    resp = api.get("/search.csv", params=params)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert 'filename="tenders-supply-of-hospital-beds.csv"' in resp.headers["content-disposition"]
    text = resp.content.decode("utf-8-sig")
    got = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in got] == json_ids  # default limit 1000 > the candidates: all of them
    assert all(r["country"] == "Ghana" for r in got)
    assert got[0]["page"].endswith("/t/" + got[0]["id"]) and got[0]["rank"] == "1"
    few = list(csv.DictReader(io.StringIO(api.get("/search.csv", params={**params, "limit": 3}).text.lstrip("\ufeff"))))
    assert [r["id"] for r in few] == json_ids[:3]
    assert api.get("/search.csv", params={**params, "limit": 1001}).status_code == 422


def test_accept_text_csv_on_search_returns_the_same_page(api):
    params = {"q": "diesel fuel", "limit": 5, "offset": 2}
    json_ids = [r["id"] for r in api.get("/search", params=params).json()["results"]]
    resp = api.get("/search", params=params, headers={"Accept": "text/csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    assert [r["id"] for r in csv.DictReader(io.StringIO(resp.text.lstrip("\ufeff")))] == json_ids
    assert api.get("/search", params=params, headers={"Accept": "application/json, text/csv;q=0.5"}
                   ).headers["content-type"].startswith("application/json")
    bad = api.get("/search", params={"q": ""}, headers={"Accept": "text/csv"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"


def test_csv_cells_that_look_like_formulas_are_neutralised(odd, tmp_path):
    where, _ = odd
    settings = ApiSettings(**where, feedback_path=str(tmp_path / "fb.jsonl"), embed_backend="local")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        resp = client.get("/search.csv", params={"q": "office chairs"})
    got = {r["id"]: r for r in csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig")))}
    assert got["ODD-1"]["title"] == '\'=HYPERLINK("http://evil.example/","Supply of office chairs")'
    assert got["ODD-1"]["buyer"] == "'+Acme Procurement Unit"
    assert got["ODD-2"]["title"] == "'@SUM(1+1) office chairs framework"
    assert got["ODD-3"]["title"] == "Supply of office chairs for clinics"  # ordinary text untouched
    assert float(got["ODD-3"]["value_amount"]) == 120000.0  # numbers stay numbers
    for row in got.values():
        assert not any(str(v).startswith(("=", "+", "-", "@")) for v in row.values())


def test_unknown_currency_stays_searchable_without_a_reporting_value(odd, indexed_sample):
    where, summary = odd
    assert summary["upserted"] == 3
    assert summary["unknown_currency"] == 2 and summary["unknown_currencies"] == {"(none)": 1, "KES": 1}
    metas = stored.cards(Settings(**where))
    assert metas["ODD-1"]["value_amount"] == 250000.0 and metas["ODD-1"]["value_report"] == -1.0
    assert metas["ODD-2"]["value_report"] == -1.0
    assert metas["ODD-3"]["value_report"] > 0 and metas["ODD-3"]["report_currency"] == "USD"
