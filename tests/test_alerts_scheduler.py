"""The asset trigger itself, through a real scheduler: a successful upsert makes the scheduler run tender_alerts.

PostgreSQL metadata DB, LocalExecutor, api-server + scheduler + dag-processor
as separate processes, and the alerts DB on PostgreSQL too. A manual
tender_ingest run ingests a batch; nobody triggers tender_alerts: the
scheduler creates an ``asset_triggered`` run from the ``tenders`` event, whose
extra names the batch's staging folder, and the webhook receives exactly the
batch's matching notices.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.services import (
    BIN,
    AirflowCluster,
    Service,
    free_port,
    postgres_database,
    postgres_unavailable_reason,
    wait_http,
)
from tests.trap import Receiver

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "fixtures" / "sample_tenders.csv"
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    reason = postgres_unavailable_reason()
    if reason:
        (pytest.fail if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else pytest.skip)(reason)
    chroma_port = free_port()
    with postgres_database() as airflow_db, postgres_database("tender_alerts") as alerts_db:
        cluster = AirflowCluster(tmp_path / "airflow-home", tmp_path / "logs", extra_env={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "TENDER_START_DATE": "2099-01-01T00:00:00+00:00",  # no scheduled ingest runs: only ours
            "TENDER_RETRIES": "2", "TENDER_RETRY_DELAY_S": "2",  # a stalled api-server on a loaded box
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            "STAGING_URI": str(tmp_path / "staging") + "/",
            "INCOMING_URI": str(tmp_path / "incoming") + "/",
            "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma_port), "TENDER_COLLECTION": "alerts_sched",
            "DATABASE_URL": alerts_db.replace("postgresql+psycopg2://", "postgresql://"),
            "ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "ALERT_WEBHOOK_BACKOFF_S": "0",
            "ANONYMIZED_TELEMETRY": "False",
        })
        cluster.add(Service("chroma", [str(BIN / "chroma"), "run", "--path", str(tmp_path / "chroma"),
                                       "--host", "127.0.0.1", "--port", str(chroma_port)],
                            tmp_path / "logs" / "chroma.log"))
        try:
            cluster.cli("db", "migrate", timeout=600)
            cluster.cli("pools", "set", "gemini_api", "2", "Gemini API calls")
            cluster.start("api-server", "scheduler", "dag-processor")
            wait_http(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat", 60, cluster.services["chroma"].proc)
            cluster.wait_healthy(timeout=240)
            yield cluster
        except BaseException:
            sys.stderr.write("\n" + cluster.tails(60) + "\n")
            raise
        finally:
            cluster.stop()


def _patient(call, timeout: float = 180):
    """Retry a REST call that timed out: on a loaded 2-core machine the api-server can stall for a while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except httpx.TimeoutException:
            if time.monotonic() > deadline:
                raise


def _wait_success(cluster: AirflowCluster, dag_id: str, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        runs = _patient(lambda: cluster.dag_runs(dag_id))
        failed = [r["dag_run_id"] for r in runs if r["state"] == "failed"]
        assert not failed, f"{dag_id} run(s) failed: {failed}"
        if any(r["state"] == "success" for r in runs):
            return runs
        time.sleep(3)
    raise TimeoutError(f"no successful {dag_id} run after {timeout}s")


def test_upsert_triggers_tender_alerts_through_the_scheduler(cluster: AirflowCluster, tmp_path):
    from search_api.main import create_app
    from search_api.settings import ApiSettings

    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:60]
    batch = tmp_path / "batch.csv"
    with batch.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    expected = {r["tender_id"] for r in rows if r["title"] == "Supply of hospital beds and patient monitors"}
    assert expected

    with Receiver() as hook:
        settings = ApiSettings(database_url=cluster.env["DATABASE_URL"], warm_embedder=False,
                               alert_webhook_allow_private=True, chroma_host="127.0.0.1", chroma_port=free_port(),
                               feedback_path=str(tmp_path / "fb.jsonl"))
        with TestClient(create_app(settings)) as api:
            saved = api.post("/saved-searches", json={
                "name": "Hospital beds", "params": {"q": "hospital beds and patient monitors"},
                "delivery": "webhook", "webhook_url": hook.url})
            assert saved.status_code == 201, saved.text
        try:
            for dag_id in ("tender_ingest", "tender_alerts"):
                _patient(lambda dag_id=dag_id: cluster.wait_dag(dag_id, timeout=180))
                _patient(lambda dag_id=dag_id: cluster.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}))
            assert _patient(lambda: cluster.dag_runs("tender_alerts")) == []
            _patient(lambda: cluster.request("POST", "/dags/tender_ingest/dagRuns",
                                             json={"logical_date": None, "conf": {"source": str(batch)}}))
            _wait_success(cluster, "tender_ingest", timeout=900)
            runs = _wait_success(cluster, "tender_alerts", timeout=600)
        except BaseException:
            sys.stderr.write("\n" + cluster.tails(60) + "\n")
            raise

        assert [r["run_type"] for r in runs] == ["asset_triggered"]
        path = f"/dags/tender_alerts/dagRuns/{runs[0]['dag_run_id']}/upstreamAssetEvents"
        events = _patient(lambda: cluster.request("GET", path)).json()["asset_events"]
        assert [(e["source_dag_id"], e["source_task_id"]) for e in events] == [("tender_ingest", "upsert")]
        staging_dir = events[0]["extra"]["staging_dir"]
        assert events[0]["extra"]["inserted"] == len(rows)
        assert len(hook.requests) == 1
        items = json.loads(hook.requests[0].body)["items"]
        assert sorted(i["tender"]["id"] for i in items) == sorted(expected)
        summary = json.loads((Path(staging_dir) / "summary.json").read_text())
        assert summary["alerts"]["deliveries_sent"] == len(expected)
        assert summary["alerts"]["searches_evaluated"] == 1
