"""scripts/airflow_housekeeping.sh against a real metadata DB: old runs, task instances and XComs go, so
does every old log file; what is younger than the retention stays.

Airflow runs in subprocesses with an Airflow home of the test's own (a DAG folder holding one small DAG),
so the session's Airflow configuration is left alone.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "scripts" / "airflow_housekeeping.sh"
PROBE = '''
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="housekeeping_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def probe():
    @task
    def answer() -> dict:
        return {"rows": 42}
    answer()

probe()
'''


@pytest.fixture
def home(tmp_path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path / "dags"),
               AIRFLOW_HOUSEKEEPING_STAMP=str(tmp_path / "housekeeping.ok"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    airflow(env, "db", "migrate")
    for _ in range(2):
        airflow(env, "dags", "test", "housekeeping_probe")
    return tmp_path, env


def airflow(env: dict[str, str], *args: str) -> None:
    got = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]


def rows(home: Path, table: str) -> int:
    with sqlite3.connect(home / "airflow.db") as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE dag_id = 'housekeeping_probe'").fetchone()[0]


def housekeeping(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=300)


def test_old_runs_xcoms_and_logs_go_and_recent_ones_stay(home):
    path, env = home
    xcoms = rows(path, "xcom")
    assert (rows(path, "dag_run"), rows(path, "task_instance")) == (2, 2) and xcoms >= 2
    old, recent = path / "logs" / "dag_id=x" / "old.log", path / "logs" / "dag_processor" / "recent.log"
    for log in (old, recent):
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("a log line\n")
    stamp = (datetime.now(UTC) - timedelta(days=20)).timestamp()
    os.utime(old, (stamp, stamp))

    # a retention reaching back before the runs: nothing of theirs goes, the 20-day-old log does
    kept = housekeeping(env, AIRFLOW_DB_RETENTION_DAYS="30", AIRFLOW_LOG_RETENTION_DAYS="15")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert (rows(path, "dag_run"), rows(path, "xcom")) == (2, xcoms)
    assert not old.exists() and not old.parent.exists() and recent.exists()
    assert (path / "housekeeping.ok").exists()  # what compose's healthcheck looks at

    # everything before now: the runs, their task instances and XComs go
    cutoff = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
    cleaned = housekeeping(env, AIRFLOW_DB_CLEAN_BEFORE=cutoff)
    assert cleaned.returncode == 0, cleaned.stderr[-2000:]
    assert (rows(path, "dag_run"), rows(path, "task_instance"), rows(path, "xcom")) == (0, 0, 0)
    assert recent.exists()
