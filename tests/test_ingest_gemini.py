"""A full DAG run in Gemini mode: the real SDK against the fake Gemini REST server, into chroma run."""

from __future__ import annotations

import math
import uuid

import chromadb
import pytest

from tender_pipeline import staging, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.settings import Settings
from tests import stored
from tests.gemini_fake import TEST_KEY, FakeGemini
from tests.test_ingest_airflow import run_dag

ROWS = 45


@pytest.fixture
def gemini_env(monkeypatch, tmp_path, chroma):
    host, port = chroma
    with FakeGemini() as fake:
        values = {
            "CHROMA_HOST": host, "CHROMA_PORT": str(port),
            "TENDER_COLLECTION": f"g_{uuid.uuid4().hex[:10]}", "STAGING_URI": str(tmp_path / "staging"),
            "GEMINI_API_KEY": TEST_KEY, "GEMINI_BASE_URL": fake.base_url,
            "ENRICH_CACHE_PATH": str(tmp_path / "cache.sqlite"), "GEMINI_ENRICH_BATCH_SIZE": "20",
            "GEMINI_RETRY_INITIAL_S": "0.01", "GEMINI_RETRY_JITTER_S": "0.01",
        }
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        yield fake, Settings()


def test_dag_run_in_gemini_mode(tender_dag, gemini_env, sample_csv, caplog):
    fake, settings = gemini_env
    assert settings.enrich_backend == settings.embed_backend == "gemini"
    summary = run_dag(tender_dag, settings, run_conf={"source": str(sample_csv), "limit": ROWS})

    assert summary["upserted"] == ROWS
    assert summary["enrichment_backend"] == "gemini"
    assert summary["enrichment_sources"] == {"gemini": ROWS}
    assert summary["embedding_model"] == "gemini:gemini-embedding-001:768"
    assert fake.count("generate") <= math.ceil(ROWS / 20)
    assert fake.count("embed") == math.ceil(ROWS / 100)
    usage = summary["enrichment_usage"]
    assert usage["requests"] == fake.count("generate") and usage["input_tokens"] > 0
    assert usage["estimated_cost_usd"] > 0

    client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port)
    collection = client.get_collection(settings.tender_collection)
    assert collection.metadata["embedding_model"] == "gemini:gemini-embedding-001:768"
    meta = next(iter(stored.cards(settings).values()))  # the card lives in the lexical index
    assert meta["enrichment_source"] == "gemini"
    # the collection refuses an embedder from another vector space
    local = get_embedder(settings.model_copy(update={"embed_backend": "local"}))
    with pytest.raises(store.EmbeddingMismatchError, match="gemini-embedding-001"):
        store.open_collection(client, settings.tender_collection, local.model_id, local.dim)

    # a rerun pays Gemini nothing
    calls = fake.count("generate") + fake.count("embed")
    again = run_dag(tender_dag, settings, run_conf={"source": str(sample_csv), "limit": ROWS})
    assert again["unchanged"] == ROWS and fake.count("generate") + fake.count("embed") == calls

    # the key shows up nowhere we write: logs, staging files, XCom-visible summaries
    assert TEST_KEY not in caplog.text
    for path in staging.run_dir(settings.staging_uri, "x").parent.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".jsonl", ".csv"}:
            assert TEST_KEY not in path.read_text(errors="replace"), path
