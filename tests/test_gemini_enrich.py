"""GeminiEnricher against the fake Gemini REST server, through the real google-genai SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

import pytest

from tender_pipeline.enrich import Enricher, build_enricher
from tender_pipeline.enrich.gemini import GeminiEnricher
from tender_pipeline.enrich.offline import OfflineEnricher
from tender_pipeline.gemini import GeminiConfigError
from tender_pipeline.gemini.cache import EnrichmentCache
from tender_pipeline.models import TenderRecord
from tender_pipeline.taxonomy import load_taxonomy
from tests.gemini_fake import TEST_KEY, BadSector, Drop, FakeGemini, Malformed, Status, gemini_settings

TAXONOMY = load_taxonomy("")
LABELS = {d.label for d in TAXONOMY.divisions.values()}


def records(n: int = 20, prefix: str = "T") -> list[TenderRecord]:
    return [
        TenderRecord(tender_id=f"{prefix}-{i}", title=f"Supply of office chairs lot {i}",
                     description="Ergonomic chairs for the ministry offices.", buyer="Ministry of Works",
                     country="Kenya", cpv_codes=["39110000"] if i % 2 else [])
        for i in range(n)
    ]


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


def make(fake: FakeGemini, tmp_path, **overrides) -> GeminiEnricher:
    """An enricher on the fake server with a keyword-only fallback (no local model load)."""
    settings = gemini_settings(fake.base_url, tmp_path, **overrides)
    return GeminiEnricher(settings, fallback=OfflineEnricher(TAXONOMY, embedder=None))


@pytest.mark.parametrize("batch_size", [5, 7, 20])
def test_twenty_records_take_ceil_n_over_batch_requests(fake, tmp_path, batch_size):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=batch_size)
    recs = records(20)
    out = enricher.enrich(recs)

    assert fake.count("generate") == math.ceil(20 / batch_size)
    assert [e.tender_id for e in out] == [r.tender_id for r in recs]
    assert {e.enrichment_source for e in out} == {"gemini"}
    assert all(e.sector in LABELS for e in out)
    asked = [tid for entry in fake.log("generate") for tid in entry.record_ids]
    assert sorted(asked) == sorted(r.tender_id for r in recs)
    usage = enricher.usage()
    assert usage["requests"] == fake.count("generate")
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["estimated_cost_usd"] > 0 and usage["fallbacks"] == 0


def test_requests_carry_schema_and_cached_taxonomy_instruction(fake, tmp_path):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=5)
    enricher.enrich(records(10))

    (create,) = fake.log("cache_create")
    instruction = create.body["systemInstruction"]["parts"][0]["text"]
    assert all(label in instruction for label in LABELS)
    for entry in fake.log("generate"):
        config = entry.body["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        item = config["responseJsonSchema"]["properties"]["items"]["items"]
        assert set(item["properties"]["sector_code"]["enum"]) == set(TAXONOMY.divisions)
        assert "sector" not in item["properties"]  # the label is looked up, never copied from the answer
        assert "enrichment_source" not in item["properties"]  # the model never claims its own provenance
        assert entry.body["cachedContent"] == "cachedContents/c1"
        assert "systemInstruction" not in entry.body
    assert fake.count("cache_delete") == 1  # no storage billed after the run
    assert enricher.usage()["cached_tokens"] > 0


def test_short_instruction_or_cache_failure_goes_inline(fake, tmp_path):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=5, gemini_cache_min_tokens=10**6)
    enricher.enrich(records(10))
    assert fake.count("cache_create") == 0

    fake.script("cache_create", Status(400))
    make(fake, tmp_path / "b", gemini_enrich_batch_size=5).enrich(records(10))
    assert fake.count("cache_create", status=400) == 1
    for entry in fake.log("generate"):
        assert "cachedContent" not in entry.body
        assert "Taxonomy" in entry.body["systemInstruction"]["parts"][0]["text"]


def test_429_with_retry_after_is_retried_after_the_requested_wait(fake, tmp_path):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=20)
    fake.script("generate", Status(429, retry_after=1))
    started = time.monotonic()
    out = enricher.enrich(records(20))
    elapsed = time.monotonic() - started

    assert [r.status for r in fake.log("generate")] == [429, 200]
    assert elapsed >= 0.95  # backoff alone would be ~0.01 s
    assert {e.enrichment_source for e in out} == {"gemini"}
    assert enricher.usage()["retries"] == 1


def test_429_with_google_retry_info_delay_is_honoured(fake, tmp_path):
    enricher = make(fake, tmp_path)
    fake.script("generate", Status(429, retry_delay="0.6s"))
    started = time.monotonic()
    enricher.enrich(records(3))
    assert time.monotonic() - started >= 0.55
    assert fake.count("generate") == 2


def test_500_storm_ends_in_marked_fallbacks_which_are_not_cached(fake, tmp_path):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=2, gemini_max_concurrency=1,
                    gemini_breaker_failures=2)
    fake.storm("generate", 500)
    recs = records(10)
    out = enricher.enrich(recs)

    assert [e.tender_id for e in out] == [r.tender_id for r in recs]
    assert {e.enrichment_source for e in out} == {"fallback"}
    assert all(e.sector in LABELS for e in out)
    # 2 batches x (1 + 2 retries), then the breaker stops hammering a failing service
    assert fake.count("generate") == 6
    usage = enricher.usage()
    assert usage["fallbacks"] == 10 and usage["breaker_open"] == 1 and usage["retries"] == 4
    assert usage["failed_requests"] == 6
    assert len(EnrichmentCache(tmp_path / "enrich_cache.sqlite")) == 0

    fake.calm()
    again = make(fake, tmp_path).enrich(recs)
    assert {e.enrichment_source for e in again} == {"gemini"}  # fallbacks get another chance


def test_malformed_json_triggers_per_record_retry(fake, tmp_path):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=4)
    fake.script("generate", Malformed())
    recs = records(4)
    out = enricher.enrich(recs)

    log = fake.log("generate")
    assert len(log) == 1 + 4
    assert len(log[0].record_ids) == 4
    assert sorted(len(entry.record_ids) for entry in log[1:]) == [1, 1, 1, 1]
    assert {e.enrichment_source for e in out} == {"gemini"}
    assert enricher.usage()["record_retries"] == 4


def test_missing_records_are_retried_alone_and_off_list_sectors_take_the_offline_answer(fake, tmp_path, caplog):
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=10)
    recs = records(10)
    recs[3] = TenderRecord(tender_id="T-3", title="Home to school transport for pupils by taxi and minibus")
    fake.script("generate", Drop(ids=frozenset({"T-5"})))
    fake.per_record["T-3"] = BadSector()  # always answered with a sector code outside the enum
    with caplog.at_level("WARNING"):
        out = enricher.enrich(recs)

    by_id = {e.tender_id: e for e in out}
    assert by_id["T-5"].enrichment_source == "gemini"  # missing once, then answered alone
    offline = OfflineEnricher(TAXONOMY).enrich([recs[3]])[0]
    assert by_id["T-3"].enrichment_source == "gemini" and by_id["T-3"].summary == "Summary of tender T-3"
    assert (by_id["T-3"].sector, by_id["T-3"].sector_code) == (offline.sector, offline.sector_code) \
        == (TAXONOMY.divisions["60"].label, "60")  # the offline classifier's answer, never "99"
    assert "outside the taxonomy" in caplog.text and "T-3" in caplog.text
    assert enricher.usage()["off_list_sectors"] == 1
    assert [e.tender_id for e in out] == [r.tender_id for r in recs]
    alone = sorted(entry.record_ids[0] for entry in fake.log("generate")[1:])
    assert alone == ["T-5"]  # an off-list code costs no second request


def test_off_list_sector_on_a_vague_notice_is_unclassified(fake, tmp_path):
    enricher = make(fake, tmp_path)
    fake.per_record["V"] = BadSector()
    vague = TenderRecord(tender_id="V", title="Open tender award", description="See the attached documents.")
    [out] = enricher.enrich([vague])
    assert (out.sector, out.sector_code) == ("Unclassified", "") and out.enrichment_source == "gemini"


def test_answers_carry_codes_confidence_and_the_cpv_division_wins(fake, tmp_path):
    low = make(fake, tmp_path, sector_min_confidence=0.95)  # the fake answers 0.9
    recs = [r.model_copy(update={"cpv_codes": []}) for r in records(4)]
    recs[0] = TenderRecord(tender_id="T-0", title="Anything", cpv_codes="45233140-2")
    out = low.enrich(recs)
    assert (out[0].sector_code, out[0].sector_confidence, out[0].sector) == ("45", 1.0, "Construction work")
    assert all((e.sector, e.sector_code, e.sector_confidence) == ("Unclassified", "", 0.9) for e in out[1:])
    sure = make(fake, tmp_path / "sure").enrich([r.model_copy(update={"cpv_codes": []}) for r in records(4)])
    assert all(e.sector == TAXONOMY.divisions[e.sector_code].label and e.sector_confidence == 0.9 for e in sure)


def test_cache_means_retries_and_backfills_do_not_pay_twice(fake, tmp_path):
    recs = records(20)
    first = make(fake, tmp_path, gemini_enrich_batch_size=10).enrich(recs)
    assert fake.count("generate") == 2

    second_enricher = make(fake, tmp_path, gemini_enrich_batch_size=10)
    second = second_enricher.enrich(recs)
    assert fake.count("generate") == 2  # nothing new sent
    assert second == first
    assert second_enricher.usage()["cache_hits"] == 20

    changed = [r.model_copy(update={"title": "Changed title"}) if r.tender_id == "T-7" else r for r in recs]
    make(fake, tmp_path, gemini_enrich_batch_size=10).enrich(changed)
    assert fake.log("generate")[-1].record_ids == ["T-7"]

    make(fake, tmp_path, gemini_enrich_model="gemini-other", gemini_enrich_batch_size=10).enrich(recs)
    assert fake.count("generate") == 5  # another model is another answer
    assert fake.log("generate")[-1].path.endswith("/models/gemini-other:generateContent")


def test_auth_failure_raises_a_clear_error_without_the_key(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    enricher = make(fake, tmp_path)
    fake.script("generate", Status(403))
    with pytest.raises(GeminiConfigError, match="HTTP 403") as info:
        enricher.enrich(records(3))
    assert TEST_KEY not in str(info.value)
    assert TEST_KEY not in caplog.text


def test_key_never_appears_in_logs_repr_or_usage(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    enricher = make(fake, tmp_path, gemini_enrich_batch_size=3)
    fake.script("generate", Status(429, retry_after=0), Status(500), Malformed())
    enricher.enrich(records(6))
    assert fake.log("generate")[0].headers["x-goog-api-key"] == TEST_KEY  # sent, in a header only
    assert all(TEST_KEY not in entry.path for entry in fake.requests)
    for text in (caplog.text, repr(enricher), str(enricher.settings), repr(enricher.settings),
                 json.dumps(enricher.usage())):
        assert TEST_KEY not in text


def test_missing_key_is_a_config_error(tmp_path):
    settings = gemini_settings("http://127.0.0.1:9", tmp_path, gemini_api_key=None)
    with pytest.raises(GeminiConfigError, match="GEMINI_API_KEY"):
        GeminiEnricher(settings)


def test_enrich_works_inside_a_running_event_loop(fake, tmp_path):
    enricher = make(fake, tmp_path)

    async def handler() -> list:
        return enricher.enrich(records(3))  # e.g. a sync call from an async web handler

    out = asyncio.run(handler())
    assert [e.enrichment_source for e in out] == ["gemini"] * 3


def test_build_enricher_selects_gemini(fake, tmp_path):
    enricher = build_enricher(gemini_settings(fake.base_url, tmp_path))
    assert isinstance(enricher, GeminiEnricher) and isinstance(enricher, Enricher)
    assert enricher.enrich([]) == [] and fake.count("generate") == 0
