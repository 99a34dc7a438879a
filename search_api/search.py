"""The search itself: embed the query, gather candidates, re-rank, page.

Cost must not grow with the collection (a million live notices), so no
request sends Chroma a ``where`` or ``where_document`` filter (both scan in
Chroma 1.5.9). Instead:

1. the lexical index (tantivy) estimates how many notices pass the filters
   (document frequencies and cached distributions), and counts them only
   when the estimate is small;
2. when few pass (≤ ``SEARCH_EXHAUSTIVE_MAX``), all of them are ranked by the
   cosine of the int8 vector the index stores beside each card. Not Chroma's
   ``query(ids=…)``: in 1.5.9 an allow-list kNN walks the HNSW graph until it
   meets enough allowed ids, which costs more the fewer there are (97 ms of
   Chroma CPU for 10 ids in 100k notices, 21 ms for 1,000; bench/README.md);
3. otherwise Chroma's plain kNN (flat cost) is over-fetched in proportion to
   how selective the filters are, and the hits that fail them are dropped;
4. in parallel the lexical index gives the BM25 top notices under the filters
   and any notice whose reference was typed; their cosine comes from the
   vectors stored in the index too (Chroma's ``get(ids=…)`` only for notices
   indexed without one);
5. the pool is fused (``ranking.fuse``) with lexical evidence read from the
   index, and cards come from the index's stored fields.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from search_api.filters import build_filters
from search_api.models import SearchParams, SearchResult
from search_api.ranking import Candidate, compound_tokens, fuse, index_idf, query_words
from search_api.spelling import variants as spelling_variants
from tender_pipeline import slots
from tender_pipeline.lexical import (
    TEXT_FIELDS,
    Evidence,
    Filters,
    Hit,
    LexicalIndex,
    cards,
    cosine_rows,
    cosines,
    read,
)

SURVIVOR_CHUNK = 200  # vector hits checked against the filters per lexical query
STALE_COSINE = 0.05  # int8 stored vectors are within ~0.01 of the exact cosine; more means another vector
STALE_ROUNDS = 4  # re-rankings after a page showed a reused slot (each takes that notice's own cosine)
COUNT_BELOW = 10  # filters estimated to pass fewer than this × SEARCH_EXHAUSTIVE_MAX notices are counted exactly


@dataclass
class Pool:
    candidates: list[Candidate]
    terms: list[str]  # the query's terms as the lexical index analyses them
    hits: dict[str, Hit]  # id → the index entry (card parsed only for the page shown)
    timings: dict[str, float]
    idf: dict[str, float] | None = None  # each term's IDF over the whole index (its other spellings included)
    variants: dict[str, list[str]] | None = None  # term → its other spellings the index holds


def text_df(searcher, term: str) -> int:
    """In how many notices ``term`` appears in some text field (its most frequent field: a lower bound)."""
    return max(searcher.doc_freq(name, term) for name in TEXT_FIELDS)


def query_lexicon(lex: LexicalIndex, searcher, query: str) -> tuple[list[str], dict[str, list[str]], dict[str, float]]:
    """The query's terms as the index analyses them, their other spellings the index holds, and each term's IDF
    from the whole index (a term and its spellings as one: their document frequencies added). Document
    frequencies are kept by the index: a handful of lookups per query, whatever the collection's size."""
    seen: dict[str, int] = {}  # each term's document frequency, looked up once per request

    def df(term: str) -> int:
        if term not in seen:
            seen[term] = text_df(searcher, term)
        return seen[term]

    words = query_words(query)
    terms = lex.focus(lex.analyze(" ".join(words)), searcher)
    found = spelling_variants(words, lex.analyze, lambda t: df(t) > 0)
    variants = {t: found[t] for t in terms if t in found}
    total = searcher.num_docs
    dfs = {t: df(t) for t in terms}
    for t, others in variants.items():
        dfs[t] = min(total, dfs[t] + sum(df(v) for v in others))
    return terms, variants, index_idf(dfs, total)


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
        "city": _value(meta, "city"), "sector": cards.sector_label(meta), "sector_code": cards.sector_code(meta),
        "sector_confidence": cards.sector_confidence(meta), "subsector": _value(meta, "subsector"),
        "procurement_type": _value(meta, "procurement_type"),
        "closing_date": _value(meta, "closing_date") or None,
        "value_amount": value if value >= 0 else None, "currency": _value(meta, "currency"),
        "url": _value(meta, "url"), "is_corrigendum": bool(_value(meta, "is_corrigendum", False)),
    }


