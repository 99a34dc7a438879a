"""A production-shaped Airflow for the end-to-end tests, set up one way.

PostgreSQL metadata DB (a database per test run), optionally a Redis db as the
Celery broker, a `chroma run` server, and api-server / scheduler /
dag-processor / workers as separate processes on one AIRFLOW_HOME (see
``tests.services.AirflowCluster``). Every process is stopped by its process
group when the test ends, also when start-up fails; the database is dropped
and the broker db flushed afterwards.

Also the tender_ingest schedule's interval arithmetic and the run predicates
the scheduler/backfill tests wait on.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services import (
    BIN,
    PG_HOST,
    PG_PORT,
    PG_USER,
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

# tender_ingest's schedule: `0 0,6,12,18 * * *` (UTC), one data interval per run
INTERVAL = timedelta(hours=6)


# --------------------------------------------------------------------------- prerequisites
def require_services(purpose: str, *, redis: bool = True) -> None:
    """Skip with the reason where PostgreSQL (or Redis) can't be reached; under CI=true fail instead,
    so CI can't go green by skipping."""
    reason = postgres_unavailable_reason() or (redis_unavailable_reason() if redis else None)
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run {purpose}, but: {reason}")
    pytest.skip(reason)


def free_redis_db() -> int:
    """A Redis db number nobody uses right now, so parallel runs don't share a broker queue."""
    import redis

    for number in range(15, 0, -1):
        if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).dbsize() == 0:
            return number
    pytest.skip("no empty Redis database (1-15) for the Celery broker")


@contextlib.contextmanager
def celery_broker() -> Iterator[str]:
    """An empty Redis db as the Celery broker; yields its URL and flushes it afterwards."""
    import redis

    number = free_redis_db()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()


# --------------------------------------------------------------------------- configuration
def metadata_env(db_url: str, executor: str) -> dict[str, str]:
    """The metadata DB and executor every component and CLI call must agree on."""
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url, "AIRFLOW__CORE__EXECUTOR": executor}


def celery_env(db_url: str, broker: str) -> dict[str, str]:
    """CeleryExecutor on ``broker``, task results in the metadata database."""
    db_name = db_url.rsplit("/", 1)[1]
    return {**metadata_env(db_url, "CeleryExecutor"),
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db_name}"}


def local_storage_env(root: Path) -> dict[str, str]:
    """Incoming batches and staging in folders under ``root`` (one disk shared by every component)."""
    return {"INCOMING_URI": str(root / "incoming") + "/", "STAGING_URI": str(root / "staging") + "/"}


# --------------------------------------------------------------------------- the cluster
@contextlib.contextmanager
def tails_on_failure(cluster: AirflowCluster, lines: int = 60) -> Iterator[None]:
    """On any failure, write every component's log tail to stderr (the test report shows it)."""
    try:
        yield
    except BaseException:
        sys.stderr.write("\n" + cluster.tails(lines) + "\n")
        raise


@contextlib.contextmanager
def running_cluster(root: Path, env: dict[str, str], *, collection: str, components: tuple[str, ...],
                    gemini_pool: int = 4,
                    after_start: Callable[[AirflowCluster], None] | None = None) -> Iterator[AirflowCluster]:
    """Chroma + a migrated Airflow with ``components`` running, healthy; everything stopped afterwards.

    Home, logs and Chroma data live under ``root``; ``env`` is added to every
    component's environment (metadata DB, executor, DAG settings), with the
    Chroma server's address and ``collection``. ``after_start`` starts what
    else the test needs (extra workers) once the components are up.
    """
    chroma_port = free_port()
    cluster = AirflowCluster(root / "airflow-home", root / "logs", extra_env={
        **env,
        "CHROMA_HOST": "127.0.0.1",
        "CHROMA_PORT": str(chroma_port),
        "TENDER_COLLECTION": collection,
        "ANONYMIZED_TELEMETRY": "False",
    })
    try:
        with tails_on_failure(cluster):
            chroma = cluster.add(Service("chroma", [str(BIN / "chroma"), "run", "--path", str(root / "chroma"),
                                                    "--host", "127.0.0.1", "--port", str(chroma_port)],
                                         root / "logs" / "chroma.log"))
            cluster.cli("db", "migrate", timeout=600)
            cluster.cli("pools", "set", "gemini_api", str(gemini_pool), "Gemini API calls")
            cluster.start(*components)
            if after_start is not None:
                after_start(cluster)
            wait_http(f"http://127.0.0.1:{chroma_port}/api/v2/heartbeat", 60, chroma.proc)
            cluster.wait_healthy(timeout=240)
            yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def celery_cluster(root: Path, env: dict[str, str], *, collection: str, components: tuple[str, ...],
                   after_start: Callable[[AirflowCluster], None] | None = None) -> Iterator[AirflowCluster]:
    """``running_cluster`` on CeleryExecutor: a fresh PostgreSQL database as metadata DB and result
    backend, an empty Redis db as broker; the DB dropped and the broker flushed after the processes stop."""
    require_services("the CeleryExecutor test")
    with celery_broker() as broker, postgres_database() as db_url, running_cluster(
            root, {**celery_env(db_url, broker), **env}, collection=collection, components=components,
            after_start=after_start) as cluster:
        yield cluster


# --------------------------------------------------------------------------- runs and intervals
def latest_complete_interval(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the last 6-hour interval of `0 0,6,12,18 * * *` (UTC) that has ended."""
    end = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
    return end - INTERVAL, end


def backfill_window(now: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """The latest complete interval (the scheduler's own run), then the two before it (to backfill)."""
    latest = latest_complete_interval(now)
    return latest, (latest[0] - 2 * INTERVAL, latest[0] - INTERVAL), (latest[0] - INTERVAL, latest[0])


def interval_start(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_start"]).astimezone(UTC)


def interval_end(run: dict) -> datetime:
    return datetime.fromisoformat(run["data_interval_end"]).astimezone(UTC)


def scheduled_success(start: datetime) -> Callable[[list[dict]], bool]:
    """For ``wait_runs``: the scheduler's own run of the interval starting at ``start`` succeeded."""
    def done(runs: list[dict]) -> bool:
        return any(r["run_type"] == "scheduled" and interval_start(r) == start and r["state"] == "success"
                   for r in runs)
    return done


def backfills_succeeded(count: int) -> Callable[[list[dict]], bool]:
    """For ``wait_runs``: at least ``count`` backfill runs succeeded."""
    def done(runs: list[dict]) -> bool:
        return len([r for r in runs if r["run_type"] == "backfill" and r["state"] == "success"]) >= count
    return done


def unpause(cluster: AirflowCluster, dag_id: str) -> None:
    """What lets the scheduler create runs: DAGs start paused."""
    cluster.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
