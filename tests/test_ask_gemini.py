"""Grounded "ask" on the real google-genai SDK against the local fake Gemini server (tests/gemini_fake.py)."""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
from pathlib import Path

import pytest

from tender_pipeline.ask import Asker, build_notice
from tender_pipeline.ask.gemini import INSTRUCTION, NOT_STATED
from tests.gemini_fake import TEST_KEY, FakeGemini, Malformed, Slow, Status, gemini_settings

NOTICES = Path(__file__).parent / "fixtures" / "ask_notices.csv"


@pytest.fixture(scope="module")
def notice():
    """The PK road notice as the search API stores it (document lines + metadata fields)."""
    with NOTICES.open(newline="", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["tender_id"] == "ASK-PK-NHA-4471")
    document = "\n".join([row["title"], f"Buyer: {row['buyer']}.", row["description"],
                          f"Reference: {row['tender_id']}"])
    meta = {k: row[k] for k in ("buyer", "city", "region", "country", "published_date", "closing_date",
                                "currency", "url", "notice_type")}
    meta["value_amount"] = float(row["value_amount"])
    return build_notice(row["tender_id"], document, meta)


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


def asker(fake: FakeGemini, tmp_path, **overrides) -> Asker:
    settings = gemini_settings(fake.base_url, tmp_path, ask_backend="gemini", **overrides)
    return Asker(settings)


def test_grounded_answer_cites_passages_of_this_notice(fake, tmp_path, notice, caplog):
    caplog.set_level(logging.DEBUG)
    result = asker(fake, tmp_path).answer(notice, "How much is the bid security?")
    assert result.mode == "gemini" and result.stated is True
    assert "PKR 2,500,000" in result.answer
    assert [s.passage.text for s in result.support] == [
        "Bid security of PKR 2,500,000 in the form of a bank draft or call deposit must accompany the bid."]
    # the prompt: the rules as system instruction, the notice as numbered passages, then the question
    request = fake.log("generate")[0]
    system = " ".join(p["text"] for p in request.body["systemInstruction"]["parts"])
    assert system == INSTRUCTION and "Not stated in the notice." in system
    user = request.body["contents"][0]["parts"][0]["text"]
    for p in notice.passages:
        assert f"[{p.index}] {p.text}" in user
    assert user.rstrip().endswith("Question: How much is the bid security?")
    assert request.body["generationConfig"]["responseJsonSchema"]["required"] == ["stated", "answer", "passages"]
    assert request.body["generationConfig"]["temperature"] == 0.0
    # the key travels only in the header, and never reaches the logs
    assert request.headers["x-goog-api-key"] == TEST_KEY
    assert TEST_KEY not in caplog.text
    assert result.usage["requests"] == 1 and result.usage["input_tokens"] > 0
    assert result.usage["estimated_cost_usd"] > 0


def test_not_stated_when_the_notice_lacks_the_answer(fake, tmp_path, notice):
    result = asker(fake, tmp_path).answer(notice, "Is there a site visit to the quarry?")
    assert (result.stated, result.answer, result.support, result.mode) == (False, NOT_STATED, [], "gemini")


def test_citations_outside_the_notice_are_not_trusted(fake, tmp_path, notice):
    fake.ask_override = {"stated": True, "answer": "Bid security is USD 1 (from another notice).",
                         "passages": [999, -1, True]}
    result = asker(fake, tmp_path).answer(notice, "How much is the bid security?")
    assert (result.stated, result.answer, result.support) == (False, NOT_STATED, [])


def test_transient_errors_are_retried_and_counted(fake, tmp_path, notice):
    fake.script("generate", Status(503), Status(429, retry_after=0.05))
    a = asker(fake, tmp_path)
    result = a.answer(notice, "What is the closing date?")
    assert result.stated and "4 December 2026" in result.answer
    assert fake.count("generate") == 3 and fake.count("generate", 200) == 1
    assert a.usage()["retries"] == 2 and result.usage["retries"] == 2


def test_gemini_down_falls_back_to_the_extractive_answer(fake, tmp_path, notice, caplog):
    caplog.set_level(logging.INFO)
    fake.storm("generate", 500)
    result = asker(fake, tmp_path).answer(notice, "What is the closing date?")
    assert result.mode == "extractive" and "4 December 2026" in result.answer
    assert "HTTP 500" in result.note and "extractive" in result.note
    assert fake.count("generate") == 3  # the first try and gemini_max_retries=2 retries
    assert TEST_KEY not in caplog.text and TEST_KEY not in result.note
    # the failed attempts are still accounted for, on the answer and in the process total
    assert result.usage["requests"] == 3 and result.usage["failed_requests"] == 3


def test_rejected_key_falls_back_without_leaking_it(fake, tmp_path, notice, caplog):
    caplog.set_level(logging.INFO)
    fake.script("generate", Status(401))
    result = asker(fake, tmp_path).answer(notice, "Where should bids be submitted?")
    assert result.mode == "extractive" and "GEMINI_API_KEY" in result.note
    assert "General Manager (Procurement)" in result.answer
    assert fake.count("generate") == 1  # a rejected key is not retried
    assert TEST_KEY not in caplog.text and TEST_KEY not in result.note


