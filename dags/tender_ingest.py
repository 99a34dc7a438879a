"""tender_ingest: every 6 hours, turn the interval's tender batches into searchable vectors.

Thin by design (Airflow's best practices): schedule, retries, params and
wiring only. Each task calls one stage function of the plain
``tender_pipeline`` package and passes the run's staging location — a
reference (a folder or an s3:// prefix), never records — to the next through
XCom. ``TENDER_TASK_QUEUES`` routes tasks to Celery queues, so e.g. fetch and
validate run on the workers near the data and enrich/embed/upsert on the
workers with the model.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

SCHEDULE = "0 0,6,12,18 * * *"
GEMINI_POOL = "gemini_api"  # bounds Gemini calls across concurrent runs and backfills
# Updated by every successful upsert; its event extra names the run's staging folder (tender_alerts reads it).
TENDERS = Asset("tenders")


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


TASKS = ("fetch", "validate", "enrich", "embed", "upsert")


def _task_queues(spec: str) -> dict[str, str]:
    """``fetch=ingest,validate=ingest,enrich=models`` → {task: Celery queue}; unnamed tasks keep the default."""
    queues: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, queue = (x.strip() for x in item.partition("="))
        if name not in TASKS or not queue:
            raise ValueError(f"TENDER_TASK_QUEUES: {item!r} is not <task>=<queue> with a task of {', '.join(TASKS)}")
        queues[name] = queue
    return queues


QUEUES = _task_queues(os.environ.get("TENDER_TASK_QUEUES", ""))


def _queue(name: str) -> dict[str, str]:
    return {"queue": QUEUES[name]} if name in QUEUES else {}


DEFAULT_ARGS = {
    "owner": "tender-search",
    "retries": int(os.environ.get("TENDER_RETRIES", "3")),
    "retry_delay": timedelta(seconds=float(os.environ.get("TENDER_RETRY_DELAY_S", "30"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=30),
}


def _settings():
    from tender_pipeline import staging
    from tender_pipeline.settings import Settings

    settings = Settings()  # read per task: workers may differ from the DAG processor's env
    if any(uri.startswith("s3://") for uri in (settings.staging_uri, settings.ledger_uri)):
        # s3:// staging and ledger use the aws_default connection, as INCOMING_URI does
        staging.use_s3_client(lambda: _s3_client("s3://"))
    return settings


def _s3_client(uri: str):
    """boto3 client from the ``aws_default`` connection, only when an S3 URI is involved."""
    if not uri.startswith("s3://"):
        return None
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id="aws_default").get_conn()


def _stage(fn, *args, **kwargs):
    """Run a stage; bad input fails the task at once with its message (a retry can't fix it)."""
    from tender_pipeline.errors import USER_ERRORS

    try:
        return fn(*args, **kwargs)
    except USER_ERRORS as exc:
        raise AirflowFailException(str(exc)) from None


@dag(
    dag_id="tender_ingest",
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=pendulum.parse(os.environ.get("TENDER_START_DATE", "2026-01-01T00:00:00Z")),
    catchup=_env_bool("TENDER_CATCHUP", False),
    max_active_runs=int(os.environ.get("TENDER_MAX_ACTIVE_RUNS", "1")),  # later batches must win
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(hours=3),
    tags=["tenders", "ingest"],
    doc_md=__doc__,
    params={
        "source": Param("", type="string", title="Source",
                        description="File, folder, s3://, http(s):// or ocds+http(s):// (an OCDS API, every "
                                    "page) URI to ingest instead of the data interval's files (empty: the "
                                    "interval's files)."),
        "limit": Param(None, type=["null", "integer"], minimum=1, title="Limit",
                       description="Read at most this many rows (empty: all)."),
        "force": Param(False, type="boolean", title="Force",
                       description="Re-enrich and re-embed records even if unchanged; re-take "
                                   "files another run already ingested."),
        "profile": Param("", type="string", title="Profile",
                         description="Column-mapping profile (empty: detect from the header)."),
    },
)
def tender_ingest():
    @task(execution_timeout=timedelta(minutes=15), **_queue("fetch"))
    def fetch() -> str:
        from tender_pipeline import pipeline

        ctx = get_current_context()
        params, settings = ctx["params"], _settings()
        source = (params.get("source") or "").strip() or None
        start, end = ctx.get("data_interval_start"), ctx.get("data_interval_end")
        if source is None and start is None:
            raise AirflowFailException("manual run without a data interval: pass conf {'source': ...}")
        return _stage(
            pipeline.fetch, settings, ctx["run_id"], source=source,
            interval=None if source else (start, end), force=bool(params.get("force")),
            s3_client=_s3_client(source or settings.incoming_uri),
        )

    @task(execution_timeout=timedelta(minutes=15), **_queue("validate"))
    def validate(run_dir: str) -> str:
        from tender_pipeline import pipeline

        params = get_current_context()["params"]
        return _stage(pipeline.validate, _settings(), run_dir, limit=params.get("limit") or None,
                      profile=(params.get("profile") or "").strip() or None)

    @task(pool=GEMINI_POOL, execution_timeout=timedelta(minutes=90), **_queue("enrich"))
    def enrich(run_dir: str) -> str:
        from tender_pipeline import pipeline

        params = get_current_context()["params"]
        return _stage(pipeline.enrich, _settings(), run_dir, force=bool(params.get("force")))

    @task(pool=GEMINI_POOL, execution_timeout=timedelta(minutes=60), **_queue("embed"))
    def embed(run_dir: str) -> str:
        from tender_pipeline import pipeline

        return _stage(pipeline.embed, _settings(), run_dir)

    @task(execution_timeout=timedelta(minutes=30), outlets=[TENDERS], **_queue("upsert"))
    def upsert(run_dir: str) -> dict:
        from tender_pipeline import pipeline
        from tender_pipeline.changes import asset_extra

        summary = _stage(pipeline.upsert, _settings(), run_dir)
        get_current_context()["outlet_events"][TENDERS].extra = asset_extra(summary)
        return summary

    upsert(embed(enrich(validate(fetch()))))


tender_ingest()
