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

import csv
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services import (
    BIN,
    REDIS_HOST,
    REDIS_PORT,
    AirflowCluster,
    Service,
    free_port,
    postgres_database,
    postgres_unavailable_reason,
    redis_unavailable_reason,
    wait_http,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "fixtures" / "sample_tenders.csv"
DAG_ID = "tender_ingest"
INTERVAL = timedelta(hours=6)
ROWS_PER_FILE = 40

pytestmark = pytest.mark.slow


def _require_services() -> None:
    reason = postgres_unavailable_reason() or redis_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the CeleryExecutor test, but: {reason}")
    pytest.skip(reason)


def latest_complete_interval(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the last 6-hour interval of `0 0,6,12,18 * * *` (UTC) that has ended."""
    end = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
    return end - INTERVAL, end


def _free_redis_db() -> int:
    """A Redis db number nobody uses right now, so parallel runs don't share a broker queue."""
    import redis

    for number in range(15, 0, -1):
        if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).dbsize() == 0:
            return number
    pytest.skip("no empty Redis database (1-15) for the Celery broker")


def _write_batch(folder: Path, name: str, header: list[str], rows: list[dict]) -> set[str]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return {row["tender_id"] for row in rows}


def _slot(incoming: Path, hour: datetime) -> Path:
    return incoming / hour.strftime("%Y-%m-%d/%H")


@pytest.fixture
def production_airflow(tmp_path):
    """PostgreSQL DB + Redis db + Chroma + Airflow components; everything stopped and dropped after."""
    _require_services()
    import redis

    redis_db = _free_redis_db()
    chroma_port = free_port()
    with postgres_database() as db_url:
        db_name = db_url.rsplit("/", 1)[1]
        cluster = AirflowCluster(tmp_path / "airflow-home", tmp_path / "logs", extra_env={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:5432/{db_name}",
            # The DAG: a start long ago without catchup, so exactly the latest
            # interval is due; no retries, so a failure shows at once.
            "TENDER_START_DATE": "2026-01-01T00:00:00+00:00",
            "TENDER_CATCHUP": "false",
            "TENDER_RETRIES": "0",
            "INCOMING_URI": str(tmp_path / "incoming") + "/",
            "STAGING_URI": str(tmp_path / "staging") + "/",
            "CHROMA_HOST": "127.0.0.1",
            "CHROMA_PORT": str(chroma_port),
            "TENDER_COLLECTION": "tenders_celery",
            "ANONYMIZED_TELEMETRY": "False",
        })
        cluster.add(Service("chroma", [str(BIN / "chroma"), "run", "--path", str(tmp_path / "chroma"),
                                       "--host", "127.0.0.1", "--port", str(chroma_port)],
                            tmp_path / "logs" / "chroma.log"))
        try:
            cluster.cli("db", "migrate", timeout=600)
            cluster.cli("pools", "set", "gemini_api", "4", "Gemini API calls")
            cluster.start("api-server", "scheduler", "dag-processor", "celery-worker")
            wait_http(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat", 60, cluster.services["chroma"].proc)
            cluster.wait_healthy(timeout=240)
            yield cluster
        except BaseException:
            sys.stderr.write("\n" + cluster.tails(60) + "\n")
            raise
        finally:
            cluster.stop()
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db).flushdb()


def test_scheduled_run_and_backfill_on_celery(production_airflow: AirflowCluster, tmp_path):
    try:
        _scheduled_run_and_backfill(production_airflow, tmp_path)
    except BaseException:
        sys.stderr.write("\n" + production_airflow.tails(60) + "\n")
        raise


def _scheduled_run_and_backfill(cluster: AirflowCluster, tmp_path: Path) -> None:
    import chromadb

    from tender_pipeline import staging
    from tender_pipeline.sources import Ledger

    started = datetime.now(UTC)
    latest = latest_complete_interval(started)
    first_backfilled = (latest[0] - 2 * INTERVAL, latest[0] - INTERVAL)
    second_backfilled = (latest[0] - INTERVAL, latest[0])

    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    chunks = [rows[i * ROWS_PER_FILE:(i + 1) * ROWS_PER_FILE] for i in range(4)]
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
    cluster.request("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

    # 1. The scheduler creates and runs the latest interval by itself.
    def scheduled_done(runs):
        return any(r["run_type"] == "scheduled" and _start(r) == latest[0] and r["state"] == "success"
                   for r in runs)

    runs = cluster.wait_runs(DAG_ID, scheduled_done, timeout=600)
    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    # Only a run for an interval that ended during the test may join it.
    assert all(_start(r) >= latest[0] for r in scheduled), [r["dag_run_id"] for r in scheduled]
    assert not [r for r in runs if r["run_type"] == "backfill"]

    # 2. Backfill the two intervals before it (from/to are logical dates, inclusive).
    cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", first_backfilled[0].isoformat(),
                "--to-date", second_backfilled[0].isoformat(), "--max-active-runs", "2")

    def backfill_done(runs):
        done = [r for r in runs if r["run_type"] == "backfill" and r["state"] == "success"]
        return len(done) >= 2

    runs = cluster.wait_runs(DAG_ID, backfill_done, timeout=900)

    backfills = [r for r in runs if r["run_type"] == "backfill"]
    assert sorted(_start(r) for r in backfills) == [first_backfilled[0], second_backfilled[0]]
    for run in backfills:
        assert _end(run) - _start(run) == INTERVAL
    backfill_records = cluster.request("GET", "/backfills", params={"dag_id": DAG_ID}).json()["backfills"]
    assert len(backfill_records) == 1

    # Each interval's run ingested exactly its own file, once.
    settings_staging = str(tmp_path / "staging")
    run_of = {_start(r): r for r in runs if _start(r) in expected}
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
    assert set(collection.get(ids=sorted(all_ids), include=[])["ids"]) == all_ids
    assert collection.get(ids=sorted(decoy), include=[])["ids"] == []

    # The celery worker, not the scheduler, ran the tasks.
    worker_log = (tmp_path / "logs" / "celery-worker.log").read_text(errors="replace")
    assert "tender_ingest" in worker_log


def _start(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"]).astimezone(UTC)


def _end(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_end"]).astimezone(UTC)