def test_malformed_answer_is_not_stated(fake, tmp_path, notice):
    fake.script("generate", Malformed())
    result = asker(fake, tmp_path).answer(notice, "How much is the bid security?")
    assert (result.stated, result.answer) == (False, NOT_STATED)


def test_long_questions_are_cut_before_the_prompt(fake, tmp_path, notice):
    asker(fake, tmp_path).answer(notice, "bid security " * 200)
    user = fake.log("generate")[0].body["contents"][0]["parts"][0]["text"]
    assert len(user.rsplit("Question: ", 1)[1]) <= 500


def test_concurrent_questions_do_not_share_usage(fake, tmp_path, notice):
    """One asker serves every API thread: each answer reports its own request, the total both."""
    fake.script("generate", Slow(1.5))  # the first request to arrive is answered late
    a = asker(fake, tmp_path)
    got = {}
    slow = threading.Thread(target=lambda: got.__setitem__("slow", a.answer(notice, "How much is the bid security?")))
    slow.start()
    time.sleep(0.5)
    got["fast"] = a.answer(notice, "What is the closing date?")  # starts and ends while the other waits
    slow.join()
    assert fake.count("generate") == 2 and got["slow"].stated and got["fast"].stated
    for result in got.values():
        assert result.usage["requests"] == 1 and result.usage["input_tokens"] > 0
    total = a.usage()
    assert total["requests"] == 2
    assert total["input_tokens"] == got["slow"].usage["input_tokens"] + got["fast"].usage["input_tokens"]
    assert total["estimated_cost_usd"] == pytest.approx(
        got["slow"].usage["estimated_cost_usd"] + got["fast"].usage["estimated_cost_usd"])


@pytest.mark.slow
def test_api_ask_with_gemini_is_grounded_and_accounted(fake, tmp_path, indexed_sample, caplog):
    """POST /tenders/{id}/ask and the tender page with ASK_BACKEND=gemini (the fake), on the indexed sample:
    cited passages of this notice with positions, "not stated", the fallback, and the spend on /metrics."""
    from fastapi.testclient import TestClient

    from search_api.main import create_app
    from search_api.settings import ApiSettings
    from tests.services import wait_app_ready

    caplog.set_level(logging.DEBUG)
    values = gemini_settings(fake.base_url, tmp_path, ask_backend="gemini").model_dump()
    values.update(indexed_sample, embed_backend="local", enrich_backend="local",
                  feedback_path=str(tmp_path / "fb.jsonl"))
    solar = "IN-GUWA-2026-1001"  # Guwahati Municipal Corporation, closes 2026-12-15
    with TestClient(create_app(ApiSettings(**values))) as client:
        wait_app_ready(client)
        body = client.post(f"/tenders/{solar}/ask", json={"question": "Who is the buyer?"}).json()
        assert body["mode"] == "gemini" and body["stated"] is True and "Guwahati Municipal" in body["answer"]
        assert body["passages"] and body["usage"]["requests"] == 1 and body["usage"]["estimated_cost_usd"] > 0
        for p in body["passages"]:
            assert body["notice_text"][p["start"]:p["end"]] == p["text"]
        user = fake.log("generate")[-1].body["contents"][0]["parts"][0]["text"]
        sent = re.findall(r"^\[\d+\] (.*)$", user, re.MULTILINE)
        assert sent == body["notice_text"].split("\n") and solar in sent[0]  # this notice's passages, nothing else

        missing = client.post(f"/tenders/{solar}/ask", json={"question": "Is there a site visit to the quarry?"})
        assert missing.json()["answer"] == NOT_STATED and missing.json()["passages"] == []

        page = client.get(f"/t/{solar}", params={"question": "Who is the buyer?"}).text
        assert "Gemini, grounded" in page.split('id="answer"', 1)[1]

        fake.storm("generate", 503)
        down = client.post(f"/tenders/{solar}/ask", json={"question": "What is the closing date?"}).json()
        assert down["mode"] == "extractive" and "15 December 2026" in down["answer"]
        assert down["usage"]["failed_requests"] == 3
        fake.calm()

        metrics = client.get("/metrics").text
        spent = sum(b["usage"]["estimated_cost_usd"] for b in (body, missing.json()))
        assert "search_api_ask_gemini_requests_total 6.0" in metrics  # 1 + 1 + 1 (page) + 3 failed
        assert "search_api_ask_gemini_failed_requests_total 3.0" in metrics
        cost = next(line for line in metrics.splitlines() if line.startswith("search_api_ask_gemini_estimated_cost"))
        assert float(cost.split()[-1]) > spent > 0
        assert TEST_KEY not in metrics
    assert TEST_KEY not in caplog.text
