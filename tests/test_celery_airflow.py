"""Airflow the way production runs it, end to end into a Chroma server.

Metadata DB on PostgreSQL, CeleryExecutor on Redis with a real `airflow celery
worker`, plus api-server, scheduler and dag-processor, each started here as a
separate process (as docker-compose runs them as separate containers).

1. The scheduler itself creates the run for the latest complete data interval
   once the DAG is unpaused (no trigger), and it ingests that interval's file.
2. `airflow backfill create` over the two intervals before it runs each once,
   and each interval's file is ingested once, by its own run; a file from an
   interval nobody asked for is left alone.

Skips with the reason where PostgreSQL or Redis can't be reached (a laptop);
under CI (CI=true) that is a failure instead, so CI can't go green by skipping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import stored
from tests.airflow_cluster import (
    INTERVAL,
    backfill_window,
    backfills_succeeded,
    celery_cluster,
    interval_end,
    interval_start,
    local_storage_env,
    scheduled_success,
    tails_on_failure,
    unpause,
)
from tests.batches import sample_chunks, write_rows
from tests.services import AirflowCluster

DAG_ID = "tender_ingest"
ROWS_PER_FILE = 40

pytestmark = pytest.mark.slow


def _write_batch(folder: Path, name: str, header: list[str], rows: list[dict]) -> set[str]:
    write_rows(folder / name, rows, header)
    return {row["tender_id"] for row in rows}


def _slot(incoming: Path, hour: datetime) -> Path:
    return incoming / hour.strftime("%Y-%m-%d/%H")


@pytest.fixture
def production_airflow(tmp_path):
    """PostgreSQL DB + Redis db + Chroma + Airflow components; everything stopped and dropped after."""
    dag_env = {
        # The DAG: a start long ago without catchup, so exactly the latest
        # interval is due; no retries, so a failure shows at once.
        "TENDER_START_DATE": "2026-01-01T00:00:00+00:00",
        "TENDER_CATCHUP": "false",
        "TENDER_RETRIES": "0",
        **local_storage_env(tmp_path),
    }
    with celery_cluster(tmp_path, dag_env, collection="tenders_celery",
                        components=("api-server", "scheduler", "dag-processor", "celery-worker")) as cluster:
        yield cluster


def test_scheduled_run_and_backfill_on_celery(production_airflow: AirflowCluster, tmp_path):
    with tails_on_failure(production_airflow):
        _scheduled_run_and_backfill(production_airflow, tmp_path)


def _scheduled_run_and_backfill(cluster: AirflowCluster, tmp_path: Path) -> None:
    import chromadb

    from tender_pipeline import staging
    from tender_pipeline.sources import Ledger

    started = datetime.now(UTC)
    latest, first_backfilled, second_backfilled = backfill_window(started)

    header, chunks = sample_chunks(ROWS_PER_FILE, 4)
    incoming = tmp_path / "incoming"
    # One file per interval, in different hours of their interval; the decoy
    # sits in the interval before the backfill window, which no run covers.
    expected = {
        latest[0]: _write_batch(_slot(incoming, latest[0] + timedelta(hours=2)), "latest.csv", header, chunks[0]),
        first_backfilled[0]: _write_batch(_slot(incoming, first_backfilled[0] + timedelta(hours=5)),
                                          "first.csv", header, chunks[1]),
        second_backfilled[0]: _write_batch(_slot(incoming, second_backfilled[0]), "second.csv", header, chunks[2]),
    }
    decoy = _write_batch(_slot(incoming, first_backfilled[0] - timedelta(hours=1)), "decoy.csv", header, chunks[3])

    dag = cluster.wait_dag(DAG_ID, timeout=180)
    assert dag["is_paused"], "DAGs start paused; unpausing is what lets the scheduler run it"
    unpause(cluster, DAG_ID)

    # 1. The scheduler creates and runs the latest interval by itself.
    runs = cluster.wait_runs(DAG_ID, scheduled_success(latest[0]), timeout=600)
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    # Only a run for an interval that ended during the test may join it.
    assert all(interval_start(r) >= latest[0] for r in scheduled), [r["dag_run_id"] for r in scheduled]
    assert not [r for r in runs if r["run_type"] == "backfill"]

    # 2. Backfill the two intervals before it (from/to are logical dates, inclusive).
    cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", first_backfilled[0].isoformat(),
                "--to-date", second_backfilled[0].isoformat(), "--max-active-runs", "2")
    runs = cluster.wait_runs(DAG_ID, backfills_succeeded(2), timeout=900)

    backfills = [r for r in runs if r["run_type"] == "backfill"]
    assert sorted(interval_start(r) for r in backfills) == [first_backfilled[0], second_backfilled[0]]
    for run in backfills:
        assert interval_end(run) - interval_start(run) == INTERVAL
    backfill_records = cluster.request("GET", "/backfills", params={"dag_id": DAG_ID}).json()["backfills"]
    assert len(backfill_records) == 1

    # Each interval's run ingested exactly its own file, once.
    settings_staging = str(tmp_path / "staging")
    run_of = {interval_start(r): r for r in runs if interval_start(r) in expected}
    assert set(run_of) == set(expected)
    for start, ids in expected.items():
        summary = staging.read_json(staging.run_dir(settings_staging, run_of[start]["dag_run_id"]) / "summary.json")
        assert (summary["files"], summary["skipped_files"]) == (1, 0), summary
        assert summary["rows_read"] == len(ids) == ROWS_PER_FILE
        assert summary["upserted"] + summary["unchanged"] + summary["quarantined"] + summary["duplicates"] \
            == summary["rows_read"]
        assert summary["inserted"] == len(ids)

    ledger = Ledger(tmp_path / "staging" / "_ledger").entries()
    claimed = {Path(entry["uri"]).name: entry["run_id"] for entry in ledger}
    assert len(ledger) == 3, ledger
    assert claimed == {"latest.csv": run_of[latest[0]]["dag_run_id"],
                       "first.csv": run_of[first_backfilled[0]]["dag_run_id"],
                       "second.csv": run_of[second_backfilled[0]]["dag_run_id"]}

    env = cluster.env
    collection = chromadb.HttpClient(host="127.0.0.1", port=int(env["CHROMA_PORT"])).get_collection(
        env["TENDER_COLLECTION"])
    all_ids = set().union(*expected.values())
    assert collection.count() == len(all_ids) == 3 * ROWS_PER_FILE
    held = stored.chroma_ids(collection)
    assert set(held) == all_ids and len(held) == len(all_ids)
    assert not set(decoy) & set(held)

    # The celery worker, not the scheduler, ran the tasks.
    worker_log = (tmp_path / "logs" / "celery-worker.log").read_text(errors="replace")
    assert "tender_ingest" in worker_log
