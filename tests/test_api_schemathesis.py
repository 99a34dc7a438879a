"""`schemathesis run` over the live OpenAPI document: every operation, no 5xx, no schema violation.

The app runs under uvicorn on the session's indexed sample (real Chroma,
real model), so generated searches exercise ranking and filters for real.
Examples per operation: ``SCHEMATHESIS_EXAMPLES`` (default 30; raise it for a
long run). The rate limit is off here: this suite is one very busy client.
"""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from search_api.settings import ApiSettings
from tests.services import BIN, serve_ready

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def live_api(indexed_sample, tmp_path_factory):
    base = tmp_path_factory.mktemp("schemathesis")
    api_settings = ApiSettings(**indexed_sample, feedback_path=str(base / "feedback.jsonl"), embed_backend="local",
                               rate_limit="")
    with serve_ready(api_settings) as url:
        yield url


def owner_token(url: str) -> str:
    """The token a first POST /saved-searches mints (no header: a new owner)."""
    created = httpx.post(f"{url}/saved-searches", json={"name": "schemathesis", "params": {"q": "roads"}})
    assert created.status_code == 201, created.text
    return created.json()["token"]


def test_schemathesis_run_finds_no_5xx_and_no_schema_violation(live_api, tmp_path):
    """`schemathesis run` (the CLI) over every operation of the live /openapi.json, every check on."""
    result = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{live_api}/openapi.json", "--checks", "all",
         # Cross-field rules (closing_after <= closing_before, min_value <= max_value) cannot be written in
         # OpenAPI, so "schema-valid" pairs that break them rightly get 422 (tests/test_api_search.py).
         "--exclude-checks", "positive_data_acceptance",
         # A real owner token, so the owner-only operations get past 401 to their logic; schemathesis's
         # auth checks still strip it and forge invalid ones on every operation that declares it.
         "--header", f"Authorization: Bearer {owner_token(live_api)}",
         "--max-examples", str(EXAMPLES), "--seed", "20261129", "--generation-database", "none",
         "--workers", "1", "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=1500, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"},
    )
    failures = result.stdout[result.stdout.find("FAILURES"):]
    assert result.returncode == 0, failures[:15000] + result.stderr[-3000:]
    assert "API Operations:" in result.stdout and "Tested: 0" not in result.stdout
    selected = result.stdout.split("Selected:", 1)[1].split()[0]  # e.g. "18/18": every operation, none excluded
    numerator, denominator = selected.split("/")
    assert numerator == denominator, result.stdout[-3000:]
    assert {"/saved-searches", "/saved-searches/{search_id}/feed"} <= set(httpx.get(f"{live_api}/openapi.json")
                                                                            .json()["paths"])
