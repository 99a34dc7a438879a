"""The ONNX Runtime embedder: shipped model intact, same vector space as the torch model, no torch in the API."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tender_pipeline import store
from tender_pipeline.embed import build_embedder, get_embedder
from tender_pipeline.embed.onnx_runtime import MODEL_DIR, ModelFilesError, OnnxEmbedder, read_manifest
from tender_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "fixtures" / "sample_tenders.csv"
QUERIES = [q["query"] for q in json.loads((ROOT / "bench" / "queries.json").read_text("utf-8"))["queries"]]


@pytest.fixture(scope="module")
def documents() -> list[str]:
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        return [f"{r['title']}. {r['description']}" for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def onnx() -> OnnxEmbedder:
    return OnnxEmbedder(threads=1)


def test_default_local_embedder_is_onnx_and_torch_is_a_setting(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    default = build_embedder(Settings())
    assert isinstance(default, OnnxEmbedder)
    torch_engine = build_embedder(Settings(local_embedder="torch"))
    assert type(torch_engine).__name__ == "LocalEmbedder"
    # different vectors, different ids: the collection guard asks for a re-ingest when the engine changes
    assert default.model_id != torch_engine.model_id and default.dim == torch_engine.dim == 384
    assert default.model_id == read_manifest(MODEL_DIR, verify=False)["model_id"]


def test_api_thread_setting_keeps_its_old_name(monkeypatch):
    from search_api.settings import ApiSettings

    assert ApiSettings().embed_threads == 1 and Settings().embed_threads == 0
    monkeypatch.setenv("TORCH_THREADS", "3")
    assert ApiSettings().embed_threads == 3
    monkeypatch.setenv("EMBED_THREADS", "2")
    assert ApiSettings().embed_threads == 2
    assert get_embedder(ApiSettings()).threads == 2


def test_shipped_model_matches_its_manifest_and_a_changed_file_is_refused(tmp_path):
    manifest = read_manifest(MODEL_DIR)  # raises on a checksum mismatch
    assert manifest["variant"].startswith("int8") and manifest["fusions"]["Attention"] == 6
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy)
    spec = json.loads((copy / "tokenizer.json").read_text("utf-8"))
    assert spec["truncation"]["max_length"] == 256 and spec["padding"] is None
    (copy / "tokenizer.json").write_text(json.dumps(spec | {"padding": {"strategy": "BatchLongest"}}), "utf-8")
    with pytest.raises(ModelFilesError, match="tokenizer.json: sha256 differs"):
        OnnxEmbedder(copy).embed_queries(["x"])
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelFilesError, match="model.onnx: missing"):
        read_manifest(copy)


def test_vectors_are_unit_length_in_input_order_and_truncated_at_256_tokens(onnx, documents):
    vectors = onnx.embed_documents(documents[:50])
    assert vectors.shape == (50, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_order = onnx.embed_documents(documents[:50][::-1])[::-1]
    # rows come back where they went in (a shuffled row would score far lower). Not identical: int8
    # activation scales follow the batch's make-up, and the kernels differ by CPU (min cosine 0.988 on an
    # AVX2 machine without VNNI, above 0.99 with it)
    same = np.sum(vectors * reversed_order, axis=1)
    assert float(np.min(same)) > 0.98 and float(np.mean(same)) > 0.99
    assert onnx.embed_documents([]).shape == (0, 384)
    long = "road maintenance " * 400  # ~800 tokens: must be cut at 256, not fail
    assert onnx.embed_documents([long]).shape == (1, 384)


def test_query_alone_agrees_with_the_same_text_inside_a_batch(onnx, documents):
    """Dynamic int8 scales activations per batch: a query embedded alone must land where its batched twin does.

    Measured with the shipped int8 model on these 39 queries: mean 0.9905, worst 0.985 (an id-like
    query); int8 with fp32 feed-forward outputs reaches a worst of 0.989 at ~20 % less speed.
    """
    batch = onnx.embed_documents(documents + QUERIES)[len(documents):]
    alone = np.vstack([onnx.embed_queries([q]) for q in QUERIES])
    cosines = np.sum(batch * alone, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.mean() >= 0.99, f"mean cosine {cosines.mean():.4f} alone vs in a batch"
    assert cosines[worst] >= 0.98, f"{QUERIES[worst]!r}: cosine {cosines[worst]:.4f} alone vs in a batch"
    assert np.array_equal(onnx.embed_queries([QUERIES[0]]), onnx.embed_queries([QUERIES[0]]))  # deterministic


def test_onnx_vectors_match_the_torch_model(onnx):
    """Against stock sentence-transformers' vectors of 99 texts, stored by tests/fixtures/make_stock_vectors.py
    (no torch needed here: `make setup` leaves it out). Where torch is installed (`make setup-bench`) the
    stored vectors are checked against the live model too."""
    from tests.fixtures import make_stock_vectors as stock

    texts = stock.texts()
    stored = np.load(stock.OUT)
    assert str(stored["texts_sha256"]) == stock.digest(texts), \
        "sample_tenders.csv or bench/queries.json changed: make setup-bench, then rerun " \
        "tests/fixtures/make_stock_vectors.py"
    reference = stored["vectors"].astype(np.float32)
    cosines = np.sum(onnx.embed_documents(texts) * reference, axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.97, (cosines.mean(), cosines.min())
    if importlib.util.find_spec("sentence_transformers") is not None:
        live = build_embedder(Settings(local_embedder="torch")).embed_documents(texts)
        assert np.sum(live * reference, axis=1).min() >= 0.999, "the stored stock vectors are stale"


def test_collection_from_the_torch_engine_asks_for_a_reingest(chroma, onnx):
    host, port = chroma
    client = store.get_client(Settings(chroma_host=host, chroma_port=port))
    store.open_collection(client, "torch_built", "local:all-MiniLM-L6-v2", 384)
    with pytest.raises(store.EmbeddingMismatchError, match="LOCAL_EMBEDDER"):
        store.open_collection(client, "torch_built", onnx.model_id, onnx.dim)


@pytest.mark.slow
def test_search_api_never_imports_torch(indexed_sample, tmp_path):
    """A fresh interpreter runs the app and a search; torch must not be loaded by then."""
    code = f"""
