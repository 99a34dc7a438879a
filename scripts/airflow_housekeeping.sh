#!/usr/bin/env bash
# Airflow's own growth, bounded: old runs, task instances, XComs and audit logs out of the
# metadata DB (`airflow db clean`), and old task / DAG-processor log files off the disk.
#
# Why not a task of tender_maintenance: Airflow 3 gives task code no metadata-DB access (the
# task supervisor points AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at "airflow-db-not-allowed:///"),
# so the CLI must run where the DB is reachable:
#   compose:  the airflow-housekeeping service runs this with --loop (daily), on the shared logs volume
#   Render:   the airflow-housekeeping cron job runs it daily (task logs: see docs/capacity.md)
#   make up:  scripts/up.sh runs it with --loop beside the scheduler
#
# Settings (env):
#   AIRFLOW_DB_RETENTION_DAYS   rows older than this are deleted (default 30)
#   AIRFLOW_LOG_RETENTION_DAYS  log files older than this are deleted (default 15)
#   AIRFLOW_DB_CLEAN_BEFORE     an explicit timestamp instead of the retention (tests, benchmarks)
#   AIRFLOW_HOUSEKEEPING_EVERY_S  --loop: seconds between passes (default 86400)
set -euo pipefail

# The tables that grow with every run. Not dag / dag_version / serialized DAGs (what the UI and
# the scheduler need to know the DAGs), nor connections, variables, pools.
TABLES="dag_run,task_instance,task_instance_history,task_reschedule,xcom,log,job,asset_event,callback,\
deadline,import_error,celery_taskmeta,celery_tasksetmeta,revoked_token,_xcom_archive"

once() {
    local days="${AIRFLOW_DB_RETENTION_DAYS:-30}" log_days="${AIRFLOW_LOG_RETENTION_DAYS:-15}"
    local before="${AIRFLOW_DB_CLEAN_BEFORE:-$(date -u -d "-${days} days" '+%Y-%m-%d %H:%M:%S+00:00')}"
    echo "airflow-housekeeping: deleting metadata rows older than ${before}"
    airflow db clean --clean-before-timestamp "${before}" --tables "${TABLES}" \
        --skip-archive --batch-size 5000 --yes
    local logs="${AIRFLOW__LOGGING__BASE_LOG_FOLDER:-${AIRFLOW_HOME:-/opt/airflow}/logs}"
    if [[ -d "${logs}" ]]; then
        echo "airflow-housekeeping: deleting log files under ${logs} older than ${log_days} days"
        find "${logs}" -type f -mtime +"$((log_days - 1))" -delete
        find "${logs}" -mindepth 1 -type d -empty -delete
    fi
    touch "${AIRFLOW_HOUSEKEEPING_STAMP:-/tmp/airflow-housekeeping.ok}"  # the compose healthcheck reads it
}

if [[ "${1:-}" == "--loop" ]]; then
    while true; do
        once || echo "airflow-housekeeping: pass failed; trying again next time" >&2
        sleep "${AIRFLOW_HOUSEKEEPING_EVERY_S:-86400}"
    done
else
    once
fi
