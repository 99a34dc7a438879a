"""Startup without Chroma, /ready and /search while it is down, lazy reconnect when it returns."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import store
from tender_pipeline.embed import get_embedder
from tender_pipeline.lexical import open_index
from tests import services
from tests.services import chroma_server, free_port

pytestmark = pytest.mark.slow


def settings_for(port: int, tmp_path, collection: str = "tenders_ops") -> ApiSettings:
    return ApiSettings(chroma_host="127.0.0.1", chroma_port=port, tender_collection=collection,
                       feedback_path=str(tmp_path / "fb.jsonl"), embed_backend="local",
                       warm_embedder=False, chroma_retry_s=0)


def eventually(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_starts_while_chroma_is_down_and_says_so(tmp_path):
    with TestClient(create_app(settings_for(free_port(), tmp_path))) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False and "unavailable" in ready.json()["chroma"]
        response = client.get("/search?q=roads")
        assert response.status_code == 503 and response.json()["error"] == "chroma_unavailable"
        assert client.get("/tenders/ANY-1").status_code == 404  # a tender's page reads the lexical index only
        # counts come from the lexical index, which does not need Chroma
        assert client.get("/stats").json()["documents"] == 0
        assert ready.json()["lexical"] == "ok"
        assert client.post("/search", json={"q": "roads"}).status_code == 503
        assert client.get("/search", params={"q": "roads", "limit": 0}).status_code == 422  # validation first
        assert "search_api_ready 0.0" in client.get("/metrics").text


def test_reconnects_when_chroma_comes_back_and_notices_when_it_goes(tmp_path, monkeypatch):
    port = free_port()
    settings = settings_for(port, tmp_path)
    with TestClient(create_app(settings)) as client:
        assert "unavailable" in client.get("/ready").json()["chroma"]
        monkeypatch.setattr(services, "free_port", lambda: port)  # start Chroma where the app looks
        with chroma_server(tmp_path / "chroma"):
            body = eventually(lambda: (b := client.get("/ready").json()) and "not found" in b["chroma"] and b)
            assert body and body["ready"] is False  # reachable, but the collection is absent
            embedder = get_embedder(settings)
            coll = store.open_collection(store.get_client(settings), settings.tender_collection,
                                         embedder.model_id, embedder.dim, create=True)
            slashed = "uk-cf:WTC 2025/3"  # real ids carry slashes and spaces
            vectors = embedder.embed_documents(["bridge", "cleaning"])
            coll.upsert(ids=["T-1", slashed], embeddings=vectors)  # Chroma: ids and vectors; the rest: the index
            open_index(settings.lexical_dir).upsert(["T-1", slashed], [{"title": "Bridge", "tender_id": "T-1"},
                                                                       {"title": "Cleaning", "tender_id": slashed}],
                                                    ["bridge", "cleaning"], vectors)
            assert eventually(lambda: client.get("/ready").status_code == 200)
            assert client.get("/tenders/T-1").json()["title"] == "Bridge"
            assert client.get("/tenders/uk-cf:WTC%202025/3").json()["id"] == slashed
            assert client.get("/tenders/uk-cf:WTC%202025/4").status_code == 404
        # Chroma stopped under a connected app: calls fail cleanly with 503, then reconnect is attempted;
        # a tender's page reads the lexical index only, so it still answers
        assert client.get("/search", params={"q": "bridge"}).status_code == 503
        assert client.get("/tenders/T-1").json()["title"] == "Bridge"
        assert client.get("/ready").status_code == 503


def test_collection_built_with_another_model_is_not_ready(tmp_path):
    with chroma_server(tmp_path / "chroma") as (_, port):
        settings = settings_for(port, tmp_path, "other_model")
        store.open_collection(store.get_client(settings), "other_model", "gemini:gemini-embedding-001", 768)
        with TestClient(create_app(settings)) as client:
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert "gemini-embedding-001" in ready.json()["chroma"]
            assert client.get("/search", params={"q": "roads"}).json()["error"] == "chroma_unavailable"


def test_each_app_has_its_own_metrics_registry(tmp_path):
    a, b = create_app(settings_for(free_port(), tmp_path)), create_app(settings_for(free_port(), tmp_path))
    with TestClient(a) as ca, TestClient(b) as cb:
        for _ in range(3):
            ca.get("/health")
        cb.get("/health")
        assert 'search_api_requests_total{method="GET",route="/health",status="200"} 3.0' in ca.get("/metrics").text
        assert 'search_api_requests_total{method="GET",route="/health",status="200"} 1.0' in cb.get("/metrics").text


def test_start_up_heap_is_frozen_after_warm_up(tmp_path):
    """What start-up loads is moved out of the collector's reach (gc.freeze), so a full collection
    under load does not walk it while holding the GIL (pauses of 280–520 ms measured before)."""
    import gc

    gc.unfreeze()
    try:
        settings = settings_for(free_port(), tmp_path).model_copy(update={"warm_embedder": True})
        with TestClient(create_app(settings)) as client:
            services = client.app.state.services
            assert eventually(lambda: services._thread is not None and not services._thread.is_alive())
            assert services.model_error == ""
            assert gc.get_freeze_count() > 10_000  # the model, libraries and taxonomy, not a handful
    finally:
        gc.unfreeze()
