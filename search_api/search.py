"""The search itself: embed the query, gather candidates from Chroma, re-rank, page."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from search_api.filters import build_where
from search_api.models import SearchParams, SearchResult
from search_api.ranking import Candidate, exact_terms, fuse, term_pattern, words


@dataclass
class Ranked:
    results: list[SearchResult]
    total_candidates: int
    sector_preference: str | None
    timings: dict[str, float]


def _value(meta: dict, key: str, default: Any = "") -> Any:
    value = meta.get(key, default)
    return default if value is None else value


def to_result(c: Candidate) -> SearchResult:
    return SearchResult(score=round(c.score, 4), **card_fields(c.id, c.metadata))


def card_fields(tender_id: str, meta: dict) -> dict[str, Any]:
    """Stored metadata → the fields a result shows (unknowns as null)."""
    value = float(_value(meta, "value_amount", -1.0))
    return {
        "id": tender_id, "title": _value(meta, "title"), "summary": _value(meta, "summary"),
        "buyer": _value(meta, "buyer"), "country": _value(meta, "country"), "region": _value(meta, "region"),
        "city": _value(meta, "city"), "sector": _value(meta, "sector"), "subsector": _value(meta, "subsector"),
        "procurement_type": _value(meta, "procurement_type"),
        "closing_date": _value(meta, "closing_date") or None,
        "value_amount": value if value >= 0 else None, "currency": _value(meta, "currency"),
        "url": _value(meta, "url"), "is_corrigendum": bool(_value(meta, "is_corrigendum", False)),
    }


class Searcher:
    """Stateless apart from its collaborators; safe to call from many threads."""

    def __init__(self, settings, embedder, intent=None, cache_size: int = 512) -> None:
        self.settings = settings
        self.embedder = embedder
        self.intent = intent
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="term-query")
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def embed(self, query: str) -> np.ndarray:
        """Query vector, memoised: paging and filter changes repeat the same query."""
        with self._cache_lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                return hit
        vector = self.embedder.embed_queries([query])[0]
        with self._cache_lock:
            self._cache[query] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    def candidates(self, collection, query: str, vector: np.ndarray, where: dict | None,
                   n_results: int) -> list[Candidate]:
        """Vector top-n under the filters, plus the nearest notices containing each exact term."""
        pool: dict[str, Candidate] = {}
        s = self.settings
        include = ["metadatas", "distances"] + (["documents"] if s.search_fetch_documents else [])

        def add(got: dict, term: str | None = None) -> None:
            docs = got.get("documents")
            for i, tid in enumerate(got["ids"][0]):
                if tid not in pool:
                    pool[tid] = Candidate(id=tid, cosine=1.0 - float(got["distances"][0][i]),
                                          metadata=got["metadatas"][0][i] or {},
                                          document=(docs[0][i] or "") if docs else "")
                if term is not None:  # Chroma matched the term in this notice's document
                    pool[tid].body |= words(term)

        def term_query(term: str) -> dict:
            return collection.query(query_embeddings=[vector], n_results=s.search_term_candidates,
                                    where=where, where_document={"$regex": term_pattern(term)}, include=include)

        terms = exact_terms(query, s.search_max_terms) if s.search_term_candidates else []
        futures = [(t, self._pool.submit(term_query, t)) for t in terms]  # in parallel with the vector query
        add(collection.query(query_embeddings=[vector], n_results=n_results, where=where, include=include))
        for term, future in futures:
            add(future.result(), term)
        return list(pool.values())

    def search(self, collection, params: SearchParams, facets: dict[str, list[str]],
               today: date | None = None, rerank: bool = True) -> Ranked:
        """Ranked results for one page; ``rerank=False`` is the plain-vector baseline."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        query = params.q.strip()
        vector = self.embed(query)
        t1 = time.perf_counter()
        timings["embed"] = t1 - t0
        where = build_where(params, facets, today or date.today())
        need = params.offset + params.limit
        if not rerank:
            got = collection.query(query_embeddings=[vector], n_results=need, where=where,
                                   include=["metadatas", "documents", "distances"])
            pool = [Candidate(id=tid, cosine=1.0 - float(d), metadata=m or {}, document=doc or "")
                    for tid, d, m, doc in zip(got["ids"][0], got["distances"][0], got["metadatas"][0],
                                              got["documents"][0], strict=True)]
            for c in pool:
                c.score = max(0.0, min(1.0, c.cosine))
            page = pool[params.offset:need]
            timings["chroma"] = time.perf_counter() - t1
            return Ranked([to_result(c) for c in page], len(pool), None, timings)
        pool = self.candidates(collection, query, vector, where, max(self.settings.search_candidates, need))
        t2 = time.perf_counter()
        timings["chroma"] = t2 - t1
        sector = self.intent.sector_for(query, vector) if self.intent is not None else None
        ranked = fuse(pool, query, self.settings.rank_vector_weight, sector, self.settings.rank_sector_bonus)
        timings["rerank"] = time.perf_counter() - t2
        page = ranked[params.offset:need]
        return Ranked([to_result(c) for c in page], len(ranked), sector, timings)
