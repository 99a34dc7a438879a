"""tender_alerts is scheduled on the asset upsert updates, visible to `airflow dags list`; `db upgrade` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def test_alerts_are_triggered_by_the_asset_upsert_updates(bag):
    from airflow.sdk import Asset
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

    upsert = bag.dags["tender_ingest"].get_task("upsert")
    alerts = bag.dags["tender_alerts"]
    assert upsert.outlets == [Asset("tenders")]
    assert isinstance(alerts.timetable, AssetTriggeredTimetable)
    assert alerts.timetable.asset_condition.objects == (Asset("tenders"),)
    assert alerts.max_active_runs == 1 and alerts.catchup is False
    assert [t.task_id for t in alerts.tasks] == ["evaluate"]
    assert alerts.get_task("evaluate").retries >= 1
    assert "staging_dir" in alerts.params


def test_airflow_dags_list_shows_both_dags(airflow_db):
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), "dags", "list", "--local", "-o", "json"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = next(line for line in proc.stdout.splitlines() if line.startswith("[{"))  # logs share stdout
    listed = {d["dag_id"] for d in json.loads(table)}
    assert {"tender_ingest", "tender_alerts"} <= listed


def test_db_upgrade_cli_migrates_and_hides_the_password(tmp_path):
    def cli(url: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "DATABASE_URL": url}
        return subprocess.run([sys.executable, "-m", "tender_pipeline", "db", "upgrade"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    ok = cli(f"sqlite:///{tmp_path / 'x' / 'db.sqlite'}")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("at revision 0001") and (tmp_path / "x" / "db.sqlite").exists()
    from tests.services import free_port

    down = cli(f"postgresql://alerts:hunter2@127.0.0.1:{free_port()}/tenders")
    assert down.returncode == 2 and down.stderr.startswith("error: database postgresql://alerts:***@127.0.0.1:")
    assert "hunter2" not in down.stderr and "Traceback" not in down.stderr
