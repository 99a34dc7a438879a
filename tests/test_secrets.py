"""Planted secrets appear in no output: logs, staging files, summaries, XCom, CLI output, API error bodies.

The secrets are a Gemini key (env), credentials and a signature in a source URL
(user info and query string), and an S3 secret in Airflow's ``aws_default``
connection. Gemini is the local fake, made to fail in every way that quotes
server or library text back (401, 500, malformed answers).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from search_api.main import create_app
from search_api.settings import ApiSettings
from tests.conftest import ROOT
from tests.gemini_fake import FakeGemini, Malformed, Status
from tests.services import free_port, serve_app

pytestmark = pytest.mark.slow
KEY = "AIzaPLANTED-gemini-" + uuid.uuid4().hex
URL_PASSWORD = "pw-PLANTED-" + uuid.uuid4().hex[:12]
URL_SIGNATURE = "sig-PLANTED-" + uuid.uuid4().hex[:12]
AWS_SECRET = "aws-PLANTED-" + uuid.uuid4().hex[:12]
SECRETS = (KEY, URL_PASSWORD, URL_SIGNATURE, AWS_SECRET)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def files_with_secrets(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            hit = leaks(path.read_bytes().decode("utf-8", errors="replace"))
            if hit:
                found[str(path)] = hit
    return found


@pytest.fixture
def batch_server(tmp_path, sample_csv):
    """The sample batch over HTTP, fetched with user info and a signed query string in the URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "batch.csv").write_text("\n".join(sample_csv.read_text(encoding="utf-8").splitlines()[:31]) + "\n",
                                    encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://user:{URL_PASSWORD}@127.0.0.1:{server.server_address[1]}/batch.csv?sig={URL_SIGNATURE}"
    finally:
        server.shutdown()


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tender_pipeline", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_run_with_gemini_faults_leaks_nothing(tmp_path, chroma, batch_server):
    host, port = chroma
    with FakeGemini() as fake:
        fake.script("generate", Status(500), Malformed(), Status(429, retry_after=0))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "STAGING_", "GEMINI_"))}
        env.update(PYTHONPATH=str(ROOT / "plugins"), CHROMA_HOST=host, CHROMA_PORT=str(port),
                   TENDER_COLLECTION=f"s_{uuid.uuid4().hex[:8]}", STAGING_URI=str(tmp_path / "staging"),
                   GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake.base_url, GEMINI_RETRY_INITIAL_S="0.01",
                   GEMINI_RETRY_JITTER_S="0.01", GEMINI_MAX_RETRIES="1",
                   AIRFLOW_CONN_AWS_DEFAULT=json.dumps({"conn_type": "aws", "login": "x", "password": AWS_SECRET}))
        ok = _cli(["ingest", batch_server, "-v", "--json"], tmp_path, env)
        assert ok.returncode == 0, ok.stderr[-3000:]
        assert json.loads(ok.stdout)["upserted"] == 30
        assert fake.count("generate", 500) >= 1  # the faults really happened
        assert all(r.headers.get("x-goog-api-key") == KEY for r in fake.log("generate"))  # it was really sent

        fake.script("generate", *[Status(401)] * 5)  # a rejected key: the error quotes the server's answer
        env["TENDER_COLLECTION"] += "b"
        rejected = _cli(["ingest", batch_server, "-v"], tmp_path, env)
    assert rejected.returncode == 2 and "GEMINI_API_KEY" in rejected.stderr and "Traceback" not in rejected.stderr
    for result in (ok, rejected):
        assert leaks(result.stdout + result.stderr) == []
    assert files_with_secrets(tmp_path / "staging") == {}  # summaries, stage files, quarantine, enrich cache


def test_dag_logs_and_xcom_leak_nothing(tender_dag, monkeypatch, tmp_path, chroma, batch_server, caplog):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from tender_pipeline.settings import Settings
    from tests.test_ingest_airflow import run_dag

    host, port = chroma
    with FakeGemini() as fake:
        fake.script("generate", Status(500), Malformed())
        values = {"CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": f"x_{uuid.uuid4().hex[:8]}",
                  "STAGING_URI": str(tmp_path / "staging"), "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": fake.base_url,
                  "GEMINI_RETRY_INITIAL_S": "0.01", "GEMINI_RETRY_JITTER_S": "0.01", "GEMINI_MAX_RETRIES": "1",
                  "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "login": "x", "password": AWS_SECRET})}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        caplog.set_level("DEBUG")
        summary = run_dag(tender_dag, Settings(), run_conf={"source": batch_server})
    assert summary["upserted"] == 30
    with create_session() as session:  # every XCom the run pushed (stage results, the summary)
        every = [json.dumps(x.value, default=str) for x in session.query(XComModel).all()]
    assert any("upserted" in value for value in every) and leaks("\n".join(every)) == []
    assert leaks(caplog.text) == []
    assert files_with_secrets(tmp_path / "staging") == {}


def test_api_error_bodies_and_logs_leak_nothing(tmp_path, caplog):
    """Gemini embeddings failing behind the search API: 503 bodies and logs name the fault, not the key."""
    with FakeGemini() as fake:
        fake.storm("embed", 500)
        settings = ApiSettings(chroma_host="127.0.0.1", chroma_port=free_port(), gemini_api_key=KEY,
                               gemini_base_url=fake.base_url, embed_backend="gemini", enrich_backend="gemini",
                               gemini_max_retries=0, feedback_path=str(tmp_path / "fb.jsonl"), chroma_retry_s=0)
        caplog.set_level("DEBUG")
        with serve_app(create_app(settings)) as url:
            deadline = time.monotonic() + 30
            while httpx.get(f"{url}/ready").json()["embedder"] == "loading" and time.monotonic() < deadline:
                time.sleep(0.2)
            bodies = [httpx.get(f"{url}/ready"), httpx.get(f"{url}/search", params={"q": "roads"}),
                      httpx.post(f"{url}/search", json={"q": "bridges"}), httpx.get(f"{url}/tenders/X-1"),
                      httpx.get(f"{url}/stats"), httpx.get(f"{url}/metrics")]
    assert [b.status_code for b in bodies[:3]] == [503] * 3  # (/stats may answer from the lexical index)
    assert bodies[3].status_code == 404  # a tender's page reads only the lexical index: no Chroma, no Gemini
    assert fake.count("embed", 500) >= 1
    for response in bodies:
        assert leaks(response.text + json.dumps(dict(response.headers))) == []
    assert leaks(caplog.text) == []
