"""Retention and rebuilds against a real `chroma run` and the lexical index.

Notices past retention leave search and by-id lookup, a rerun changes
nothing, the counts add up, retired notices' Chroma slots are reused by new
ones (the collection does not grow, nothing is copied), both rebuilds restore
the stores, and the ``tender_maintenance`` DAG runs the same functions through Airflow.
"""

from __future__ import annotations

import csv
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import lifecycle, pipeline, rebuild, recover, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.lexical import Filters, open_index
from tender_pipeline.settings import Settings
from tests import stored

pytestmark = pytest.mark.slow
TODAY = date(2026, 11, 29)
HEADER = ["tender_id", "title", "description", "buyer", "country", "closing_date", "source"]
# id → closing date relative to TODAY (None: unknown); retention is 14 days
NOTICES = {"OLD-1": -40, "OLD-2": -15, "RECENT-1": -3, "OPEN-1": 10, "OPEN-2": 30, "NODATE-1": None}


def write_batch(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for tid, days in NOTICES.items():
            closing = (TODAY + timedelta(days=days)).isoformat() if days is not None else ""
            writer.writerow([tid, f"Road maintenance works {tid}", "Pothole patching and resealing of roads.",
                             "City Roads Agency", "Ghana", closing, "test"])
    return path


@pytest.fixture
def settings(chroma, tmp_path) -> Settings:
    host, port = chroma
    s = Settings(chroma_host=host, chroma_port=port, tender_collection=f"life_{uuid.uuid4().hex[:8]}",
                 staging_uri=str(tmp_path / "staging"), lexical_index_path=str(tmp_path / "lexical"),
                 embed_backend="local", enrich_backend="local", retention_days=14)
    summary = pipeline.run_all(s, "life-1", source=str(write_batch(tmp_path / "batch.csv")))
    assert summary["upserted"] == len(NOTICES)
    return s


def stores(settings: Settings):
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    return client, store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)


def live_ids(settings: Settings) -> tuple[set[str], set[str]]:
    _, collection = stores(settings)
    index = open_index(settings.lexical_dir)
    return set(stored.chroma_ids(collection)), {h.id for h in index.matching(Filters(), 100)}


def test_retire_removes_notices_past_retention_and_a_rerun_changes_nothing(settings):
    got = lifecycle.retire_expired(settings, today=TODAY)
    assert got["retired"] == 2 and got["closing_before"] == 20261115
    assert got["chroma_before"] - got["retired"] == got["chroma_after"] == 4
    assert got["lexical_before"] - got["retired"] == got["lexical_after"] == 4
    chroma_ids, lexical_ids = live_ids(settings)
    assert chroma_ids == lexical_ids == {"RECENT-1", "OPEN-1", "OPEN-2", "NODATE-1"}  # unknown date kept
    again = lifecycle.retire_expired(settings, today=TODAY)
    assert again["retired"] == 0 and again["chroma_after"] == 4 and again["lexical_after"] == 4
    assert live_ids(settings) == (chroma_ids, lexical_ids)

    with TestClient(create_app(api_settings(settings))) as client:
        body = client.get("/search", params={"q": "road maintenance", "limit": 50}).json()
        assert {r["id"] for r in body["results"]} == chroma_ids
        assert client.get("/tenders/OLD-1").status_code == 404
        assert client.get("/tenders/OPEN-1").status_code == 200
        assert client.get("/search", params={"q": "OLD-2"}).json()["results"][0]["id"] != "OLD-2"


def test_unknown_closing_dates_retire_only_when_configured(settings):
    lifecycle.retire_expired(settings, today=TODAY)
    kept = lifecycle.retire_expired(settings.model_copy(update={"retention_unknown_days": 30}), today=TODAY)
    assert kept["retired"] == 0  # ingested just now: not 30 days old yet
    later = lifecycle.retire_expired(settings.model_copy(update={"retention_unknown_days": 1}),
                                     today=date.today() + timedelta(days=3))
    assert "NODATE-1" not in live_ids(settings)[0] and later["retired"] >= 1


def api_settings(settings: Settings) -> ApiSettings:
    return ApiSettings(**settings.model_dump(include={"chroma_host", "chroma_port", "tender_collection",
                                                      "lexical_index_path", "embed_backend"}),
                       feedback_path=str(Path(settings.staging_uri) / "fb.jsonl"))


