"""Cosines from the vectors stored in the lexical index rank as Chroma's own vectors do.

The search reads a candidate's similarity from the int8 copy the index keeps
(no Chroma read per search); an index written without vectors (only the slots
holding them) falls back to kNN's distances and Chroma's ``get``. Both must give the same page, on the
exhaustive path (few notices pass the filters) and on the over-fetched kNN path (forced on the small sample
by a low cap)."""

from __future__ import annotations

from datetime import date

import pytest

from search_api.intent import SectorIntent
from search_api.models import SearchParams
from search_api.search import Searcher
from search_api.settings import ApiSettings
from tender_pipeline import slots, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.lexical import Filters, LexicalIndex, open_index
from tests import stored

pytestmark = pytest.mark.slow
QUERIES = [
    {"q": "hospital equipment"},
    {"q": "road rehabilitation", "country": "Ghana"},
    {"q": "laptops and computers", "open_only": True},
    {"q": "cleaning services", "min_value": 1000},
    {"q": "water supply borehole", "procurement_type": "works"},
]


@pytest.fixture(scope="module")
def searchers(indexed_sample, tmp_path_factory):
    settings = ApiSettings(**indexed_sample, embed_backend="local")
    embedder = get_embedder(settings)
    collection = store.open_collection(store.get_client(settings), settings.tender_collection, embedder.model_id,
                                       embedder.dim, create=False)
    with_vectors = open_index(settings.lexical_dir)
    assert all(h.vec for h in with_vectors.matching(Filters(), 1000))  # the upsert task stored every vector
    without = LexicalIndex(tmp_path_factory.mktemp("lex") / "novec")
    held = stored.notices(settings)
    ids = list(held)
    slot_of = slots.slots_of(collection, ids)  # the slots Chroma holds them in, as an index without vectors records
    without.upsert(ids, [c for c, _ in held.values()], [t for _, t in held.values()], None,
                   [slot_of[tid][0] for tid in ids])
    intent = SectorIntent(embedder, settings.taxonomy_path)
    # the sample's 240 notices always take the few-pass path when filtered; a cap of 10 forces kNN
    overfetch = settings.model_copy(update={"search_exhaustive_max": 10})
    return collection, {path: [Searcher(cfg, embedder, intent, lexical=lex) for lex in (with_vectors, without)]
                        for path, cfg in (("few-pass", settings), ("over-fetch", overfetch))}


@pytest.mark.parametrize("path", ["few-pass", "over-fetch"])
@pytest.mark.parametrize("params", QUERIES, ids=[q["q"] for q in QUERIES])
def test_stored_vectors_rank_as_chromas_vectors(searchers, params, path):
    collection, by_path = searchers
    stored, chroma = by_path[path]
    p = SearchParams(**params, limit=10)
    a = stored.search(collection, p, today=date(2026, 11, 1))
    b = chroma.search(collection, p, today=date(2026, 11, 1))
    assert a.results, params
    # the k nearest by int8 and by float32 cosines differ only at a near-tie at the k-th, which may or may not
    # overlap the lexical hits: the pools differ by at most that one notice
    assert abs(a.total_candidates - b.total_candidates) <= 1
    # int8 cosines are within ~0.002 of Chroma's: the same page, near-ties aside
    scores = {r.id: r.score for r in b.results}
    assert len(scores.keys() & {r.id for r in a.results}) >= 9
    assert max(abs(r.score - scores[r.id]) for r in a.results if r.id in scores) < 0.005
    assert a.results[0].id == b.results[0].id or abs(a.results[0].score - b.results[0].score) < 0.005
