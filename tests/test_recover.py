"""A lost disk rebuilt by one command: the lexical index (from staging, or its published copy), Chroma (from
staging's kept parts, after the run folders are pruned) and staging (from the stores and the incoming folder),
each with every live notice back, searchable, same card. Chroma holds ids and vectors only.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import cli, kept, lifecycle, pipeline, recover, slots, sources, staging_retention, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.settings import Settings, get_settings
from tests import stored
from tests.services import chroma_server
from tests.test_staging_retention import FIRST, SECOND, T0, TODAY, cards, world  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
LIVE = {"A", "C", "D", "E"}  # B is past retention as of TODAY


@pytest.fixture
def live(world) -> dict[str, dict]:  # noqa: F811
    lifecycle.retire_expired(world, today=TODAY)
    got = cards(world)
    assert set(got) == LIVE
    return got


def recover_command(settings: Settings, what: str, monkeypatch) -> int:
    """`recover <what>` through the CLI as an operator runs it: the settings come from the environment."""
    for key in ("chroma_host", "chroma_port", "tender_collection", "staging_uri", "lexical_index_path",
                "embed_backend", "enrich_backend"):
        monkeypatch.setenv(key.upper(), str(getattr(settings, key)))
    get_settings.cache_clear()
    try:
        return cli.main(["recover", what])
    finally:
        get_settings.cache_clear()


def lose(folder: str | Path) -> None:
    """The disk under ``folder`` is gone. Moved aside first, then deleted: this process still holds the index
    open, and tantivy's reload thread may create a lock file in the folder while ``rmtree`` empties it."""
    folder = Path(folder)
    aside = folder.with_name(f"{folder.name}.lost")
    folder.rename(aside)
    shutil.rmtree(aside)


def searchable(settings: Settings, expected: dict[str, dict]) -> None:
    """Every notice found by its title and its reference, and its page shows the same fields."""
    api = ApiSettings(**settings.model_dump(include={"chroma_host", "chroma_port", "tender_collection",
                                                     "lexical_index_path", "embed_backend"}),
                      feedback_path=str(Path(settings.staging_uri).parent / "fb.jsonl"), warm_embedder=False)
    with TestClient(create_app(api)) as client:
        for tid, card in expected.items():
            body = client.get("/search", params={"q": card["title"], "limit": 10}).json()
            hits = body.get("results", body)
            assert "results" in body and tid in [h["id"] for h in hits], (tid, body)
            page = client.get(f"/tenders/{tid}").json()
            assert (page["title"], page["closing_date"], page["ingested_at"]) == \
                (card["title"], card["closing_date"] or None, card["ingested_at"])


def test_lost_lexical_disk_comes_back_from_staging_with_the_command(world, live, monkeypatch, capsys):  # noqa: F811
    lose(world.lexical_dir)
    assert recover_command(world, "lexical", monkeypatch) == 0
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
        lose(settings.lexical_dir)
        shutil.rmtree(settings.staging_uri)  # not used: the published copy is
        got = recover.lexical(settings)
    finally:
        get_settings.cache_clear()
    assert got["from"].startswith("published copy") and got["notices"] == 2
    assert cards(settings) == before and set(before) == {"P1", "P2"}


def test_lost_staging_disk_comes_back_from_the_stores_and_the_incoming_folder(world, live):  # noqa: F811
    shutil.rmtree(world.staging_uri)
    got = recover.staging_disk(world, today=TODAY)
    assert got["notices"] == 4 and got["vector_from_chroma"] == 4
    assert got["text_from_index"] == 4  # the index stores the text (Chroma holds ids and vectors only)
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
    lose(world.lexical_dir)
    assert recover.lexical(world, today=TODAY)["notices"] == 4
    assert cards(world) == live
    searchable(world, live)


def test_lost_chroma_disk_comes_back_from_the_kept_parts_with_the_command(
        world, live, tmp_path, monkeypatch, capsys):  # noqa: F811
    staging_retention.prune(world, today=TODAY, now=time.time() + 8 * 86_400)  # the run folders are gone
    assert not [p for p in Path(world.staging_uri).iterdir() if p.name.startswith("scheduled__")]
    with chroma_server(tmp_path / "fresh-chroma") as (host, port):  # a server on an empty disk
        lost = world.model_copy(update={"chroma_host": host, "chroma_port": port})
        assert recover_command(lost, "chroma", monkeypatch) == 0
        got = json.loads(capsys.readouterr().out)
        assert (got["vectors_from_kept"], got["vectors_from_index"], got["collection_count"]) == (4, 0, 4)
        embedder = get_embedder(lost)
        collection = store.open_collection(store.get_client(lost), lost.tender_collection, embedder.model_id,
                                           embedder.dim, create=False)
        assert sorted(stored.chroma_ids(collection)) == sorted(LIVE)
        searchable(lost, live)
        # a notice no kept part holds (its part lost too) gets the lexical index's int8 copy
        slots.release(collection, ["A"])
        for part in kept.parts(lost.staging_uri):
            kept.drop(part)
        again = recover.chroma(lost, today=TODAY)
        assert (again["vectors_from_kept"], again["vectors_from_index"], again["collection_count"]) == (0, 1, 4)
        searchable(lost, live)