import json, sys, time
from fastapi.testclient import TestClient
from search_api.main import create_app
from search_api.settings import ApiSettings
settings = ApiSettings(**{indexed_sample!r}, feedback_path={str(tmp_path / 'fb.jsonl')!r}, embed_backend="local")
with TestClient(create_app(settings)) as client:
    deadline = time.monotonic() + 120
    while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    response = client.get("/search", params={{"q": "supply of hospital beds", "limit": 5}})
    print(json.dumps({{"status": response.status_code, "results": len(response.json().get("results", [])),
                      "loaded": [m for m in ("torch", "sentence_transformers") if m in sys.modules]}}))
"""
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'plugins'}{os.pathsep}{ROOT}")
    env.pop("GEMINI_API_KEY", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 200 and report["results"] == 5
    assert report["loaded"] == [], f"the search API imported {report['loaded']}"


@pytest.mark.slow
def test_build_script_reproduces_the_shipped_model_or_names_setup_bench():
    """With torch (`make setup-bench`) a rebuild gives the shipped checksums; without it (`make setup`) the
    script stops in one line that says how to get torch, not with a traceback."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_onnx_model.py"), "--check"],
                          capture_output=True, text=True, timeout=600)
    if importlib.util.find_spec("torch") is None:
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-1500:]
        assert "make setup-bench" in done.stderr.strip().splitlines()[-1]
        return
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    assert json.loads(done.stdout)["same_checksums"] is True


def test_batches_stay_within_the_token_limit_and_the_sector_scorer_keeps_row_batches(onnx, documents):
    """Token-limited batches bound the arena (rows x width² in attention); the scorer's argmax keeps its batches."""
    from tender_pipeline.sector_scores import DivisionScorer
    from tender_pipeline.taxonomy import load_taxonomy

    texts = documents + ["road maintenance " * 400, "x"]
    _, tokenizer = onnx._load()
    lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
    order = np.argsort(-lengths, kind="stable")
    batches = list(onnx._batches(lengths, order))
    assert np.array_equal(np.concatenate(batches), order)  # every text once, in order
    for rows in batches:
        assert len(rows) <= onnx.batch_size
        assert len(rows) == 1 or len(rows) * lengths[rows].max() <= onnx.batch_tokens
    tight = [len(b) for b in onnx.with_batching(100)._batches(lengths, order)]
    assert tight[0] == 1 and lengths[order[0]] == 256  # a text alone over the limit still runs

    rows_only = onnx.with_batching(None)
    assert rows_only._loaded is onnx._loaded  # one session for both
    assert [len(b) for b in rows_only._batches(lengths, order)][:-1] == [rows_only.batch_size] * (len(texts) // 64)
    cosines = np.sum(onnx.embed_documents(documents) * rows_only.embed_documents(documents), axis=1)
    assert cosines.min() >= 0.98  # the same model; only int8 activation scales follow the batch
    scorer = DivisionScorer(load_taxonomy(""), onnx, str.split)
    assert scorer._embedder.batch_tokens is None and onnx.batch_tokens == 512
