"""tender_maintenance: daily, retire closed notices from Chroma and the lexical index, compact when due, prune staging.

Thin like tender_ingest: the work is ``tender_pipeline.lifecycle``. Notices
closed more than RETENTION_DAYS ago leave search and by-id lookup; once the
notices retired since the last compaction reach COMPACT_RATIO of the live set,
the collection is copied into a fresh one and swapped in, which is what gives
Chroma's disk and memory back (its deletes alone do not). Both tasks hold the
stores' single writer lock, so they never interleave with an ingest's upsert.
``prune_staging`` deletes run folders older than STAGING_RETENTION_DAYS and
the kept records of notices no longer live (``staging_retention``).
Airflow's own metadata is cleaned outside this DAG: Airflow 3 gives task code
no database access, so ``airflow db clean`` runs beside the scheduler
(``scripts/airflow_housekeeping.sh``; docs/capacity.md).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


def _writer_queue() -> dict[str, str]:
    """Retire and compact write the lexical index, whose writers share one folder: they run on the queue
    ``upsert`` runs on (``TENDER_TASK_QUEUES``, validated by tender_ingest), i.e. on the writer's machine."""
    for item in os.environ.get("TENDER_TASK_QUEUES", "").split(","):
        name, _, queue = (x.strip() for x in item.partition("="))
        if name == "upsert" and queue:
            return {"queue": queue}
    return {}


def _settings():
    from tender_pipeline.settings import Settings

    return Settings()


@dag(
    dag_id="tender_maintenance",
    schedule=os.environ.get("TENDER_MAINTENANCE_SCHEDULE", "30 3 * * *"),  # between the 00:00 and 06:00 batches
    start_date=pendulum.parse(os.environ.get("TENDER_START_DATE", "2026-01-01T00:00:00Z")),
    catchup=False,  # retiring "as of yesterday" twice changes nothing; only the latest run matters
    max_active_runs=1,
    default_args={"owner": "tender-search", "retries": int(os.environ.get("TENDER_RETRIES", "3")),
                  "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True, **_writer_queue()},
    dagrun_timeout=timedelta(hours=4),
    tags=["tenders", "maintenance"],
    doc_md=__doc__,
    params={"force_compaction": Param(False, type="boolean", title="Force compaction",
                                      description="Compact the collection even if not enough notices were retired.")},
)
def tender_maintenance():
    @task(execution_timeout=timedelta(hours=1))
    def retire() -> dict:
        from tender_pipeline import lifecycle

        ctx = get_current_context()
        start = ctx.get("data_interval_end") or ctx.get("logical_date")
        return lifecycle.retire_expired(_settings(), today=start.date() if start else None)

    @task(execution_timeout=timedelta(hours=3))
    def compact(retired: dict) -> dict:
        from tender_pipeline import lifecycle

        params = get_current_context()["params"]
        return {"retire": retired, "compaction": lifecycle.compact_if_due(
            _settings(), force=bool(params.get("force_compaction")))}

    @task(execution_timeout=timedelta(hours=1))
    def prune_staging(retired: dict) -> dict:
        from tender_pipeline import staging_retention

        ctx = get_current_context()
        start = ctx.get("data_interval_end") or ctx.get("logical_date")
        return staging_retention.prune(_settings(), today=start.date() if start else None)

    retired = retire()
    compact(retired)
    prune_staging(retired)


tender_maintenance()
