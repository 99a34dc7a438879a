"""kNN names Chroma slots and the lexical index names their notices, against a real `chroma run`.

Chroma answers a search with slot ids and distances only (reading each result's tender key from its SQLite
cost more than the kNN itself); each notice's document records its slot. These tests change what Chroma's
metadata says and check that the search still follows the index, and that a slot reused while a copy of the
index lags ranks the old notice by its own vector, not by the new notice's."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from search_api.search import Searcher
from search_api.settings import ApiSettings
from tender_pipeline import slots, store
from tender_pipeline.lexical import Filters, LexicalIndex
from tender_pipeline.settings import Settings

DIM = 8
IDS = ["A", "B", "C", "D"]


@pytest.fixture
def stores(chroma, tmp_path):
    host, port = chroma
    client = store.get_client(Settings(chroma_host=host, chroma_port=port))
    collection = store.open_collection(client, f"knn_{uuid.uuid4().hex[:8]}", "test:model", DIM)
    vectors = np.random.default_rng(11).normal(size=(len(IDS), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    metas = [{"title": f"notice {tid}", "closing_num": 20310101} for tid in IDS]
    index.upsert(IDS, metas, [m["title"] for m in metas], vectors, store.upsert(collection, IDS, vectors))
    searcher = Searcher(ApiSettings(), embedder=None, lexical=index)
    return collection, index, vectors, searcher


def pool(searcher: Searcher, collection, vector: np.ndarray) -> dict[str, float]:
    got = searcher.candidates(collection, "zzz", vector, Filters(), need=3)  # no word matches: kNN only
    return {c.id: c.cosine for c in got.candidates}


def test_the_index_records_each_notices_slot_and_knn_follows_it(stores):
    collection, index, vectors, searcher = stores
    held = slots.slots_of(collection, IDS)
    assert index.slots_of(IDS) == {tid: slots.slot_number(held[tid][0]) for tid in IDS}
    found = pool(searcher, collection, vectors[2])
    assert max(found, key=found.__getitem__) == "C" and found["C"] == pytest.approx(1.0, abs=1e-4)
    # Chroma's tender key is not read on the request path: wiping it changes nothing a search finds
    collection.update(ids=[held[tid][0] for tid in IDS], metadatas=[{slots.KEY: "?"}] * len(IDS))
    assert pool(searcher, collection, vectors[2]) == found


def test_a_slot_reused_before_the_index_copy_follows_keeps_the_old_notices_own_cosine(stores):
    collection, index, vectors, searcher = stores
    slot = slots.slots_of(collection, ["A"])["A"][0]
    newcomer = -vectors[0]  # retired A's slot now holds a notice unlike A (this copy of the index lags)
    collection.upsert(ids=[slot], embeddings=[newcomer], metadatas=[{slots.KEY: "E", slots.STATE: ""}])
    found = pool(searcher, collection, newcomer)
    assert found["A"] == pytest.approx(-1.0, abs=0.02)  # A's own stored vector, not the slot's distance (1.0)


def test_the_plain_vector_baseline_and_similar_notices_resolve_slots(stores):
    from datetime import date

    from search_api.notice import Stored, similar_open

    collection, index, vectors, searcher = stores
    near = similar_open(collection, index, Stored("B", {}, "", [float(x) for x in vectors[1]]), date(2030, 1, 1),
                        limit=3)
    assert len(near) == 3 and "B" not in {n.id for n in near}
    ranked = searcher._baseline(collection, vectors[3], Filters(), type("P", (), {"offset": 0, "limit": 2})(), {})
    assert ranked.results[0].id == "D"
