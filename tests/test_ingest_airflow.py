"""End to end through Airflow (``dag.test``) into a real ``chroma run`` server.

Covers the ingestion issue's acceptance: count equals valid rows, a bad row is
quarantined with its reason, a rerun pays for nothing, one changed row is
re-embedded alone, a title finds its own tender, and fetch works from S3
(moto's server with ``aws_default``) and from HTTP.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import chromadb
import pytest

from tender_pipeline import staging
from tender_pipeline.embed import get_embedder
from tender_pipeline.settings import Settings
from tests import stored
from tests.batches import read_rows, write_rows

UTC = UTC


@pytest.fixture
def env(monkeypatch, tmp_path, chroma) -> Settings:
    host, port = chroma
    values = {
        "CHROMA_HOST": host, "CHROMA_PORT": str(port),
        "TENDER_COLLECTION": f"t_{uuid.uuid4().hex[:10]}",
        "STAGING_URI": str(tmp_path / "staging"), "INCOMING_URI": str(tmp_path / "incoming"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _collection(settings: Settings):
    client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port)
    return client.get_collection(settings.tender_collection)


DEFAULT_CONF = {"source": "", "limit": None, "force": False, "profile": ""}


def run_dag(dag, settings: Settings, run_conf: dict | None = None, **kwargs) -> dict:
    # always pass every param: dag.test() keeps the previous run's conf on the shared DAG object
    dag_run = dag.test(run_conf={**DEFAULT_CONF, **(run_conf or {})}, **kwargs)
    assert dag_run.state == "success", dag_run.state
    return staging.read_json(staging.run_dir(settings.staging_uri, dag_run.run_id) / "summary.json")


def _snapshot(collection, settings) -> dict:
    """{id: (card, text)}: ids from Chroma, each with what the lexical index holds for it."""
    held = stored.notices(settings)
    return {i: held.get(i) for i in stored.chroma_ids(collection)}


def test_ingest_rerun_and_change(tender_dag, env, tmp_path, sample_csv):
    rows = read_rows(sample_csv)
    bad = dict(rows[0], tender_id="BAD-1", title="")
    batch = write_rows(tmp_path / "batch.csv", rows + [bad])
    conf = {"source": str(batch)}

    first = run_dag(tender_dag, env, run_conf=conf)
    assert (first["rows_read"], first["valid"], first["quarantined"]) == (241, 240, 1)
    assert first["enriched"] == first["embedded"] == first["upserted"] == 240
    collection = _collection(env)
    assert collection.count() == 240
    quarantine = read_rows(Path(first["staging_dir"]) / "quarantine.csv")
    assert [(q["file"], q["row"], q["field"], q["tender_id"]) for q in quarantine] == \
        [("batch.csv", "242", "title", "BAD-1")]
    assert "required" in quarantine[0]["reason"]
    assert set(first["seconds"]) == {"fetch", "validate", "enrich", "embed", "upsert"}
    before = _snapshot(collection, env)
    meta = before[rows[3]["tender_id"]][0]
    assert meta["country"] == rows[3]["country"] and meta["content_hash"] and None not in meta.values()

    rerun = run_dag(tender_dag, env, run_conf=conf)
    assert (rerun["unchanged"], rerun["enriched"], rerun["embedded"], rerun["upserted"]) == (240, 0, 0, 0)
    assert _snapshot(collection, env) == before

    changed_id = rows[10]["tender_id"]
    rows[10]["description"] += " Includes a two-year maintenance period."
    write_rows(batch, rows)
    third = run_dag(tender_dag, env, run_conf=conf)
    assert (third["enriched"], third["embedded"], third["upserted"], third["updated"]) == (1, 1, 1, 1)
    after = _snapshot(collection, env)
    assert collection.count() == 240
    assert {i for i in after if after[i] != before[i]} == {changed_id}
    assert "two-year maintenance" in after[changed_id][1]


def test_title_embedding_finds_its_tender(tender_dag, env, sample_csv):
    run_dag(tender_dag, env, run_conf={"source": str(sample_csv), "limit": 120})
    rows = read_rows(sample_csv)[:120]
    titles = [r["title"] for r in rows]
    unique = [r for r in rows if titles.count(r["title"]) == 1][:5]
    assert unique
    collection = _collection(env)
    vectors = get_embedder(env).embed_queries([r["title"] for r in unique])
    found = collection.query(query_embeddings=vectors, n_results=1, include=["metadatas"])
    assert [metas[0]["t"] for metas in found["metadatas"]] == [r["tender_id"] for r in unique]  # the slot's tender


def test_scheduled_intervals_from_s3_through_aws_default(tender_dag, env, monkeypatch, tmp_path, sample_csv):
    from tests.services import moto_s3_server

    rows = read_rows(sample_csv)
    with moto_s3_server(tmp_path) as endpoint:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
            "conn_type": "aws", "login": "test", "password": "test",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
        monkeypatch.setenv("INCOMING_URI", "s3://tender-batches/incoming/")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        s3.create_bucket(Bucket="tender-batches")
        early = write_rows(tmp_path / "early.csv", rows[:30])
        late = write_rows(tmp_path / "late.csv", rows[30:50])
        s3.upload_file(str(early), "tender-batches", "incoming/2026-11-27/01/early.csv")
        s3.upload_file(str(late), "tender-batches", "incoming/2026-11-27/07/late.csv")

        # a run for logical date 06:00 covers [00:00, 06:00); the next covers [06:00, 12:00)
        first = run_dag(tender_dag, env, logical_date=datetime(2026, 11, 27, 6, tzinfo=UTC))
        second = run_dag(tender_dag, env, logical_date=datetime(2026, 11, 27, 12, tzinfo=UTC))
        again = run_dag(tender_dag, env, logical_date=datetime(2026, 11, 27, 6, tzinfo=UTC))
    assert (first["files"], first["rows_read"], first["upserted"]) == (1, 30, 30)
    assert (second["files"], second["rows_read"], second["upserted"]) == (1, 20, 20)
    assert (again["files"], again["skipped_files"], again["rows_read"]) == (0, 1, 0)
    assert _collection(env).count() == 50


def test_manual_run_from_http_url(tender_dag, env, tmp_path, sample_csv):
    root = tmp_path / "www"
    root.mkdir()
    write_rows(root / "export.csv", read_rows(sample_csv)[:15])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/export.csv"
        summary = run_dag(tender_dag, env, run_conf={"source": url})
    finally:
        server.shutdown()
    assert (summary["files"], summary["upserted"]) == (1, 15)
    assert _collection(env).count() == 15
