"""The asset trigger itself, through a real scheduler: a successful upsert makes the scheduler run tender_alerts.

PostgreSQL metadata DB, LocalExecutor, api-server + scheduler + dag-processor
as separate processes, and the alerts DB on PostgreSQL too. A manual
tender_ingest run ingests a batch; nobody triggers tender_alerts: the
scheduler creates an ``asset_triggered`` run from the ``tenders`` event, whose
extra names the batch's staging folder, and the webhook receives exactly the
batch's matching notices.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.airflow_cluster import (
    local_storage_env,
    metadata_env,
    require_services,
    running_cluster,
    tails_on_failure,
    unpause,
)
from tests.batches import SAMPLE, read_rows, write_rows
from tests.services import AirflowCluster, free_port, postgres_database
from tests.trap import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    require_services("the scheduler alerts test", redis=False)
    with postgres_database() as airflow_db, postgres_database("tender_alerts") as alerts_db:
        dag_env = {
            "TENDER_START_DATE": "2099-01-01T00:00:00+00:00",  # no scheduled ingest runs: only ours
            "TENDER_RETRIES": "2", "TENDER_RETRY_DELAY_S": "2",  # a stalled api-server on a loaded box
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            **local_storage_env(tmp_path),
            "DATABASE_URL": alerts_db.replace("postgresql+psycopg2://", "postgresql://"),
            "ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "ALERT_WEBHOOK_BACKOFF_S": "0",
        }
        with running_cluster(tmp_path, {**metadata_env(airflow_db, "LocalExecutor"), **dag_env},
                             collection="alerts_sched", components=("api-server", "scheduler", "dag-processor"),
                             gemini_pool=2) as cluster:
            yield cluster


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

    rows = read_rows(SAMPLE)[:60]
    batch = write_rows(tmp_path / "batch.csv", rows)
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
        with tails_on_failure(cluster):
            for dag_id in ("tender_ingest", "tender_alerts"):
                _patient(lambda dag_id=dag_id: cluster.wait_dag(dag_id, timeout=180))
                _patient(lambda dag_id=dag_id: unpause(cluster, dag_id))
            assert _patient(lambda: cluster.dag_runs("tender_alerts")) == []
            _patient(lambda: cluster.request("POST", "/dags/tender_ingest/dagRuns",
                                             json={"logical_date": None, "conf": {"source": str(batch)}}))
            _wait_success(cluster, "tender_ingest", timeout=900)
            runs = _wait_success(cluster, "tender_alerts", timeout=600)

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

        # the UI's Assets view (its REST list): tenders, produced by upsert, scheduling tender_alerts, with an event
        assets = _patient(lambda: cluster.request("GET", "/assets", params={"name_pattern": "tenders"})).json()
        (asset,) = [a for a in assets["assets"] if a["name"] == "tenders"]
        assert [d["dag_id"] for d in asset["scheduled_dags"]] == ["tender_alerts"]
        assert [(t["dag_id"], t["task_id"]) for t in asset["producing_tasks"]] == [("tender_ingest", "upsert")]
        assert asset["last_asset_event"] and asset["last_asset_event"]["id"] == events[0]["id"]
