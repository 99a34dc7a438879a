"""Chroma faults: down before a run, SIGKILLed during upsert, and a task process SIGKILLed mid-stage.

Each ends with exact counts and no duplicates. A "task" here is what an
Airflow worker runs: a separate process calling one stage function on the
run's staging folder; its retry is the same call again. A TCP proxy in front
of Chroma fires each fault at an exact moment (as the upsert request passes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import chromadb
import pytest

from tender_pipeline import pipeline, staging
from tender_pipeline.settings import Settings
from tests import stored
from tests.batches import read_rows, write_rows
from tests.conftest import ROOT
from tests.services import BIN, Service, free_port, wait_http
from tests.tcp_proxy import TripwireProxy

pytestmark = pytest.mark.slow
ROWS = 60

TASK = ("import sys; from tender_pipeline import pipeline; from tender_pipeline.settings import Settings; "
        "getattr(pipeline, sys.argv[1])(Settings(), sys.argv[2])")


def start_chroma(data: Path, port: int) -> Service:
    service = Service(f"chroma-{port}", [str(BIN / "chroma"), "run", "--path", str(data), "--host", "127.0.0.1",
                                         "--port", str(port)], data.parent / f"chroma-{port}.log").start()
    wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", 60, service.proc)
    return service


def sigkill(service_or_proc) -> None:
    proc = getattr(service_or_proc, "proc", service_or_proc)
    os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session: its PID is its group


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "STAGING_", "TENDER_"))}
    env.update(PYTHONPATH=str(ROOT / "plugins"), CHROMA_HOST=settings.chroma_host,
               CHROMA_PORT=str(settings.chroma_port), TENDER_COLLECTION=settings.tender_collection,
               STAGING_URI=settings.staging_uri, ENRICH_BACKEND="local", EMBED_BACKEND="local")
    return env


def task_process(stage: str, run: str, settings: Settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TASK, stage, run], env=env_for(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def batch(tmp_path: Path, sample_csv: Path, rows: int = ROWS) -> tuple[Path, list[str]]:
    data = read_rows(sample_csv)[:rows]
    return write_rows(tmp_path / "batch.csv", data), [r["tender_id"] for r in data]


def ids_in(settings: Settings, port: int) -> list[str]:
    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    return stored.chroma_ids(client.get_collection(settings.tender_collection))


def test_chroma_sigkilled_during_upsert_then_the_retry_completes_exactly(tmp_path, sample_csv):
    source, expected = batch(tmp_path, sample_csv)
    port = free_port()
    chroma = start_chroma(tmp_path / "chroma", port)
    try:
        with TripwireProxy(("127.0.0.1", port), b"/upsert", lambda: sigkill(chroma), delay=0.05) as proxy:
            settings = Settings(chroma_host="127.0.0.1", chroma_port=proxy.port, tender_collection="kill_chroma",
                                staging_uri=str(tmp_path / "staging"), embed_backend="local", enrich_backend="local")
            run = pipeline.fetch(settings, "kill-chroma", source=str(source))
            for stage in (pipeline.validate, pipeline.enrich, pipeline.embed):
                stage(settings, run)

            task = task_process("upsert", run, settings)
            _, err = task.communicate(timeout=180)
            assert proxy.fired.is_set() and task.returncode != 0, err
            assert chroma.proc.poll() is not None  # the server really died mid-request
            assert not (Path(run) / "summary.json").exists()  # a failed upsert is never recorded as done

            chroma = start_chroma(tmp_path / "chroma", port)  # restarted on its data
            proxy.armed = False
            summary = pipeline.upsert(settings, run)  # what Airflow's retry runs
        assert (summary["upserted"], summary["inserted"], summary["updated"]) == (ROWS, ROWS, 0)
        assert summary["collection_count"] == ROWS
        got = ids_in(settings, port)
        assert sorted(got) == sorted(expected) and len(set(got)) == len(got)
    finally:
        chroma.stop()


def test_task_process_sigkilled_mid_upsert_then_the_retry_is_idempotent(tmp_path, sample_csv, chroma):
    source, expected = batch(tmp_path, sample_csv)
    host, port = chroma
    holder: dict[str, subprocess.Popen] = {}
    with TripwireProxy((host, port), b"/upsert", lambda: sigkill(holder["task"]), delay=0.05) as proxy:
        settings = Settings(chroma_host=host, chroma_port=proxy.port, tender_collection=f"k_{uuid.uuid4().hex[:8]}",
                            staging_uri=str(tmp_path / "staging"), embed_backend="local", enrich_backend="local")
        run = pipeline.fetch(settings, "kill-task", source=str(source))
        for stage in (pipeline.validate, pipeline.enrich, pipeline.embed):
            stage(settings, run)
        holder["task"] = task_process("upsert", run, settings)
        holder["task"].communicate(timeout=180)
        assert proxy.fired.is_set() and holder["task"].returncode == -signal.SIGKILL
        assert not (Path(run) / "summary.json").exists()

        proxy.armed = False
        first = pipeline.upsert(settings, run)  # the retry
        again = pipeline.upsert(settings, run)  # and a second retry changes nothing
    for summary in (first, again):
        assert (summary["upserted"], summary["inserted"], summary["collection_count"]) == (ROWS, ROWS, ROWS)
    got = ids_in(settings, port)
    assert sorted(got) == sorted(expected)


def test_task_process_sigkilled_mid_enrich_leaves_no_half_file_and_the_retry_completes(tmp_path, sample_csv, chroma):
    """Killed while enrich opens the stores: no enriched.jsonl (or a temp file) is taken for a finished stage."""
    source, expected = batch(tmp_path, sample_csv)
    host, port = chroma
    holder: dict[str, subprocess.Popen] = {}
    with TripwireProxy((host, port), b"/collections", lambda: sigkill(holder["task"])) as proxy:
        settings = Settings(chroma_host=host, chroma_port=proxy.port, tender_collection=f"k_{uuid.uuid4().hex[:8]}",
                            staging_uri=str(tmp_path / "staging"), embed_backend="local", enrich_backend="local")
        run = pipeline.fetch(settings, "kill-enrich", source=str(source))
        pipeline.validate(settings, run)
        holder["task"] = task_process("enrich", run, settings)
        holder["task"].communicate(timeout=180)
        assert proxy.fired.is_set() and holder["task"].returncode == -signal.SIGKILL
        assert not (Path(run) / "enriched.jsonl").exists()

        proxy.armed = False
        for stage in (pipeline.enrich, pipeline.embed):
            stage(settings, run)
        summary = pipeline.upsert(settings, run)
    assert (summary["rows_read"], summary["enriched"], summary["upserted"]) == (ROWS, ROWS, ROWS)
    assert sorted(ids_in(settings, port)) == sorted(expected)
    assert not list(Path(run).glob(".*"))  # no temp files left behind by the atomic writes


def test_cli_with_chroma_down_fails_first_in_one_line(tmp_path, sample_csv):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "STAGING_"))}
    env.update(PYTHONPATH=str(ROOT / "plugins"), CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(port))
    result = subprocess.run([sys.executable, "-m", "tender_pipeline", "ingest", str(sample_csv)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "data" / "staging").exists()  # checked before any work: nothing staged


@pytest.fixture
def fast_retry_dag(airflow_db, monkeypatch):
    """tender_ingest parsed afresh with a 1 s retry delay (the DAG file reads it from the env)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TENDER_RETRY_DELAY_S", "1")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["tender_ingest"]


