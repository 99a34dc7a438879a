"""`airflow backfill create` over three intervals from a paginated OCDS API, through a real scheduler.

PostgreSQL metadata DB, LocalExecutor, api-server + scheduler + dag-processor
as separate processes; INCOMING_URI names the fake portal (tests/ocds_portal.py,
a real HTTP server in this process) with a slow page, a 429 and a 500 on their
first request. The backfill's three runs read every release exactly once; a
second backfill that reprocesses the same runs asks the portal for nothing.

Skips with the reason where PostgreSQL can't be reached; under CI=true that fails.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import chromadb
import pytest

from tests.airflow_cluster import (
    interval_start,
    local_storage_env,
    metadata_env,
    require_services,
    running_cluster,
    tails_on_failure,
    unpause,
)
from tests.ocds_portal import FakePortal
from tests.services import AirflowCluster, postgres_database

pytestmark = pytest.mark.slow

DAG_ID = "tender_ingest"
T0 = datetime(2026, 11, 27, tzinfo=UTC)
STARTS = [T0 + timedelta(hours=h) for h in (0, 6, 12)]
FAULTS = {("2026-11-27T00:00:00Z", 2): ["slow"], ("2026-11-27T06:00:00Z", 2): ["429"],
          ("2026-11-27T12:00:00Z", 0): ["500"]}


def _backfill_done(cluster: AirflowCluster, count: int, timeout: float = 900) -> list[dict]:
    """Until ``count`` backfills of the DAG are complete (every run finished); fails on a failed run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.wait_runs(DAG_ID, lambda runs: True, timeout=60)  # raises on a failed run
        backfills = cluster.request("GET", "/backfills", params={"dag_id": DAG_ID}).json()["backfills"]
        if len(backfills) >= count and all(b.get("completed_at") for b in backfills):
            return backfills
        time.sleep(3)
    raise TimeoutError(f"{count} backfill(s) of {DAG_ID} not complete after {timeout}s")


def _stage_json(tmp_path, run_id: str, name: str) -> dict:
    from tender_pipeline import staging

    return staging.read_json(staging.run_dir(str(tmp_path / "staging"), run_id) / name)


def _summary(tmp_path, run_id: str) -> dict:
    return _stage_json(tmp_path, run_id, "summary.json")


def test_backfill_three_intervals_from_an_ocds_api(tmp_path):
    require_services("the OCDS backfill test", redis=False)
    with FakePortal(faults=FAULTS) as portal, postgres_database() as airflow_db:
        dag_env = {
            "TENDER_START_DATE": "2026-01-01T00:00:00+00:00", "TENDER_CATCHUP": "false", "TENDER_RETRIES": "0",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            **local_storage_env(tmp_path),
            "INCOMING_URI": portal.template, "OCDS_PAGE_SIZE": "2", "OCDS_REQUEST_DELAY_S": "0",
            "OCDS_RETRY_MAX_S": "5",
        }
        with running_cluster(tmp_path, {**metadata_env(airflow_db, "LocalExecutor"), **dag_env},
                             collection="ocds_backfill", components=("api-server", "scheduler", "dag-processor"),
                             gemini_pool=2) as cluster, tails_on_failure(cluster):
            cluster.wait_dag(DAG_ID, timeout=180)
            unpause(cluster, DAG_ID)
            cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", STARTS[0].isoformat(),
                        "--to-date", STARTS[-1].isoformat(), "--max-active-runs", "1")
            _backfill_done(cluster, 1)
            runs = {interval_start(r): r for r in cluster.dag_runs(DAG_ID) if r["run_type"] == "backfill"}
            assert sorted(runs) == STARTS
            asked = portal.requests_per_page()
            # the interval the scheduler itself ran (today's) asks for other pages: only the backfill's count here
            backfill_pages = {k: v for k, v in asked.items() if k[0].startswith("2026-11-27")}
            assert backfill_pages == {("2026-11-27T00:00:00Z", 0): 1, ("2026-11-27T00:00:00Z", 2): 1,
                                      ("2026-11-27T06:00:00Z", 0): 1, ("2026-11-27T06:00:00Z", 2): 2,
                                      ("2026-11-27T12:00:00Z", 0): 2, ("2026-11-27T12:00:00Z", 2): 1}
            first = [_summary(tmp_path, runs[s]["dag_run_id"]) for s in STARTS]
            assert [(s["rows_read"], s["valid"], s["quarantined"], s["inserted"], s["updated"]) for s in first] == [
                (4, 3, 1, 3, 0), (3, 3, 0, 2, 1), (4, 4, 0, 4, 0)]
            fetched = [_stage_json(tmp_path, runs[s]["dag_run_id"], "fetch.json")["api"] for s in STARTS]
            assert fetched[1]["retries"] == {"429": 1} and fetched[1]["waited_s"] >= 1  # Retry-After honoured
            assert fetched[2]["retries"] == {"500": 1}

            # a second backfill reprocessing the same runs: the stored pages, no request to the portal
            cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", STARTS[0].isoformat(),
                        "--to-date", STARTS[-1].isoformat(), "--max-active-runs", "1",
                        "--reprocess-behavior", "completed")
            _backfill_done(cluster, 2)
            again = {k: v for k, v in portal.requests_per_page().items() if k[0].startswith("2026-11-27")}
            assert again == backfill_pages
            second = [_summary(tmp_path, runs[s]["dag_run_id"]) for s in STARTS]
            # nothing changes, and the first interval's older copy of the amended OCID is not put back
            assert [(s["rows_read"], s["unchanged"], s["stale"], s["upserted"]) for s in second] == [
                (4, 3, 1, 0), (3, 3, 0, 0), (4, 4, 0, 0)]
            chroma = chromadb.HttpClient(host="127.0.0.1", port=int(cluster.env["CHROMA_PORT"]))
            assert chroma.get_collection("ocds_backfill").count() == 9  # ten OCIDs, one award-only
