"""Chroma rows as reusable slots, against a real `chroma run`: a notice keeps its slot, a retired notice's slot
goes to the next new one, the collection never grows past the most notices held at once, and a write whose
lexical commit was lost neither takes a second slot nor leaks one."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tender_pipeline import slots, store
from tender_pipeline.settings import Settings
from tests import stored

DIM = 8


@pytest.fixture
def collection(chroma):
    host, port = chroma
    client = store.get_client(Settings(chroma_host=host, chroma_port=port))
    return store.open_collection(client, f"slots_{uuid.uuid4().hex[:8]}", "test:model", DIM)


def vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def held(collection) -> dict[str, str]:
    got = collection.get(include=["metadatas"])
    return {slot: (meta or {}).get(slots.KEY) for slot, meta in zip(got["ids"], got["metadatas"], strict=True)}


def test_a_notice_keeps_its_slot_and_a_retired_ones_slot_goes_to_the_next(collection):
    store.upsert(collection, ["A", "B", "C"], vectors(3, 1))
    first = held(collection)
    assert sorted(first.values()) == ["A", "B", "C"] and sorted(first) == ["s0", "s1", "s2"]
    store.upsert(collection, ["B"], vectors(1, 2))  # a changed notice: written in place
    assert held(collection) == first
    assert slots.release(collection, ["A", "Z"]) == 1  # Z holds no slot
    assert slots.live_count(collection) == 2 and collection.count() == 3
    store.upsert(collection, ["D", "E"], vectors(2, 3))  # D takes A's slot, E a new one
    now = held(collection)
    assert now[next(s for s, t in first.items() if t == "A")] == "D"
    assert sorted(now) == ["s0", "s1", "s2", "s3"] and sorted(stored.chroma_ids(collection)) == ["B", "C", "D", "E"]


def test_knn_answers_tenders_and_skips_freed_slots(collection):
    vecs = vectors(4, 4)
    store.upsert(collection, ["A", "B", "C", "D"], vecs)
    slots.release(collection, ["A"])
    got = collection.query(query_embeddings=[vecs[0]], n_results=4, include=["metadatas"])
    found = slots.tenders(got["ids"][0], got["metadatas"][0])
    assert found[0] is None and sorted(t for t in found if t) == ["B", "C", "D"]  # A's old vector, its slot free
    assert set(slots.vectors_of(collection, ["A", "B"])) == {"B"}
    assert np.allclose(slots.vectors_of(collection, ["B"])["B"], vecs[1], atol=1e-6)


def test_a_lost_index_commit_takes_no_second_slot_and_a_doubled_one_is_freed(collection):
    store.upsert(collection, ["A", "B"], vectors(2, 5))
    store.upsert(collection, ["A", "B"], vectors(2, 6))  # the rerun after an index commit that failed
    assert collection.count() == 2 and sorted(stored.chroma_ids(collection)) == ["A", "B"]
    collection.upsert(ids=["s9"], embeddings=vectors(1, 7), metadatas=[{slots.KEY: "A"}])  # A held twice
    store.upsert(collection, ["A"], vectors(1, 8))
    assert stored.chroma_ids(collection).count("A") == 1 and held(collection)["s9"] == slots.FREE
    store.upsert(collection, ["C"], vectors(1, 9))  # the freed one is taken before any new slot
    assert collection.count() == 3 and held(collection)["s9"] == "C"


def test_a_run_whose_index_commit_failed_is_redone_not_skipped(chroma, tmp_path, monkeypatch):
    from tender_pipeline import pipeline
    from tender_pipeline.lexical import writer as lexical_writer

    host, port = chroma
    settings = Settings(chroma_host=host, chroma_port=port, tender_collection=f"redo_{uuid.uuid4().hex[:8]}",
                        staging_uri=str(tmp_path / "staging"), lexical_index_path=str(tmp_path / "lexical"),
                        embed_backend="local", enrich_backend="local")
    batch = tmp_path / "b.csv"
    batch.write_text("tender_id,title,closing_date\nR1,Water pumps,2031-01-01\nR2,School desks,2031-02-01\n")
    real = lexical_writer.Writer.upsert

    def dies(self, *args, **kwargs):  # Chroma has the vectors, then the index's write fails: nothing committed
        raise OSError("disk full")

    monkeypatch.setattr(lexical_writer.Writer, "upsert", dies)
    with pytest.raises(OSError):
        pipeline.run_all(settings, "redo-1", source=str(batch))
    collection = store.open_collection(store.get_client(settings), settings.tender_collection,
                                       "local:all-MiniLM-L6-v2:onnx-int8", 384, create=False)
    assert sorted(stored.chroma_ids(collection)) == ["R1", "R2"] and store.existing_state(collection, ["R1"]) == {}
    monkeypatch.setattr(lexical_writer.Writer, "upsert", real)
    resent = tmp_path / "b2.csv"  # the same notices in a later batch
    resent.write_bytes(batch.read_bytes())
    again = pipeline.run_all(settings, "redo-2", source=str(resent))
    assert (again["unchanged"], again["upserted"], again["collection_count"]) == (0, 2, 2)  # redone, same slots
    assert sorted(stored.cards(settings)) == ["R1", "R2"]
    assert store.existing_state(collection, ["R1", "R2"])["R2"]["versions"] == 1
    third = tmp_path / "b3.csv"
    third.write_bytes(batch.read_bytes())
    assert pipeline.run_all(settings, "redo-3", source=str(third))["unchanged"] == 2  # now recorded: unchanged