def test_dag_treats_chroma_down_as_retryable_and_recovers(fast_retry_dag, monkeypatch, tmp_path, sample_csv):
    """Chroma is down when enrich starts: the task is retried (not failed as bad input) and the run succeeds."""
    source, expected = batch(tmp_path, sample_csv, rows=20)
    port = free_port()
    started: list[Service] = []
    values = {"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(port), "TENDER_COLLECTION": "dag_retry",
              "STAGING_URI": str(tmp_path / "staging")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert fast_retry_dag.task_dict["enrich"].retry_delay == timedelta(seconds=1)

    def start_when_enrich_waits_for_retry() -> None:
        if _wait_for_state("enrich", "up_for_retry"):
            started.append(start_chroma(tmp_path / "chroma", port))

    # Load and map every model in this thread first: the watcher's first query would otherwise configure
    # SQLAlchemy's mappers while dag.test() imports models, and the two threads deadlock on import locks.
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    import_all_models()
    configure_mappers()

    watcher = threading.Thread(target=start_when_enrich_waits_for_retry, daemon=True)
    watcher.start()
    try:
        dag_run = fast_retry_dag.test(run_conf={"source": str(source), "limit": None, "force": False, "profile": ""})
        assert dag_run.state == "success", dag_run.state
        tries = {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}
        assert tries["enrich"] >= 2 and tries["validate"] == 1, tries  # retried, not failed for good
        summary = staging.read_json(staging.run_dir(settings.staging_uri, dag_run.run_id) / "summary.json")
        assert (summary["upserted"], summary["collection_count"]) == (20, 20)
        assert sorted(ids_in(settings, port)) == sorted(expected)
    finally:
        watcher.join(timeout=120)
        for service in started:
            service.stop()


def _wait_for_state(task_id: str, state: str, timeout: float = 300) -> bool:
    """Poll the metadata DB (as the UI would) until a tender_ingest task instance reaches ``state``."""
    import time

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            found = session.query(TaskInstance).filter(
                TaskInstance.dag_id == "tender_ingest", TaskInstance.task_id == task_id,
                TaskInstance.state == state).count()
        if found:
            return True
        time.sleep(0.2)
    return False
