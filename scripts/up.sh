#!/usr/bin/env bash
# `make up`: the whole product on one machine, no Docker. Starts Chroma, Airflow
# (api-server, scheduler, dag-processor, triggerer on SQLite + LocalExecutor) and
# the search API, drops the sample batch into the incoming folder, unpauses and
# triggers tender_ingest, prints the URLs, then stays in the foreground.
# Ctrl-C (or `make down` from another shell) stops everything it started, by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/stack_env.sh
source scripts/stack_env.sh

SAMPLE=${SAMPLE:-tests/fixtures/sample_tenders.csv}
SAMPLE_QUERY=${SAMPLE_QUERY:-road maintenance}
DAG_ID=tender_ingest
mkdir -p "$PIDS_DIR" "$LOG_DIR" "$AIRFLOW_HOME" "$CHROMA_PATH" "$INCOMING_URI" "$STAGING_URI" \
    "$(dirname "$FEEDBACK_PATH")"

log() { printf '[up %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# HTTP with the venv's Python: a fresh machine may have no curl.
http_ok() { python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)' "$1" 2>/dev/null; }
search_hits() {  # number of results the search API returns for "$1" (0 on any error)
    python -c '
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"q": sys.argv[2]})
body = json.load(urllib.request.urlopen(url, timeout=10))
results = body.get("results", body) if isinstance(body, dict) else body
print(len(results) if isinstance(results, list) else 0)' "http://127.0.0.1:$SEARCH_PORT/search" "$1" 2>/dev/null || echo 0
}

