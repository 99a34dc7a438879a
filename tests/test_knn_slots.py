"""kNN names Chroma slots and the lexical index names their notices, against a real `chroma run`.

Chroma answers a search with slot ids and distances only (reading each result's tender key from its SQLite
cost more than the kNN itself); each notice's document records its slot, and the notices kNN found are read
only when they are shown. These tests change what Chroma's metadata says and check that the search still
follows the index, and that a slot reused while a copy of the index lags shows the old notice ranked by its
own vector, not by the new notice's."""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np
import pytest

from search_api.models import SearchParams
from search_api.notice import Stored, similar_open
from search_api.search import Searcher
from search_api.settings import ApiSettings
from tender_pipeline import slots, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.lexical import LexicalIndex
from tender_pipeline.settings import Settings

TITLES = {"A": "Road rehabilitation and resurfacing works", "B": "Supply of hospital beds and patient monitors",
          "C": "School exercise books and stationery", "D": "Borehole drilling and hand pumps for villages"}
IDS = list(TITLES)
TODAY = date(2030, 1, 1)


@pytest.fixture(scope="module")
def embedder():
    return get_embedder(Settings(embed_backend="local"))


@pytest.fixture
def stores(chroma, tmp_path, embedder):
    host, port = chroma
    client = store.get_client(Settings(chroma_host=host, chroma_port=port))
    collection = store.open_collection(client, f"knn_{uuid.uuid4().hex[:8]}", embedder.model_id, embedder.dim)
    vectors = np.asarray(embedder.embed_documents(list(TITLES.values())), dtype=np.float32)
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    metas = [{"title": t, "closing_num": 20310101} for t in TITLES.values()]
    index.upsert(IDS, metas, list(TITLES.values()), vectors, store.upsert(collection, IDS, vectors))
    return collection, index, vectors, Searcher(ApiSettings(), embedder, lexical=index)


def ranked(searcher: Searcher, collection, query: str) -> list[tuple[str, float]]:
    got = searcher.search(collection, SearchParams(q=query, limit=10), today=TODAY)
    return [(r.id, r.score) for r in got.results]


def test_the_index_records_each_notices_slot_and_knn_follows_it(stores):
    collection, index, _, searcher = stores
    held = slots.slots_of(collection, IDS)
    assert index.slots_of(IDS) == {tid: slots.slot_number(held[tid][0]) for tid in IDS}
    found = ranked(searcher, collection, "medical furniture for wards")  # no word of B's: kNN finds it
    assert found[0][0] == "B" and sorted(tid for tid, _ in found) == IDS
    # Chroma's tender key is not read on the request path: wiping it changes nothing a search shows
    collection.update(ids=[held[tid][0] for tid in IDS], metadatas=[{slots.KEY: "?"}] * len(IDS))
    searcher._cache.clear()
    assert ranked(searcher, collection, "medical furniture for wards") == found


def test_a_slot_reused_before_the_index_copy_follows_shows_the_old_notice_by_its_own_vector(stores, embedder):
    collection, _, _, searcher = stores
    query = "medical furniture for wards"
    before = ranked(searcher, collection, query)
    slot = slots.slots_of(collection, ["A"])["A"][0]  # A retired, its slot reused by a notice like the query
    newcomer = np.asarray(embedder.embed_queries([query])[0], dtype=np.float32)
    collection.upsert(ids=[slot], embeddings=[newcomer], metadatas=[{slots.KEY: "E", slots.STATE: ""}])
    searcher._cache.clear()
    after = ranked(searcher, collection, query)
    # A is not lifted by the newcomer's vector in its old slot: the order stands, and A keeps its score up to
    # the difference between its own stored vector (int8) and the float32 distance Chroma gave before
    assert [tid for tid, _ in after] == [tid for tid, _ in before]
    for (_, got), (_, was) in zip(after, before, strict=True):
        assert got == pytest.approx(was, abs=0.005)


def test_the_plain_vector_baseline_and_similar_notices_resolve_slots(stores):
    collection, index, vectors, searcher = stores
    near = similar_open(collection, index, Stored("B", {}, "", [float(x) for x in vectors[1]]), TODAY, limit=3)
    assert len(near) == 3 and "B" not in {n.id for n in near}
    got = searcher.search(collection, SearchParams(q="drilling of water wells", limit=2), today=TODAY,
                          rerank=False)
    assert got.results[0].id == "D"
