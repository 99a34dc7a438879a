"""The DAG file imports cleanly and declares the schedule, order and retry policy we promise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["tender_ingest"]


def test_tasks_in_order(dag):
    assert [t.task_id for t in dag.topological_sort()] == ["fetch", "validate", "enrich", "embed", "upsert"]
    for upstream, downstream in zip(["fetch", "validate", "enrich", "embed"],
                                    ["validate", "enrich", "embed", "upsert"], strict=True):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}


def test_retries_backoff_and_timeouts(dag):
    for task in dag.tasks:
        assert task.retries >= 2
        assert task.retry_exponential_backoff
        assert task.execution_timeout is not None and task.execution_timeout > timedelta(0)
    assert dag.get_task("enrich").pool == "gemini_api"
    assert dag.get_task("embed").pool == "gemini_api"


def test_run_policy_and_params(dag):
    assert dag.catchup is False
    assert 1 <= dag.max_active_runs <= 4
    assert {"source", "limit", "force", "profile"} <= set(dag.params.keys())


def test_six_hour_data_intervals(dag):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    assert dag.timetable.summary == "0 0,6,12,18 * * *"
    core = coerce_to_core_timetable(dag.timetable)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    info = core.next_dagrun_info(last_automated_data_interval=None,
                                 restriction=TimeRestriction(earliest=start, latest=None, catchup=True))
    assert info.data_interval.start == start
    assert info.data_interval.end == start + timedelta(hours=6)
    following = core.next_dagrun_info(last_automated_data_interval=DataInterval(*info.data_interval),
                                      restriction=TimeRestriction(earliest=start, latest=None, catchup=True))
    assert following.data_interval.start == info.data_interval.end
    assert following.data_interval.end - following.data_interval.start == timedelta(hours=6)


def _parse(monkeypatch, queues: str):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("TENDER_TASK_QUEUES", queues)
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_tasks_route_to_the_queues_the_env_names(monkeypatch):
    from airflow.configuration import conf

    default = conf.get("operators", "default_queue")
    bag = _parse(monkeypatch, "fetch=ingest, validate=ingest,enrich=models,embed=models")
    queues = {t.task_id: t.queue for t in bag.dags["tender_ingest"].tasks}
    assert queues == {"fetch": "ingest", "validate": "ingest", "enrich": "models", "embed": "models",
                      "upsert": default}
    unset = _parse(monkeypatch, "")
    assert {t.queue for t in unset.dags["tender_ingest"].tasks} == {default}


def test_maintenance_runs_where_upsert_runs(monkeypatch):
    from airflow.configuration import conf

    bag = _parse(monkeypatch, "fetch=ingest,upsert=index")
    assert {t.task_id: t.queue for t in bag.dags["tender_maintenance"].tasks} == {
        "retire": "index", "prune_staging": "index"}  # staging is on the writer's disk too
    default = conf.get("operators", "default_queue")
    assert {t.queue for t in _parse(monkeypatch, "fetch=ingest").dags["tender_maintenance"].tasks} == {default}


def test_a_queue_for_an_unknown_task_is_an_import_error(monkeypatch):
    bag = _parse(monkeypatch, "fetch=ingest,upload=models")
    assert "tender_ingest" not in bag.dags
    [error] = bag.import_errors.values()
    assert "TENDER_TASK_QUEUES: 'upload=models'" in error
