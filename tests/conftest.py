"""Test-wide setup: an isolated Airflow home (set before anything imports Airflow) and shared fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE_CSV = FIXTURES / "sample_tenders.csv"

# Airflow reads its configuration at import time, so the home must exist first.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="tender-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# the lexical index lives beside each test's Chroma data, never in the repo's data/ folder
os.environ.setdefault("LEXICAL_INDEX_PATH", str(_AIRFLOW_HOME / "lexical"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# the API migrates its database at start-up: keep test apps out of the checkout's data/ folder
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_AIRFLOW_HOME / 'tender_search.db'}")
# tests write a batch and run at once: no settle wait unless a test sets one (tests/test_incoming_settle.py)
os.environ.setdefault("INCOMING_SETTLE_S", "0")
# the offline backends are what tests exercise unless a test opts into Gemini
os.environ.pop("GEMINI_API_KEY", None)

# Property-based tests: a bounded run in CI, a long one with HYPOTHESIS_PROFILE=fuzz-long.
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

hypothesis_settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, database=None,
                                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.register_profile("fuzz-long", max_examples=5000, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def chroma(tmp_path_factory) -> tuple[str, int]:
    """One real `chroma run` server for the session; tests use their own collections."""
    from tests.services import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as address:
        yield address


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's Airflow home (dag.test needs one)."""
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def tender_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["tender_ingest"]


@pytest.fixture(scope="session")
def indexed_sample(chroma, tmp_path_factory) -> dict:
    """The 240-tender sample ingested once into the session's Chroma; returns its connection settings."""
    from tender_pipeline import pipeline
    from tender_pipeline.settings import Settings

    host, port = chroma
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "sample_index"}
    settings = Settings(**where, staging_uri=str(tmp_path_factory.mktemp("sample-staging")),
                        embed_backend="local", enrich_backend="local")
    summary = pipeline.run_all(settings, "sample-index", source=str(SAMPLE_CSV))
    assert summary["upserted"] == 240
    return where


def pytest_terminal_summary(terminalreporter) -> None:
    """The compose end-to-end test's phase times, in pytest's summary (also under -q, as in CI)."""
    import sys

    # pytest imports the test file as ``test_compose_e2e`` (rootdir on sys.path), a helper may as tests.…
    e2e = sys.modules.get("test_compose_e2e") or sys.modules.get("tests.test_compose_e2e")
    phases = getattr(e2e, "PHASES", None)
    if phases:
        import json

        terminalreporter.write_sep("-", "compose e2e phases (seconds)")
        terminalreporter.write_line(json.dumps(phases))
