"""tender_alerts: after every successful upsert, evaluate the saved searches against that batch.

Scheduled on the ``tenders`` Asset, which ``tender_ingest.upsert`` updates
with the run's staging folder as event extra, so this DAG runs only after a
successful upsert and sees only that batch's new and updated notices. The work
is ``search_api.alerts.evaluate.run_batch`` (plain Python, the /search code
path); this file only wires in the asset events, the SMTP connection and the
metadata DB's address (webhooks may never be pointed at it).

A manual run with conf ``{"staging_dir": ".../<run>"}`` re-evaluates one batch:
deliveries already recorded are skipped, so it never notifies twice.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

TENDERS = Asset("tenders")  # the same asset tender_ingest's upsert declares as its outlet
log = logging.getLogger(__name__)


def _email_sender(conn_id: str, sender: str):
    """A (to, subject, html) sender over Airflow's SMTP connection; None when it is not configured."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        Connection.get(conn_id)
    except AirflowNotFoundException:
        log.warning("no Airflow connection %r: email alerts will be parked", conn_id)
        return None

    def send(to: str, subject: str, html: str) -> None:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(to=to, subject=subject, html_content=html,
                                 from_email=hook.from_email or sender)

    return send


def _metadata_db_urls() -> list[str]:
    from airflow.configuration import conf

    return [conf.get("database", "sql_alchemy_conn", fallback=""),
            conf.get("celery", "result_backend", fallback="")]


@dag(
    dag_id="tender_alerts",
    schedule=[TENDERS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one evaluation at a time: batches are delivered in order
    default_args={"owner": "tender-search", "retries": int(os.environ.get("TENDER_RETRIES", "3")),
                  "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    dagrun_timeout=timedelta(hours=2),
    tags=["tenders", "alerts"],
    doc_md=__doc__,
    params={"staging_dir": Param("", type="string", title="Staging folder",
                                 description="Re-evaluate this ingest run's batch (empty: the triggering "
                                             "asset events).")},
)
def tender_alerts():
    @task(execution_timeout=timedelta(minutes=60))
    def evaluate() -> list[dict]:
        from search_api.alerts.evaluate import run_batch
        from search_api.settings import ApiSettings
        from tender_pipeline.changes import record_alerts

        ctx = get_current_context()
        batches = [(e.extra.get("run_id") or "", e.extra["staging_dir"])
                   for e in ctx["triggering_asset_events"].get(TENDERS, []) if e.extra.get("staging_dir")]
        manual = (ctx["params"].get("staging_dir") or "").strip()
        if manual:
            batches.append((os.path.basename(manual.rstrip("/")), manual))
        if not batches:
            raise AirflowFailException("no batch to evaluate: no tenders asset event and no conf staging_dir")
        settings = ApiSettings()
        if any(d.startswith("s3://") for _, d in batches):  # s3:// staging through aws_default, as tender_ingest
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            from tender_pipeline import staging

            staging.use_s3_client(lambda: S3Hook(aws_conn_id="aws_default").get_conn())
        send_email = _email_sender(settings.alert_smtp_conn_id, settings.alert_email_from)
        results = []
        for run_id, staging_dir in batches:
            counts = run_batch(settings, staging_dir, run_id=run_id, send_email=send_email,
                               db_urls=_metadata_db_urls())
            record_alerts(staging_dir, counts)
            log.info("alerts for %s: %s", run_id, counts)
            results.append({"run_id": run_id, **counts})
        return results

    evaluate()


tender_alerts()
