"""A lost disk rebuilt by one command: the lexical index (from staging, or its published copy) and staging
(from the stores and the incoming folder), each with every live notice back, searchable, same card.

The tests do not rely on Chroma holding documents: the staging test also runs against a collection of
ids, vectors and metadata only (the layout branch `chroma` moves to).
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import cli, kept, lifecycle, pipeline, recover, sources, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.settings import Settings, get_settings
from tests.test_staging_retention import FIRST, SECOND, T0, TODAY, cards, world  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
LIVE = {"A", "C", "D", "E"}  # B is past retention as of TODAY


@pytest.fixture
def live(world) -> dict[str, dict]:  # noqa: F811
    lifecycle.retire_expired(world, today=TODAY)
    got = cards(world)
    assert set(got) == LIVE
    return got


def searchable(settings: Settings, expected: dict[str, dict]) -> None:
    """Every notice found by its title and its reference, and its page shows the same fields."""
    api = ApiSettings(**settings.model_dump(include={"chroma_host", "chroma_port", "tender_collection",
                                                     "lexical_index_path", "embed_backend"}),
                      feedback_path=str(Path(settings.staging_uri).parent / "fb.jsonl"), warm_embedder=False)
    with TestClient(create_app(api)) as client:
        for tid, card in expected.items():
            hits = client.get("/search", params={"q": card["title"], "limit": 10}).json()["results"]
            assert tid in [h["id"] for h in hits], (tid, hits)
            page = client.get(f"/tenders/{tid}").json()
            assert (page["title"], page["closing_date"], page["ingested_at"]) == \
                (card["title"], card["closing_date"] or None, card["ingested_at"])


def test_lost_lexical_disk_comes_back_from_staging_with_the_command(world, live, monkeypatch, capsys):  # noqa: F811
    shutil.rmtree(world.lexical_dir)
    for key in ("chroma_host", "chroma_port", "tender_collection", "staging_uri", "lexical_index_path",
                "embed_backend", "enrich_backend"):
        monkeypatch.setenv(key.upper(), str(getattr(world, key)))
    get_settings.cache_clear()
    try:
        assert cli.main(["recover", "lexical"]) == 0
    finally:
        get_settings.cache_clear()
    got = json.loads(capsys.readouterr().out)
    assert got["from"].startswith("staging") and got["notices"] == 4 and got["missing_from_lexical"] == 0
    assert cards(world) == live
    searchable(world, live)


def test_lost_lexical_disk_comes_back_from_its_published_copy(chroma, tmp_path, monkeypatch):
    published = tmp_path / "published"
    monkeypatch.setenv("LEXICAL_PUBLISH_URI", str(published))  # the writer publishes inside every commit
    get_settings.cache_clear()
    try:
        host, port = chroma
        settings = Settings(chroma_host=host, chroma_port=port, tender_collection="recover_published",
                            incoming_uri=str(tmp_path / "in"), staging_uri=str(tmp_path / "staging"),
                            lexical_index_path=str(tmp_path / "lexical"), lexical_publish_uri=str(published),
                            embed_backend="local", enrich_backend="local")
        (tmp_path / "in").mkdir()
        batch = tmp_path / "in" / "b.csv"
        batch.write_text("tender_id,title,closing_date\nP1,Water pumps,2031-01-01\nP2,School desks,2031-02-01\n")
        pipeline.run_all(settings, "published-1", source=str(batch))
        before = cards(settings)
        shutil.rmtree(settings.lexical_dir)
        shutil.rmtree(settings.staging_uri)  # not used: the published copy is
        got = recover.lexical(settings)
    finally:
        get_settings.cache_clear()
    assert got["from"].startswith("published copy") and got["notices"] == 2
    assert cards(settings) == before and set(before) == {"P1", "P2"}


def _without_documents(settings: Settings) -> None:
    """Rewrite the collection as ids, vectors and metadata only (no documents), as branch chroma keeps it."""
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    collection = store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)
    got = collection.get(include=["embeddings", "metadatas"])
    client.delete_collection(settings.tender_collection)
    fresh = store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)
    fresh.upsert(ids=got["ids"], embeddings=got["embeddings"], metadatas=got["metadatas"])
    assert not any(fresh.get(include=["documents"])["documents"])


@pytest.mark.parametrize("chroma_documents", [True, False], ids=["chroma-with-documents", "chroma-ids-vectors"])
def test_lost_staging_disk_comes_back_from_the_stores_and_the_incoming_folder(world, live, chroma_documents):  # noqa: F811
    if not chroma_documents:
        _without_documents(world)
    shutil.rmtree(world.staging_uri)
    got = recover.staging_disk(world, today=TODAY)
    assert got["notices"] == 4 and got["vector_from_chroma"] == 4
    if chroma_documents:
        assert got["text_from_chroma"] == 4
    else:  # the index's stored text once it keeps one; until then the card's lines (no description)
        assert got["text_from_index"] + got["text_from_card"] == 4
    (part,) = kept.parts(world.staging_uri)
    assert sorted(r["tender_id"] for r in part.rows()) == sorted(LIVE)

    # the ledger: noon.csv is held unchanged by the stores, morning.csv holds an older C (left alone)
    ledger = sources.Ledger(world.ledger_dir)
    assert got["ledger_claimed"] == 1 and got["ledger_left_alone_count"] == 1
    assert "morning.csv" in got["ledger_left_alone"][0]["uri"]
    again = pipeline.run_all(world, "manual__after-loss", interval=SECOND)
    assert (again["files"], again["skipped_files"], again["upserted"]) == (0, 1, 0)
    # the operator knows every run before T0+6h had completed: morning.csv is claimed too
    more = recover.rebuild_ledger(world, recover.open_index(world.lexical_dir), TODAY,
                                  ingested_before=T0 + timedelta(hours=6))
    assert more["ledger_claimed"] == 1 and len(ledger.entries()) == 2
    assert pipeline.run_all(world, "manual__first-again", interval=FIRST)["upserted"] == 0

    # and staging can rebuild the other disk: the lexical index from the recovered part, same cards
    shutil.rmtree(world.lexical_dir)
    assert recover.lexical(world, today=TODAY)["notices"] == 4
    assert cards(world) == live
    searchable(world, live)
