"""tender_maintenance: daily, retire closed notices from Chroma and the lexical index, prune staging.

Thin like tender_ingest: the work is ``tender_pipeline.lifecycle``. Notices
closed more than RETENTION_DAYS ago leave search and by-id lookup; their Chroma
slots are freed and the next upsert writes new notices into them
(``tender_pipeline.slots``), so Chroma's disk and memory stay at the most
notices live at once without any copy. ``retire`` holds the stores' single
writer lock, so it never interleaves with an ingest's upsert.
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
from airflow.sdk import dag, get_current_context, task


def _writer_queue() -> dict[str, str]:
    """Retire and prune write the lexical index and staging, whose writers share one folder: they run on the queue
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
)
def tender_maintenance():
    @task(execution_timeout=timedelta(hours=1))
    def retire() -> dict:
        from tender_pipeline import lifecycle

        ctx = get_current_context()
        start = ctx.get("data_interval_end") or ctx.get("logical_date")
        return lifecycle.retire_expired(_settings(), today=start.date() if start else None)

    @task(execution_timeout=timedelta(hours=1))
    def prune_staging(retired: dict) -> dict:
        from tender_pipeline import staging_retention

        ctx = get_current_context()
        start = ctx.get("data_interval_end") or ctx.get("logical_date")
        return staging_retention.prune(_settings(), today=start.date() if start else None)

    prune_staging(retire())


tender_maintenance()
