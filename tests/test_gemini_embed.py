"""GeminiEmbedder against the fake Gemini REST server, through the real google-genai SDK."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from tender_pipeline.embed import Embedder, build_embedder
from tender_pipeline.embed.gemini import GeminiEmbedder
from tender_pipeline.gemini import GeminiConfigError, GeminiUnavailableError
from tender_pipeline.gemini.prompt import estimate_tokens
from tests.gemini_fake import TEST_KEY, FakeGemini, Status, fake_vector, gemini_settings


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


def texts(n: int) -> list[str]:
    return [f"Tender {i}: supply of laboratory reagents batch {i}" for i in range(n)]


def test_documents_have_configured_dimension_unit_norm_and_at_most_100_per_request(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path, gemini_embed_dim=64))
    docs = texts(250)
    vectors = embedder.embed_documents(docs)

    assert vectors.shape == (250, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    sizes = [len(entry.body["requests"]) for entry in fake.log("embed")]
    assert sorted(sizes) == [50, 100, 100]
    for entry in fake.log("embed"):
        assert {r["taskType"] for r in entry.body["requests"]} == {"RETRIEVAL_DOCUMENT"}
        assert {r["outputDimensionality"] for r in entry.body["requests"]} == {64}
    # rows come back in input order, whatever order the concurrent requests finished in
    expected = np.asarray([fake_vector(f"RETRIEVAL_DOCUMENT|{t}", 64) for t in docs], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_queries_use_the_query_task_type(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path))
    query = embedder.embed_queries(["road maintenance"])
    doc = embedder.embed_documents(["road maintenance"])
    assert query.shape == (1, 768)
    assert fake.log("embed")[0].body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert not np.allclose(query, doc)  # asymmetric model: the task type reaches the API


def test_model_id_names_model_and_dimension(tmp_path):
    embedder = GeminiEmbedder(gemini_settings("http://127.0.0.1:9", tmp_path, gemini_embed_dim=256))
    assert embedder.model_id == "gemini:gemini-embedding-001:256" and embedder.dim == 256
    assert isinstance(embedder, Embedder)
    assert embedder.embed_documents([]).shape == (0, 256)


def test_usage_counts_requests_tokens_and_cost(fake, tmp_path):
    settings = gemini_settings(fake.base_url, tmp_path, gemini_price_embed_per_m=0.15)
    embedder = GeminiEmbedder(settings)
    docs = texts(120)
    embedder.embed_documents(docs)
    usage = embedder.usage()
    tokens = sum(estimate_tokens(t) for t in docs)  # the fake reports len // 4 per text
    assert usage["requests"] == 2 and usage["texts"] == 120
    assert usage["input_tokens"] == tokens
    assert usage["estimated_cost_usd"] == pytest.approx(tokens * 0.15 / 1e6, rel=1e-3)


def test_transient_errors_are_retried(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path))
    fake.script("embed", Status(503), Status(429, retry_after=0))
    vectors = embedder.embed_documents(texts(3))
    assert vectors.shape == (3, 768)
    assert [e.status for e in fake.log("embed")] == [503, 429, 200]
    assert embedder.usage()["retries"] == 2


def test_persistent_failure_raises_instead_of_faking_vectors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path, gemini_max_retries=1))
    fake.storm("embed", 500)
    with pytest.raises(GeminiUnavailableError, match="no substitute vectors") as info:
        embedder.embed_documents(texts(3))
    assert fake.count("embed") == 2
    assert TEST_KEY not in str(info.value) and TEST_KEY not in caplog.text


def test_rejected_key_is_a_config_error(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path))
    fake.script("embed", Status(401))
    with pytest.raises(GeminiConfigError, match="HTTP 401"):
        embedder.embed_queries(["x"])
    assert fake.count("embed") == 1  # not retried


def test_blank_text_is_refused_before_calling(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path))
    with pytest.raises(ValueError, match="empty text"):
        embedder.embed_documents(["ok", "  "])
    assert fake.count("embed") == 0


def test_embed_queries_from_inside_a_running_loop(fake, tmp_path):
    embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp_path))

    async def handler() -> np.ndarray:
        return embedder.embed_queries(["solar panels"])  # as a sync dependency inside FastAPI would

    assert asyncio.run(handler()).shape == (1, 768)


def test_build_embedder_selects_gemini(fake, tmp_path):
    embedder = build_embedder(gemini_settings(fake.base_url, tmp_path, gemini_embed_dim=32))
    assert isinstance(embedder, GeminiEmbedder) and embedder.model_id.endswith(":32")