# --- process bookkeeping -----------------------------------------------------
STARTED=()
start() {  # start NAME CMD...: own session (so the whole tree stops together), log, pid file
    local name=$1; shift
    # Non-interactive bash: the child is no group leader, so setsid execs in
    # place and $! is both the PID and the session/process-group id.
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS_DIR/$name.pid"
    STARTED+=("$name")
    log "started $name (pid $!, log logs/$name.log)"
}
stop_all() {
    trap - INT TERM EXIT
    ((${#STARTED[@]})) || return 0
    log "stopping: ${STARTED[*]}"
    "$ROOT/scripts/down.sh" "${STARTED[@]}"
}
trap 'echo; stop_all; exit 130' INT TERM
trap stop_all EXIT

wait_for() {  # wait_for NAME URL TIMEOUT_S: until URL answers 2xx, or the process died
    local name=$1 url=$2 timeout=$3 t0=$SECONDS pid
    pid=$(cat "$PIDS_DIR/$name.pid")
    until http_ok "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            die "$name exited; see logs/$name.log"
        fi
        ((SECONDS - t0 < timeout)) || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name not ready after ${timeout}s"; }
        sleep 1
    done
    log "$name is up ($((SECONDS - t0)) s)"
}

# --- preflight -----------------------------------------------------------------
for pidfile in "$PIDS_DIR"/*.pid; do
    [[ -e $pidfile ]] || continue
    if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        die "a stack is already running (.pids/$(basename "$pidfile")); stop it with 'make down'"
    fi
    rm -f "$pidfile"
done
for port in "$CHROMA_PORT" "$AIRFLOW_PORT" "$SEARCH_PORT"; do
    ! port_busy "$port" || die "port $port is in use; set CHROMA_PORT / AIRFLOW_PORT / SEARCH_PORT"
done
[[ -f dags/$DAG_ID.py ]] || die "dags/$DAG_ID.py is missing"

T0=$SECONDS
# --- Chroma ----------------------------------------------------------------------
start chroma chroma run --path "$CHROMA_PATH" --host 127.0.0.1 --port "$CHROMA_PORT"

# --- Airflow -------------------------------------------------------------------
log "airflow db migrate (SQLite under ${AIRFLOW_HOME#"$ROOT"/})"
airflow db migrate >"$LOG_DIR/airflow-db-migrate.log" 2>&1 || {
    tail -n 30 "$LOG_DIR/airflow-db-migrate.log" >&2; die "airflow db migrate failed"; }
# enrich/embed run in this pool (bounds Gemini calls across runs and backfills)
airflow pools set gemini_api "${GEMINI_POOL_SLOTS:-2}" "Gemini API calls" >>"$LOG_DIR/airflow-db-migrate.log" 2>&1 \
    || die "could not create the gemini_api pool; see logs/airflow-db-migrate.log"
start airflow-api-server airflow api-server
start airflow-scheduler airflow scheduler
start airflow-dag-processor airflow dag-processor
start airflow-triggerer airflow triggerer
# Airflow's own growth bounded (db clean + log retention), daily
start airflow-housekeeping bash scripts/airflow_housekeeping.sh --loop

# --- search API ------------------------------------------------------------------
wait_for chroma "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat" 60
start search-api uvicorn search_api.main:app --host "$BIND_HOST" --port "$SEARCH_PORT"

wait_for airflow-api-server "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" 180
wait_for search-api "http://127.0.0.1:$SEARCH_PORT/health" 180

# --- sample batch + first run ------------------------------------------------------
# Incoming layout: INCOMING_URI/YYYY-MM-DD/HH/*.csv, HH = an hour of the data
# interval the file belongs to. On unpause the scheduler runs the latest
# complete 6-hour interval, so the sample goes into that interval's first hour.
interval_start=$(python -c '
from datetime import UTC, datetime, timedelta
now = datetime.now(UTC)
end = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
print((end - timedelta(hours=6)).strftime("%Y-%m-%d/%H"))')
batch_dir=$INCOMING_URI$interval_start
mkdir -p "$batch_dir"
cp "$SAMPLE" "$batch_dir/"
touch "$batch_dir/_SUCCESS"  # the folder is complete: taken now, without waiting INCOMING_SETTLE_S
log "sample batch: ${batch_dir#"$ROOT"/}/$(basename "$SAMPLE")"

log "waiting for the dag-processor to register $DAG_ID"
t0=$SECONDS
until airflow dags unpause "$DAG_ID" >"$LOG_DIR/airflow-cli.log" 2>&1; do
    ((SECONDS - t0 < 180)) || { tail -n 20 "$LOG_DIR/airflow-cli.log" >&2; die "$DAG_ID not registered after 180 s"; }
    sleep 5
done
# Saved-search alerts run after every successful upsert (the tenders asset): unpause them first.
until airflow dags unpause tender_alerts >>"$LOG_DIR/airflow-cli.log" 2>&1; do
    ((SECONDS - t0 < 180)) || die "tender_alerts not registered after 180 s"
    sleep 5
done
# A manual run has no data interval in Airflow 3: it names its source. It is
# idempotent with the scheduled run over the same file (unchanged records are
# skipped), so whichever runs second finds nothing to pay for.
airflow dags trigger "$DAG_ID" --conf "{\"source\": \"$batch_dir\"}" >>"$LOG_DIR/airflow-cli.log" 2>&1 \
    || die "trigger failed; see logs/airflow-cli.log"
log "$DAG_ID unpaused (scheduled run for the latest interval) and triggered (manual run of the sample)"

password=$(python - "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" <<'PY'
import json, sys
print(json.load(open(sys.argv[1])).get("admin", "?"))
PY
) || password="(see $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"

cat <<MSG

  Search UI / API   http://localhost:$SEARCH_PORT/      e.g. curl 'http://localhost:$SEARCH_PORT/search?q=${SAMPLE_QUERY// /+}'
  Airflow UI        http://localhost:$AIRFLOW_PORT/      login: admin / $password
  Chroma (HTTP)     http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat
  Logs              logs/*.log   Airflow task logs: .airflow/logs/
  Stop              Ctrl-C here, or 'make down' from another shell

MSG

# --- wait until the sample is searchable, then keep running ------------------------
searchable=0
while true; do
    for name in "${STARTED[@]}"; do
        if ! kill -0 "$(cat "$PIDS_DIR/$name.pid")" 2>/dev/null; then
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            die "$name stopped unexpectedly; see logs/$name.log"
        fi
    done
    if ((!searchable)); then
        hits=$(search_hits "$SAMPLE_QUERY")
        if ((hits > 0)); then
            searchable=1
            log "sample batch searchable after $((SECONDS - T0)) s ($hits hits for '$SAMPLE_QUERY'); running, Ctrl-C to stop"
        fi
    fi
    sleep 5
done