def typed_forms(query: str) -> list[str]:
    """What a user may have typed as a reference: each compound token and the whole query."""
    whole = re.sub(r"^\W+|\W+$", "", " ".join(query.lower().split()))
    return list(dict.fromkeys([t.lower() for t in compound_tokens(query)] + [whole]))


class Searcher:
    """Stateless apart from its collaborators; safe to call from many threads."""

    def __init__(self, settings, embedder, intent=None, lexical: LexicalIndex | None = None,
                 cache_size: int = 512, reporter=None) -> None:
        self.settings = settings
        self.reporter = reporter  # tender_pipeline.money.Reporter: value bounds in the reporting currency
        self.embedder = embedder
        self.intent = intent
        self.lexical = lexical
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="search-io")
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._sectors: OrderedDict[str, str | None] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def embed(self, query: str) -> np.ndarray:
        """Query vector, memoised: paging and filter changes repeat the same query."""
        with self._cache_lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                return hit
        vector = np.asarray(self.embedder.embed_queries([query])[0], dtype=np.float32)
        with self._cache_lock:
            self._cache[query] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    # ------------------------------------------------------------------ candidates
    def _knn(self, collection, vector: np.ndarray, n: int) -> dict[int, float]:
        """Slot number → cosine of the nearest vectors. Chroma's rows are slots (``tender_pipeline.slots``) and
        answer only ids and distances: the lexical index names each slot's notice (``LexicalIndex.resolve``)."""
        if n <= 0:
            return {}
        got = collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
        return {slots.slot_number(sid): 1.0 - float(d)
                for sid, d in zip(got["ids"][0], got["distances"][0], strict=True)}

    def _similarities(self, collection, vector: np.ndarray, hits: list[Hit]) -> dict[str, float]:
        """Cosines from the vectors stored in the index; Chroma is read only for hits without one."""
        found = cosines(vector, hits)
        lacking = [h.id for h in hits if h.id not in found]
        return {**found, **self._cosines(collection, vector, lacking)} if lacking else found

    @staticmethod
    def _cosines(collection, vector: np.ndarray, ids: list[str]) -> dict[str, float]:
        """Cosine of the query to these notices' stored vectors (a primary-key read)."""
        if not ids:
            return {}
        got = slots.vectors_of(collection, ids)
        if not got:
            return {}
        return dict(zip(got, cosine_rows(np.stack(list(got.values())), vector), strict=True))

    def _passing(self, filters: Filters, searcher, total: int) -> int:
        """How many notices pass the filters: estimated (flat cost), and counted only when the estimate is small.
        A count walks every match: 2-8 ms at 1M for open_only or a value floor, and it grows with the index."""
        if not filters.active():
            return total
        assert self.lexical is not None, "Searcher needs a lexical index"
        estimate = self.lexical.estimate(filters, searcher)
        if estimate <= COUNT_BELOW * max(self.settings.search_exhaustive_max, 1):
            return self.lexical.count(filters, searcher)
        return estimate

    def candidates(self, collection, query: str, vector: np.ndarray, filters: Filters,
                   need: int, sector: str | None = None) -> Pool:
        """The candidates with their cosines and lexical evidence (cards stay unread in ``hits``);
        ``sector`` is the one the query points at (its candidates are marked for the bonus)."""
        s, lex = self.settings, self.lexical
        if lex is None:
            raise RuntimeError("the search needs the lexical index (LEXICAL_INDEX_PATH)")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        searcher = lex.searcher()  # one consistent snapshot for the whole request
        words, variants, idf = query_lexicon(lex, searcher, query)
        terms = words + [v for t in words for v in variants.get(t, [])]  # what the index is asked for
        total = searcher.num_docs
        k = max(s.search_candidates, need)
        passing = self._passing(filters, searcher, total)
        if passing == 0 or total == 0:
            return Pool([], words, {}, timings, idf, variants)
        exhaustive = filters.active() and passing <= s.search_exhaustive_max
        near: dict[str, float] = {}  # cosines already known (the few-pass path computes every passing one)
        knn: dict[str, float] = {}  # kNN's cosine of each notice it found
        if not exhaustive:
            over = k if not filters.active() else math.ceil(k * total / passing)
            knn_future = self._pool.submit(self._knn, collection, vector, min(over, s.search_max_overfetch, total))
        lexical_hits = lex.search(terms, filters, s.search_lexical_candidates, searcher)
        exact_hits = lex.exact(typed_forms(query), filters, searcher)
        hits = {h.id: h for h in lexical_hits + exact_hits}
        bm25 = {h.id: h.score for h in lexical_hits}
        t1 = time.perf_counter()
        if exhaustive:  # every passing notice, ranked by its stored vector: the k nearest join the pool
            allowed = {h.id: h for h in lex.matching(filters, passing, searcher)}
            near = self._similarities(collection, vector, list(allowed.values()))
            knn = dict(sorted(near.items(), key=lambda kv: kv[1], reverse=True)[:k])
            for tid in knn:
                hits.setdefault(tid, allowed[tid])
            t2 = time.perf_counter()
            evidence = lex.present(terms, list(hits.values()), searcher, sector)
        else:
            nearest = knn_future.result()
            t2 = time.perf_counter()
            taken = {h.slot for h in hits.values() if h.slot is not None}
            vector_slots = [n for n in nearest if n not in taken]
            known = list(hits.values())  # the lexical hits: their evidence comes with the first chunk
            evidence = Evidence.empty(terms)
            kept = 0
            # nearest first, until k pass the filters; each chunk's query also reads the survivors' evidence
            for start in range(0, max(len(vector_slots), 1), SURVIVOR_CHUNK):
                found, got = lex.resolve(filters, vector_slots[start:start + SURVIVOR_CHUNK], terms, searcher,
                                         sector, known, by="slot")
                evidence.update(got)
                known = []
                for h in found:  # unread: ranked by their slot's distance, read when shown (``_named``)
                    hits[h.id] = h
                    knn[h.id] = nearest[h.slot] if h.slot is not None else 0.0
                kept += len(found)
                if kept >= k:
                    break
        missing = [hits[tid] for tid in hits if tid not in knn and tid not in near]
        cosine = {**knn, **near, **self._similarities(collection, vector, missing)}
        t3 = time.perf_counter()
        pool = []
        for tid in hits:
            c = Candidate(id=tid, cosine=cosine.get(tid, 0.0), metadata={}, bm25=bm25.get(tid),
                          sector=(sector or "") if tid in evidence.in_sector else "")
            c.strong, c.body = evidence.of(tid)
            pool.append(c)
        if exhaustive:  # no Chroma call: the nearest came from the index's stored vectors
            timings.update(lexical=t3 - t0, chroma=0.0)
        else:
            timings.update(lexical=(t1 - t0) + (t3 - t2), chroma=t2 - t1)
        return Pool(pool, words, hits, timings, idf, variants)

    # ------------------------------------------------------------------ search
    def search(self, collection, params: SearchParams, facets: dict[str, list[str]] | None = None,
               today: date | None = None, rerank: bool = True, ids: list[str] | None = None) -> Ranked:
        """Ranked results for one page; ``rerank=False`` is the plain-vector baseline (bench only);
        ``ids`` restricts the search to those tenders (alerts: they hold each score against ALERT_MIN_SCORE,
        so it must not depend on which other notices share the batch's slice, and the BM25 share is left out).
        ``facets`` is accepted for compatibility and no longer needed: filters are answered by the lexical index."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        query = params.q.strip()
        vector = self.embed(query)
        timings["embed"] = time.perf_counter() - t0
        filters = build_filters(params, today or date.today(), ids, self.reporter)
        need = params.offset + params.limit
        if not rerank:
            return self._baseline(collection, vector, filters, params, timings)
        sector = self.sector(query, vector)
        pool = self.candidates(collection, query, vector, filters, need, sector)
        timings.update(pool.timings)
        t2 = time.perf_counter()
        ranked = self._fuse(pool, query, sector, absolute=ids is not None)
        for round_ in range(STALE_ROUNDS + 1):
            page = ranked[params.offset:need]
            if not self._named(page, pool, vector) or round_ == STALE_ROUNDS:
                break
            ranked = self._fuse(pool, query, sector, absolute=ids is not None)
        for c in page:
            c.metadata = pool.hits[c.id].card
        timings["rerank"] = time.perf_counter() - t2
        return Ranked([to_result(c) for c in page], len(ranked), sector, timings)

    def _fuse(self, pool: Pool, query: str, sector: str | None, absolute: bool = False) -> list[Candidate]:
        """``absolute``: scores that do not depend on the rest of the pool (no BM25 share, which is scaled by
        the pool's best), for callers that hold them against a fixed threshold."""
        s = self.settings
        return fuse(pool.candidates, query, pool.terms, s.rank_vector_weight, sector, s.rank_sector_bonus,
                    pool.idf, pool.variants, 0.0 if absolute else s.rank_bm25_weight)

    @staticmethod
    def _named(page: list[Candidate], pool: Pool, vector: np.ndarray) -> bool:
        """Read the page's kNN candidates (found by slot, unread until shown) and name them; True when one's own
        stored vector disagrees with its slot's distance, i.e. the slot was reused since this copy of the index
        was published: that candidate takes its own cosine and the pool is ranked again."""
        stale = False
        for c in page:
            hit = pool.hits[c.id]
            named = read(hit)
            if named is hit:
                continue
            del pool.hits[c.id]
            c.id = named.id
            pool.hits[c.id] = named
            own = cosines(vector, [named]).get(c.id)
            if own is not None and abs(own - c.cosine) > STALE_COSINE:
                c.cosine, stale = own, True
        return stale

    def sector(self, query: str, vector: np.ndarray) -> str | None:
        """The sector the query points at (memoised with the query: it costs a scan of the taxonomy)."""
        if self.intent is None:
            return None
        with self._cache_lock:
            if query in self._sectors:
                return self._sectors[query]
        found = self.intent.sector_for(query, vector)
        with self._cache_lock:
            self._sectors[query] = found
            while len(self._sectors) > self._cache_size:
                self._sectors.popitem(last=False)
        return found

    def _baseline(self, collection, vector, filters: Filters, params: SearchParams,
                  timings: dict[str, float]) -> Ranked:
        """Nearest vectors only, in vector order (what bench/relevance.py compares against)."""
        t1 = time.perf_counter()
        need = params.offset + params.limit
        knn = self._knn(collection, vector, min(max(need * 4, 50), self.settings.search_max_overfetch))
        assert self.lexical is not None, "Searcher needs a lexical index"
        kept = self.lexical.by_slots(list(knn), filters)
        pool = list({h.id: Candidate(id=h.id, cosine=cos, metadata=h.card)
                     for n, cos in knn.items() for h in kept.get(n, [])}.values())
        for c in pool:
            c.score = max(0.0, min(1.0, c.cosine))
        timings["chroma"] = time.perf_counter() - t1
        return Ranked([to_result(c) for c in pool[params.offset:need]], len(pool), None, timings)
