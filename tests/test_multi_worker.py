"""Two Celery workers that share no disk: staging and the ledger on S3 (moto's server).

Production topology as in test_celery_airflow.py (PostgreSQL metadata DB,
Redis broker, api-server, scheduler, dag-processor as separate processes),
but with two `airflow celery worker` processes, each with its own working
directory, AIRFLOW_HOME and task-log folder, serving different queues
(TENDER_TASK_QUEUES): `ingest` takes fetch/validate, `models` takes
enrich/embed/upsert. Every run therefore crosses from one worker to the other
through s3:// staging; incoming batches are on S3 too.

1. A scheduled run ingests its interval's file.
2. A backfill over the two intervals before it, both workers busy, ingests
   each file exactly once (one ledger marker per file on S3).
3. The `models` worker is killed (SIGKILL, the whole process group) while it
   runs a task; the scheduler times the task out, and its retry runs on the
   other worker (told to also serve `models`) and completes with exact counts.

Skips with the reason where PostgreSQL or Redis can't be reached; under
CI=true that is a failure instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.airflow_cluster import (
    INTERVAL,
    backfill_window,
    backfills_succeeded,
    celery_cluster,
    interval_end,
    interval_start,
    scheduled_success,
    tails_on_failure,
    unpause,
)
from tests.batches import csv_bytes, sample_chunks
from tests.services import AIRFLOW, AirflowCluster, Service, free_port, moto_s3_server

DAG_ID = "tender_ingest"
BUCKET = "tender-multi-worker"
STAGING_URI = f"s3://{BUCKET}/staging/"
INCOMING_PREFIX = "incoming/"
ROWS_PER_FILE = 40
QUEUES = {"fetch": "ingest", "validate": "ingest", "enrich": "models", "embed": "models", "upsert": "models"}

pytestmark = pytest.mark.slow


def _s3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                        region_name="us-east-1")


class Worker:
    """One `airflow celery worker` with its own working dir, AIRFLOW_HOME and log folder: a separate host."""

    def __init__(self, cluster: AirflowCluster, name: str, queues: str, root: Path) -> None:
        self.name, self.dir = name, root / f"worker-{name}"
        self.logs = self.dir / "logs"
        self.dir.mkdir(parents=True)
        env = {**cluster.env, "AIRFLOW_HOME": str(self.dir / "airflow-home"),
               "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
               "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        self.celery_name = f"{name}@{socket.gethostname()}"
        argv = [str(AIRFLOW), "celery", "worker", "--queues", queues, "--concurrency", "2", "--skip-serve-logs",
                "--celery-hostname", self.celery_name, "--pid", str(self.dir / "worker.pid")]
        self.service = cluster.add(Service(f"worker-{name}", argv, cluster.log_dir / f"worker-{name}.log",
                                           env=env, cwd=self.dir))

    def attempts(self) -> set[tuple[str, str, int]]:
        """(run id, task id, try number) of every task attempt whose log this worker wrote."""
        found = set()
        for log in self.logs.rglob("attempt=*.log"):
            parts = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in log.relative_to(self.logs).parts if "=" in p}
            found.add((parts["run_id"], parts["task_id"], int(parts["attempt"].removesuffix(".log"))))
        return found


@pytest.fixture
def two_worker_airflow(tmp_path):
    """moto S3 + PostgreSQL DB + Redis db + Chroma + Airflow with two workers on separate queues."""
    with moto_s3_server(tmp_path / "logs") as s3_url:
        _s3(s3_url).create_bucket(Bucket=BUCKET)
        connection = {"conn_type": "aws", "login": "x", "password": "x",
                      "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"}}
        dag_env = {
            # a worker that vanishes is noticed in ~a minute, not the default 5
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "TENDER_START_DATE": "2026-01-01T00:00:00+00:00",
            "TENDER_CATCHUP": "false",
            # spare tries: on a loaded machine the execution API can time out before a task starts
            "TENDER_RETRIES": "3",
            "TENDER_RETRY_DELAY_S": "1",
            "TENDER_TASK_QUEUES": ",".join(f"{task}={queue}" for task, queue in QUEUES.items()),
            # no shared disk: batches, staging and the ledger are all on S3, via the aws_default connection
            "INCOMING_URI": f"s3://{BUCKET}/{INCOMING_PREFIX}",
            "STAGING_URI": STAGING_URI,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        }

        def start_workers(cluster: AirflowCluster) -> None:
            cluster.s3_url, cluster.broker = s3_url, cluster.env["AIRFLOW__CELERY__BROKER_URL"]
            cluster.workers = {"ingest": Worker(cluster, "ingest", "ingest", tmp_path),
                               "models": Worker(cluster, "models", "models", tmp_path)}

        with celery_cluster(tmp_path, dag_env, collection="tenders_multi",
                            components=("api-server", "scheduler", "dag-processor"),
                            after_start=start_workers) as cluster:
            yield cluster


@pytest.mark.timeout(2700)  # three phases of ~5 tasks each, plus a heartbeat timeout, on 2 shared cores
def test_two_workers_without_a_shared_disk(two_worker_airflow: AirflowCluster, tmp_path):
    from tender_pipeline import staging

    cluster = two_worker_airflow
    staging.use_s3_client(lambda: _s3(cluster.s3_url))  # this process reads what the workers staged
    try:
        with tails_on_failure(cluster):
            _scenario(cluster, tmp_path)
    finally:
        staging._STORES.clear()


def _put_batch(client, key: str, header: list[str], rows: list[dict]) -> set[str]:
    client.put_object(Bucket=BUCKET, Key=key, Body=csv_bytes(rows, header))
    return {row["tender_id"] for row in rows}


def _slot_key(hour: datetime, name: str) -> str:
    return f"{INCOMING_PREFIX}{hour:%Y-%m-%d/%H}/{name}"


def _summary(run_id: str) -> dict:
    from tender_pipeline import staging

    return staging.read_json(staging.run_dir(STAGING_URI, run_id) / "summary.json")


def _assert_exact(summary: dict, ids: set[str]) -> None:
    assert (summary["files"], summary["skipped_files"]) == (1, 0), summary
    assert summary["rows_read"] == len(ids) == ROWS_PER_FILE
    assert summary["upserted"] == summary["inserted"] == len(ids), summary
    assert summary["quarantined"] == summary["duplicates"] == summary["unchanged"] == 0


def _scenario(cluster: AirflowCluster, tmp_path: Path) -> None:
    import chromadb

    from tender_pipeline.sources import Ledger

    s3 = _s3(cluster.s3_url)
    ingest, models = cluster.workers["ingest"], cluster.workers["models"]
    latest, first_backfilled, second_backfilled = backfill_window(datetime.now(UTC))
    header, chunks = sample_chunks(ROWS_PER_FILE, 4)
    expected = {
        latest[0]: _put_batch(s3, _slot_key(latest[0] + timedelta(hours=2), "latest.csv"), header, chunks[0]),
        first_backfilled[0]: _put_batch(s3, _slot_key(first_backfilled[0] + timedelta(hours=5), "first.csv"),
                                        header, chunks[1]),
        second_backfilled[0]: _put_batch(s3, _slot_key(second_backfilled[0], "second.csv"), header, chunks[2]),
    }

    cluster.wait_dag(DAG_ID, timeout=180)
    unpause(cluster, DAG_ID)

    # 1. the scheduled run of the latest interval
    cluster.wait_runs(DAG_ID, scheduled_success(latest[0]), timeout=900)

    # 2. a backfill of the two intervals before it, two runs at a time
    cluster.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", first_backfilled[0].isoformat(),
                "--to-date", second_backfilled[0].isoformat(), "--max-active-runs", "2")
    runs = cluster.wait_runs(DAG_ID, backfills_succeeded(2), timeout=1200)
    run_of = {interval_start(r): r for r in runs if r["state"] == "success" and interval_start(r) in expected}
    assert set(run_of) == set(expected)
    assert all(interval_end(r) - interval_start(r) == INTERVAL for r in run_of.values())
    for start, ids in expected.items():
        _assert_exact(_summary(run_of[start]["dag_run_id"]), ids)

    # Each file claimed once, by its own interval's run, in the ledger on S3.
    ledger = Ledger(f"{STAGING_URI}_ledger").entries()
    assert {Path(e["uri"]).name: e["run_id"] for e in ledger} == {
        "latest.csv": run_of[latest[0]]["dag_run_id"], "first.csv": run_of[first_backfilled[0]]["dag_run_id"],
        "second.csv": run_of[second_backfilled[0]]["dag_run_id"]}
    assert len(ledger) == 3

    # Every attempt of every task ran on its queue's worker; so every hand-over crossed hosts through S3.
    for run in run_of.values():
        tis = {t["task_id"]: t for t in cluster.task_instances(DAG_ID, run["dag_run_id"])}
        assert {t: ti["queue"] for t, ti in tis.items()} == QUEUES
        assert {ti["state"] for ti in tis.values()} == {"success"}
    on_ingest = {(r, t) for r, t, _ in ingest.attempts()}
    on_models = {(r, t) for r, t, _ in models.attempts()}
    for run in run_of.values():
        for task, queue in QUEUES.items():
            where = on_ingest if queue == "ingest" else on_models
            other = on_models if queue == "ingest" else on_ingest
            assert (run["dag_run_id"], task) in where and (run["dag_run_id"], task) not in other, (run, task)

    # 3. kill the models worker while it runs a task of a new run; the retry runs on the other worker
    source = _put_batch(s3, "manual/kill.csv", header, chunks[3])
    trigger = cluster.request("POST", f"/dags/{DAG_ID}/dagRuns", json={
        "logical_date": None, "conf": {"source": f"s3://{BUCKET}/manual/kill.csv"}}).json()
    run_id = trigger["dag_run_id"]
    killed = _wait_running_on(cluster, models, run_id, ("enrich", "embed", "upsert"))
    _add_consumer(cluster.broker, ingest.celery_name, "models")
    os.killpg(models.service.proc.pid, signal.SIGKILL)
    models.service.proc.wait(timeout=30)
    del cluster.services[models.service.name]  # gone on purpose: not a failure for check_alive

    done = cluster.wait_runs(DAG_ID, lambda rs: any(r["dag_run_id"] == run_id and r["state"] == "success"
                                                    for r in rs), timeout=900)
    assert any(r["dag_run_id"] == run_id for r in done)
    tis = {t["task_id"]: t for t in cluster.task_instances(DAG_ID, run_id)}
    final = tis[killed]["try_number"]
    assert final >= 2 and tis[killed]["state"] == "success"
    assert (run_id, killed, 1) in models.attempts()
    assert (run_id, killed, final) in ingest.attempts() and (run_id, killed, final) not in models.attempts()
    assert {ti["state"] for ti in tis.values()} == {"success"}
    _assert_exact(_summary(run_id), source)  # nothing lost, duplicated or quarantined by the kill and retry

    collection = chromadb.HttpClient(host="127.0.0.1", port=int(cluster.env["CHROMA_PORT"])).get_collection(
        cluster.env["TENDER_COLLECTION"])
    all_ids = set().union(*expected.values(), source)
    assert collection.count() == len(all_ids) == 4 * ROWS_PER_FILE

    # Nothing was staged on either worker's disk.
    for worker in (ingest, models):
        staged = [p for p in worker.dir.rglob("*") if p.suffix in {".jsonl", ".npy"} or p.name == "summary.json"]
        assert staged == [], staged


def _wait_running_on(cluster: AirflowCluster, worker: Worker, run_id: str, tasks: tuple[str, ...],
                     timeout: float = 600) -> str:
    """The first of ``tasks`` seen running in ``run_id`` on ``worker`` (its first attempt's log exists)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster.check_alive()
        states = {t["task_id"]: t["state"] for t in cluster.task_instances(DAG_ID, run_id)}
        mine = {t for r, t, attempt in worker.attempts() if r == run_id and attempt == 1}
        for task in tasks:
            if states.get(task) == "running" and task in mine:
                return task
        if any(states.get(t) == "success" for t in tasks[-1:]):
            raise AssertionError(f"{run_id} finished before the worker could be killed: {states}")
        time.sleep(0.5)
    raise TimeoutError(f"none of {tasks} ran on {worker.name} within {timeout}s")


def _add_consumer(broker: str, destination: str, queue: str) -> None:
    """Tell a running Celery worker to also serve ``queue`` (what an operator does to move load)."""
    from celery import Celery

    app = Celery(broker=broker)
    try:
        replies = app.control.add_consumer(queue, destination=[destination], reply=True, timeout=10)
    finally:
        app.close()
    assert replies == [{destination: {"ok": f"add consumer {queue}"}}], replies
