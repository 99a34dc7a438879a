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
