"""The paginated OCDS API source against a fake portal on a real local HTTP server.

Three 6-hour intervals of 2026-11-27, two releases per page, with a slow page,
a 429 (Retry-After: 1) and a 500 on their first request. Each interval's pages
are asked for once (plus the retries), every release is read exactly once, and
another run of an interval asks the portal for nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chromadb
import httpx
import pytest

from tender_pipeline import pipeline, staging
from tender_pipeline.ocds.api import OcdsApiError, first_url
from tender_pipeline.settings import Settings
from tests import stored
from tests.ocds_portal import FakePortal

T0 = datetime(2026, 11, 27, tzinfo=UTC)
INTERVALS = [(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 6)) for h in (0, 6, 12)]
FAULTS = {("2026-11-27T00:00:00Z", 2): ["slow"], ("2026-11-27T06:00:00Z", 2): ["429"],
          ("2026-11-27T12:00:00Z", 0): ["500"]}
OPTIONS = {"ocds_page_size": 2, "ocds_request_delay_s": 0, "ocds_retry_max_s": 5}


def _fetched(run: str) -> dict:
    return staging.read_json(Path(run) / "fetch.json")


def test_first_url_fills_the_interval_and_page_size():
    uri = "ocds+https://h/s?from={start}&to={end:%Y-%m-%dT%H:%M:%S}&limit={page_size}"
    assert first_url(uri, 50, INTERVALS[0]) == "https://h/s?from=2026-11-27T00:00:00Z&to=2026-11-27T06:00:00&limit=50"


def test_backfill_reads_every_release_once_and_a_rerun_asks_for_nothing(tmp_path):
    with FakePortal(faults=FAULTS) as portal:
        settings = Settings(incoming_uri=portal.template, staging_uri=str(tmp_path / "staging"), **OPTIONS)
        runs = [pipeline.fetch(settings, f"backfill__{i}", interval=iv) for i, iv in enumerate(INTERVALS)]
        first = portal.requests_per_page()
        # every page once, the faulty ones once more; the slow page just took longer
        assert first == {("2026-11-27T00:00:00Z", 0): 1, ("2026-11-27T00:00:00Z", 2): 1,
                         ("2026-11-27T06:00:00Z", 0): 1, ("2026-11-27T06:00:00Z", 2): 2,
                         ("2026-11-27T12:00:00Z", 0): 2, ("2026-11-27T12:00:00Z", 2): 1}
        assert [s for *_, s in portal.log].count(429) == 1
        assert _fetched(runs[1])["api"]["retries"] == {"429": 1} and _fetched(runs[1])["api"]["waited_s"] >= 1
        assert _fetched(runs[2])["api"]["retries"] == {"500": 1}

        read = {}
        for run in runs:
            pipeline.validate(settings, run)
            valid = staging.read_json(Path(run) / "validate.json")
            read[Path(run).name] = valid["rows_read"]
        assert read == {"backfill__0": 4, "backfill__1": 3, "backfill__2": 4}  # 11 releases, each once

        # another run of the same intervals (a second backfill, a manual rerun): claimed, nothing asked
        again = [pipeline.fetch(settings, f"rerun__{i}", interval=iv) for i, iv in enumerate(INTERVALS)]
        assert [len(_fetched(r)["files"]) for r in again] == [0, 0, 0]
        assert [_fetched(r)["skipped_files"][0]["claimed_by"] for r in again] == [
            "backfill__0", "backfill__1", "backfill__2"]
        # a retry of a run that claimed its interval replays the stored pages
        retry = pipeline.fetch(settings, "backfill__1", interval=INTERVALS[1])
        assert [f["sha256"] for f in _fetched(retry)["files"]] == [f["sha256"] for f in _fetched(runs[1])["files"]]
        assert _fetched(retry)["api"]["pages_reused"] == 2
        assert portal.requests_per_page() == first


def test_a_failed_fetch_resumes_after_the_last_stored_page(tmp_path):
    faults = {("2026-11-27T00:00:00Z", 2): ["500", "503"]}
    with FakePortal(faults=faults) as portal:
        settings = Settings(incoming_uri=portal.template, staging_uri=str(tmp_path / "staging"),
                            **{**OPTIONS, "ocds_max_retries": 1})
        with pytest.raises(httpx.HTTPStatusError, match="HTTP 503 from http://127.0.0.1:\\d+/Published"):
            pipeline.fetch(settings, "scheduled__1", interval=INTERVALS[0])
        run = pipeline.fetch(settings, "scheduled__1", interval=INTERVALS[0])  # Airflow's task retry
    assert portal.requests_per_page() == {("2026-11-27T00:00:00Z", 0): 1, ("2026-11-27T00:00:00Z", 2): 3}
    assert [f["name"] for f in _fetched(run)["files"]] == ["ocds-20261127T0000-page-0001.json",
                                                          "ocds-20261127T0000-page-0002.json"]


def test_a_refused_request_is_a_user_error_without_the_query(tmp_path):
    with FakePortal() as portal:
        settings = Settings(incoming_uri=f"ocds+{portal.base}/wrong?key=SECRET&from={{start}}",
                            staging_uri=str(tmp_path / "staging"), **OPTIONS)
        with pytest.raises(OcdsApiError, match="HTTP 404 from http://127.0.0.1:\\d+/wrong") as err:
            pipeline.fetch(settings, "scheduled__1", interval=INTERVALS[0])
    assert "SECRET" not in str(err.value)


@pytest.fixture
def env(monkeypatch, tmp_path, chroma) -> Settings:
    host, port = chroma
    values = {"CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": f"t_{uuid.uuid4().hex[:10]}",
              "STAGING_URI": str(tmp_path / "staging"), "OCDS_PAGE_SIZE": "2", "OCDS_REQUEST_DELAY_S": "0",
              "OCDS_RETRY_MAX_S": "5"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_three_intervals_through_airflow(tender_dag, env, monkeypatch):
    from tests.test_ingest_airflow import run_dag

    with FakePortal(faults=FAULTS) as portal:
        monkeypatch.setenv("INCOMING_URI", portal.template)
        # a run for logical date 06:00 covers [00:00, 06:00), and so on
        summaries = [run_dag(tender_dag, env, logical_date=end) for _, end in INTERVALS]
        asked = portal.requests_per_page()
        again = [run_dag(tender_dag, env, logical_date=end) for _, end in INTERVALS]
        assert portal.requests_per_page() == asked  # no page asked for twice
    assert [(s["rows_read"], s["valid"], s["quarantined"], s["inserted"], s["updated"]) for s in summaries] == [
        (4, 3, 1, 3, 0), (3, 3, 0, 2, 1), (4, 4, 0, 4, 0)]
    assert all((s["files"], s["skipped_files"], s["rows_read"]) == (0, 1, 0) for s in again)
    # a forced replay of the first interval (its stored pages) must not put back the notice's older release
    replay = run_dag(tender_dag, env, run_conf={"force": True}, logical_date=INTERVALS[0][1])
    assert (replay["rows_read"], replay["stale"], replay["upserted"]) == (4, 1, 2)
    collection = chromadb.HttpClient(host=env.chroma_host, port=env.chroma_port).get_collection(env.tender_collection)
    assert collection.count() == 9  # ten OCIDs, one of them award-only
    meta = stored.cards(env)["ocds-b5fd17-00000000-0000-4000-8000-000000000001"]
    assert meta["versions"] == 2 and meta["is_corrigendum"] and meta["title"].endswith("(amended)")


def test_a_one_off_source_url_takes_every_page_without_the_ledger(tmp_path):
    with FakePortal() as portal:
        settings = Settings(staging_uri=str(tmp_path / "staging"), **OPTIONS)
        url = (f"ocds+{portal.base}/Published/Notices/OCDS/Search?publishedFrom=2026-11-27T00:00:00Z"
               f"&publishedTo=2026-11-28T00:00:00Z&limit={{page_size}}")
        run = pipeline.fetch(settings, "manual__1", source=url)
        assert len(_fetched(run)["files"]) == 6 and _fetched(run)["source"].startswith("ocds+http://")
        pipeline.validate(settings, run)
    assert staging.read_json(Path(run) / "validate.json")["rows_read"] == 12