def test_retired_slots_are_reused_so_the_collection_does_not_grow(settings, tmp_path):
    _, collection = stores(settings)
    slots_before = sorted(collection.get(include=[])["ids"])
    assert len(slots_before) == len(NOTICES)
    got = lifecycle.retire_expired(settings, today=TODAY)
    assert (got["slots_freed"], got["chroma_slots"], got["chroma_after"]) == (2, 6, 4)
    # the next batch: two new notices and a changed one take the two freed slots and keep their own
    batch = tmp_path / "next.csv"
    batch.write_text("tender_id,title,description,buyer,country,closing_date,source\n"
                     "NEW-1,Solar street lights,Install solar street lights.,Energy Agency,Ghana,2031-01-01,t\n"
                     "NEW-2,School desks,Supply of school desks.,Education Office,Ghana,2031-01-01,t\n"
                     "OPEN-1,Road maintenance works OPEN-1,Pothole patching and new kerbs.,City Roads Agency,Ghana,"
                     f"{(TODAY + timedelta(days=10)).isoformat()},test\n", "utf-8")
    summary = pipeline.run_all(settings, "life-2", source=str(batch))
    assert (summary["inserted"], summary["updated"], summary["collection_count"]) == (2, 1, 6)
    assert sorted(collection.get(include=[])["ids"]) == slots_before  # no new slot, no copy
    held = stored.chroma_ids(collection)
    assert sorted(held) == sorted({"RECENT-1", "OPEN-1", "OPEN-2", "NODATE-1", "NEW-1", "NEW-2"})
    with TestClient(create_app(api_settings(settings))) as api:
        found = [r["id"] for r in api.get("/search", params={"q": "solar street lights"}).json()["results"]]
        assert found[0] == "NEW-1" and not {"OLD-1", "OLD-2"} & set(found)
        assert api.get("/tenders/OLD-1").status_code == 404
    vector = get_embedder(settings).embed_queries(["solar street lights"])[0]
    nearest = collection.query(query_embeddings=[vector], n_results=1, include=["metadatas"])
    assert nearest["metadatas"][0][0]["t"] == "NEW-1"  # the slot names the tender it now holds


def test_chroma_holds_slots_and_vectors_only(settings):
    _, collection = stores(settings)
    got = collection.get(include=["metadatas", "documents", "embeddings"])
    assert sorted(got["ids"]) == [f"s{i}" for i in range(len(NOTICES))] and len(got["embeddings"]) == len(NOTICES)
    assert sorted(m["t"] for m in got["metadatas"]) == sorted(NOTICES)  # the tender a slot holds
    assert all(sorted(m) == ["s", "t"] for m in got["metadatas"]) and not any(got["documents"])  # the rest: the index
    hashes = {tid: card["content_hash"] for tid, card in stored.cards(settings).items()}
    assert all(m["s"].startswith(hashes[m["t"]] + "|1|0|") for m in got["metadatas"])  # what enrich compares
    cards = open_index(settings.lexical_dir).notices(list(NOTICES))
    assert all(card["title"].endswith(tid) and "Pothole" in text and len(vec) == get_embedder(settings).dim
               for tid, (card, text, vec) in cards.items())


def test_rebuild_upgrades_an_index_of_an_older_schema(settings):
    (settings.lexical_dir / "tender_schema.json").write_text('{"version": 1}', "utf-8")
    got = recover.lexical(settings, today=TODAY)  # what the refusal's message says to run
    live = {"RECENT-1", "OPEN-1", "OPEN-2", "NODATE-1"}  # the replay skips what retention would retire
    assert got["notices"] == got["replayed"] == len(live)
    fresh = open_index(settings.lexical_dir)
    assert {h.id for h in fresh.matching(Filters(), 100)} == live
    assert all(h.vec for h in fresh.matching(Filters(), 100))


def test_both_stores_rebuild_from_staging_skipping_retired(settings):
    _, collection = stores(settings)
    collection.delete(ids=["OPEN-1"])  # damage both stores
    open_index(settings.lexical_dir).clear()
    got = rebuild.from_staging(settings, today=TODAY)
    assert got["runs"] == 1 and got["skipped_past_retention"] == 2 and got["records_replayed"] == 4
    chroma_ids, lexical_ids = live_ids(settings)
    assert chroma_ids == lexical_ids == {"RECENT-1", "OPEN-1", "OPEN-2", "NODATE-1"}
    assert all(h.vec for h in open_index(settings.lexical_dir).matching(Filters(), 100))


def test_maintenance_dag_through_airflow(settings, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    for key in ("chroma_host", "chroma_port", "tender_collection", "staging_uri", "lexical_index_path"):
        monkeypatch.setenv(key.upper(), str(getattr(settings, key)))
    monkeypatch.setenv("RETENTION_DAYS", str((date.today() - TODAY).days + 14))
    bag = DagBag(dag_folder=str(Path(__file__).parents[1] / "dags"))
    assert not bag.import_errors
    dag = bag.dags["tender_maintenance"]
    assert [t.task_id for t in dag.tasks] == ["retire", "prune_staging"]
    run = dag.test()
    assert run.state == "success"
    pruned = run.get_task_instance("prune_staging").xcom_pull(task_ids="prune_staging")
    assert pruned["kept_live"] == 4 and pruned["runs_deleted"] == 0  # the run folder is younger than 7 days
    assert live_ids(settings)[0] == {"RECENT-1", "OPEN-1", "OPEN-2", "NODATE-1"}
    assert dag.test().state == "success"  # a rerun retires nothing
    assert len(live_ids(settings)[0]) == 4

