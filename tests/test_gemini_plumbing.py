"""Unit tests for the Gemini plumbing: retry waits, rate budgets, cache, prompt schema, cost."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from google.genai import errors

from tender_pipeline.gemini.cache import EnrichmentCache, cache_key
from tender_pipeline.gemini.client import run_sync
from tender_pipeline.gemini.prompt import parse_batch, prompt_version, response_schema, user_prompt
from tender_pipeline.gemini.ratelimit import RateLimiter
from tender_pipeline.gemini.retry import RetryPolicy, call_with_retries, is_retryable, retry_after_s
from tender_pipeline.gemini.usage import UsageMeter
from tender_pipeline.models import TenderRecord
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy("")
LABELS = frozenset(d.label for d in TAXONOMY.divisions.values())
DIVISIONS = {code: d.label for code, d in TAXONOMY.divisions.items()}
CODE = sorted(DIVISIONS)[0]


class _Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def api_error(code: int, headers: dict[str, str] | None = None, details: list | None = None) -> errors.APIError:
    body = {"error": {"code": code, "message": "m", "status": "S", **({"details": details} if details else {})}}
    return errors.APIError(code, body, _Response(headers or {}))


# --- retry -------------------------------------------------------------
def test_retry_after_from_header_date_and_retry_info():
    assert retry_after_s(api_error(429, {"Retry-After": "7"})) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_s(api_error(503, {"Retry-After": later})) <= 30
    info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]
    assert retry_after_s(api_error(429, details=info)) == 12.5
    assert retry_after_s(api_error(500)) is None
    assert retry_after_s(ValueError("x")) is None


def test_retryable_codes_match_the_sdk_defaults():
    assert all(is_retryable(api_error(c)) for c in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable(api_error(c)) for c in (400, 401, 403, 404))
    assert is_retryable(ConnectionResetError()) and is_retryable(TimeoutError())


def _run_attempts(failures: list[BaseException], policy: RetryPolicy) -> tuple[list[float], int, object]:
    waits: list[float] = []
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "ok"

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> object:
        try:
            return await call_with_retries(attempt, policy, sleep=fake_sleep)
        except Exception as exc:  # noqa: BLE001 - returned for inspection
            return exc

    result = asyncio.run(main())
    return waits, calls, result


def test_backoff_is_exponential_and_retry_after_sets_a_floor_capped_at_max():
    policy = RetryPolicy(max_retries=4, initial_s=1.0, max_s=20.0, jitter_s=0.0)
    waits, calls, result = _run_attempts(
        [api_error(500), api_error(503), api_error(429, {"Retry-After": "9"}), api_error(429, {"Retry-After": "99"})],
        policy,
    )
    assert result == "ok" and calls == 5
    assert waits == [1.0, 2.0, 9.0, 20.0]  # 1, 2, max(4, 9), min(99, cap)


def test_retries_stop_after_max_and_non_retryable_errors_are_not_retried():
    policy = RetryPolicy(max_retries=2, initial_s=0.0, jitter_s=0.0)
    waits, calls, result = _run_attempts([api_error(500)] * 5, policy)
    assert calls == 3 and isinstance(result, errors.APIError) and result.code == 500
    waits, calls, result = _run_attempts([api_error(400)], policy)
    assert calls == 1 and waits == [] and result.code == 400


# --- rate limiter --------------------------------------------------------
def test_rate_limiter_spreads_requests_beyond_the_minute_budget():
    now = [0.0]
    limiter = RateLimiter(rpm=60, tpm=10**9, clock=lambda: now[0])
    assert [limiter.reserve(1) for _ in range(60)] == [0.0] * 60  # the burst fits the budget
    assert limiter.reserve(1) == pytest.approx(1.0)  # the 61st waits one refill interval
    assert limiter.reserve(1) == pytest.approx(2.0)
    now[0] = 10.0  # time passes: the debt is repaid, 8 requests' worth refilled
    assert limiter.reserve(1) == 0.0


def test_rate_limiter_budgets_tokens():
    now = [0.0]
    limiter = RateLimiter(rpm=10**6, tpm=6000, clock=lambda: now[0])
    assert limiter.reserve(6000) == 0.0
    assert limiter.reserve(3000) == pytest.approx(30.0)  # 3000 tokens at 100 tokens/s


# --- cache ---------------------------------------------------------------
def _writer(path: str, worker: int) -> None:
    cache = EnrichmentCache(path)
    for i in range(50):
        cache.put_many({f"k{worker}-{i}": json.dumps({"w": worker, "i": i})}, "m", "v")


def test_cache_is_safe_for_concurrent_processes(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    EnrichmentCache(path)
    procs = [multiprocessing.get_context("spawn").Process(target=_writer, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EnrichmentCache(path)
    assert len(cache) == 200
    assert json.loads(cache.get_many(["k3-49"])["k3-49"]) == {"w": 3, "i": 49}


def test_cache_key_changes_with_content_model_and_prompt():
    base = cache_key("h", "m", "v")
    assert base == cache_key("h", "m", "v")
    assert len({base, cache_key("h2", "m", "v"), cache_key("h", "m2", "v"), cache_key("h", "m", "v2")}) == 4


# --- prompt ------------------------------------------------------------
def test_schema_comes_from_the_enrichment_model_with_taxonomy_sectors():
    item = response_schema(TAXONOMY)["properties"]["items"]["items"]
    assert item["properties"]["sector_code"]["enum"] == sorted(TAXONOMY.divisions)
    assert item["properties"]["sector_confidence"]["type"] == "number" and "sector" not in item["properties"]
    assert set(item["properties"]["procurement_type"]["enum"]) == {"Works", "Supply", "Services"}
    assert "enrichment_source" not in item["properties"] and "tender_id" in item["required"]
    assert "title" not in json.dumps(item)
    assert prompt_version(TAXONOMY) == prompt_version(TAXONOMY)


def test_user_prompt_truncates_long_descriptions():
    rec = TenderRecord(tender_id="A", title="T", description="x" * 5000)
    line = user_prompt([rec], max_chars=300).splitlines()[1]
    assert json.loads(line)["description"] == "x" * 300


def _item(tid: str, **extra: object) -> dict:
    return {"tender_id": tid, "summary": "s", "sector_code": CODE, "sector_confidence": 0.8, "subsector": "",
            "procurement_type": "Supply",
            "keywords": ["a"], "is_corrigendum": False, **extra}


def test_parse_batch_keeps_only_valid_expected_items():
    text = json.dumps({"items": [
        _item("A", keywords=[f"k{i}" for i in range(20)], enrichment_source="local"),
        _item("A", summary="duplicate"),
        _item("B", sector_code="99"),  # off the list: kept, Unclassified, reported
        _item("C", procurement_type="Leasing"),
        _item("E", sector_confidence=0.2),  # below the threshold: Unclassified, confidence kept
        _item("Z"),  # not asked for
        "garbage",
    ]})
    found, off_list = parse_batch(text, ["A", "B", "C", "D", "E"], DIVISIONS, min_confidence=0.35)
    assert set(found) == {"A", "B", "E"} and off_list == {"B"}
    assert found["A"].summary == "s" and len(found["A"].keywords) == 12
    assert (found["A"].sector, found["A"].sector_code, found["A"].sector_confidence) == (DIVISIONS[CODE], CODE, 0.8)
    assert found["A"].enrichment_source == "gemini"
    assert (found["B"].sector, found["B"].sector_code) == ("Unclassified", "")
    assert (found["E"].sector, found["E"].sector_code, found["E"].sector_confidence) == ("Unclassified", "", 0.2)
    assert parse_batch('{"items": [', ["A"], DIVISIONS) == ({}, set())
    assert parse_batch(None, ["A"], DIVISIONS) == ({}, set())


# --- usage -------------------------------------------------------------
class _Usage:
    prompt_token_count = 1_000_000
    cached_content_token_count = 400_000
    candidates_token_count = 100_000
    thoughts_token_count = None


def test_cost_bills_cached_input_at_the_cached_rate():
    settings = Settings(gemini_price_input_per_m=0.10, gemini_price_cached_input_per_m=0.025,
                        gemini_price_output_per_m=0.40)
    meter = UsageMeter(settings)
    meter.add_response(_Usage())
    snap = meter.snapshot()
    assert snap["requests"] == 1 and snap["input_tokens"] == 1_000_000 and snap["cached_tokens"] == 400_000
    assert snap["estimated_cost_usd"] == pytest.approx(0.6 * 0.10 + 0.4 * 0.025 + 0.1 * 0.40)


def test_run_sync_inside_and_outside_a_loop():
    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    assert run_sync(value) == 7

    async def outer() -> int:
        started = time.monotonic()
        result = run_sync(value)
        assert time.monotonic() - started < 5
        return result

    assert asyncio.run(outer()) == 7
