"""Hybrid re-ranking: vector similarity fused with lexical evidence from the candidates.

Candidates come from Chroma (nearest vectors) and from the lexical index
(BM25 under the filters, exact references); each is scored here:

    score = w * max(cos, 0) + (1 - w) * lexical + sector_bonus      (capped at 1)
    lexical = (1 - b) * coverage + b * bm25 / the pool's best bm25

``coverage`` is the IDF-weighted share of the query's terms found in the
notice — a term in the title, buyer, place or reference counts 1, elsewhere
in the text ``BODY_WEIGHT`` — with IDF from the whole index's document
frequencies (``index_idf``). ``bm25`` is the index's own score of the notice,
known for the BM25 hits (``blend_bm25``): it adds what presence cannot see, how
often a word occurs and in how short a text ("PLANT HIRE FOR WARD 9" over a
long notice that mentions plant once). IDF over the ~100 candidates made a generic word
('services', 'panel', 'maintenance') weigh as much as the word that decides
relevance, since most candidates share the query's topic words. A query word's
other spellings (``search_api.spelling``) count as the word. Which terms a
notice holds comes from the lexical index (``LexicalIndex.present``), so no
candidate text is re-read per query. A notice whose reference equals a query
token is an exact hit and scores 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tender_pipeline.sector_model.features import fold as stem  # one plural folding: the sector model's

_TOKEN = re.compile(r"[^\W_]+(?:[-/.][^\W_]+)*")
_PART = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    "a an and are as at be by for from in into is of on or per the to with via this that these those "
    "tender tenders notice notices bid bids contract contracts procurement rfq rfp request".split()
)
BODY_WEIGHT = 0.6  # a term found only in summary/keywords/description


def query_words(query: str) -> list[str]:
    """The query's distinct content words, lower-cased, in order, unstemmed: the lexical index analyses them
    with its own English stemmer, so query and notices end in the same forms."""
    return list(dict.fromkeys(part for part in _PART.findall(query.lower())
                              if part not in STOPWORDS and (len(part) > 1 or part.isdigit())))


def query_terms(query: str) -> list[str]:
    """The query's distinct content terms with plurals folded (``stem``), for the sector intent's hint words."""
    return list(dict.fromkeys(stem(w) for w in query_words(query)))


def index_idf(dfs: dict[str, int], num_docs: int) -> dict[str, float]:
    """BM25's IDF of each term from its document frequency in the whole index (no walk: tantivy keeps them).
    Tantivy's frequencies still count deleted documents until their segments merge, so one may exceed
    ``num_docs`` (after a retirement): capped there, the IDF stays ≥ 0 and so does every score."""
    return {t: math.log(1 + (num_docs - min(df, num_docs) + 0.5) / (min(df, num_docs) + 0.5))
            for t, df in dfs.items()}


def compound_tokens(query: str) -> list[str]:
    """Whole tokens as typed, references kept intact (e.g. 'PK-NHA-2026-1002')."""
    return _TOKEN.findall(query)


@dataclass
class Candidate:
    id: str
    cosine: float
    metadata: dict[str, Any]
    sector: str = ""
    strong: set[str] = field(default_factory=set)
    body: set[str] = field(default_factory=set)
    lexical: float = 0.0
    bm25: float | None = None  # the index's BM25 score, for the BM25 hits (None: not among them)
    exact: bool = False
    sector_match: bool = False
    score: float = 0.0


def lexical_scores(candidates: list[Candidate], terms: list[str], idf: dict[str, float] | None = None,
                   variants: dict[str, list[str]] | None = None) -> None:
    """Fill ``lexical`` in place: IDF-weighted share of query terms; ``idf`` from the index (``index_idf``),
    else over the pool. A candidate holding one of a term's ``variants`` (other spellings) holds the term."""
    if not terms or not candidates:
        return
    forms = {t: (t, *(variants or {}).get(t, ())) for t in terms}
    if idf is None:
        n = len(candidates)
        idf = {}
        for t in terms:
            df = sum(1 for c in candidates if not (c.strong.isdisjoint(forms[t]) and c.body.isdisjoint(forms[t])))
            idf[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    weights = [(forms[t], idf[t]) for t in terms]
    total = sum(w for _, w in weights) or 1.0
    for c in candidates:
        got = 0.0
        for held, w in weights:
            if not c.strong.isdisjoint(held):
                got += w
            elif not c.body.isdisjoint(held):
                got += BODY_WEIGHT * w
        c.lexical = got / total


def blend_bm25(candidates: list[Candidate], weight: float) -> None:
    """Blend each candidate's BM25 score, scaled by the pool's best, into ``lexical`` (coverage) in place.

    Only the BM25 hits have a score (the index scored them; a vector hit would need another query per
    search). Any other candidate would score at most what the last BM25 hit does, so its share is its
    coverage capped there: ``min(coverage, last / best)``."""
    scored = [c.bm25 for c in candidates if c.bm25 is not None]
    best = max(scored, default=0.0)
    if weight <= 0 or best <= 0:
        return
    cap = min(scored) / best
    for c in candidates:
        share = c.bm25 / best if c.bm25 is not None else min(c.lexical, cap)
        c.lexical = (1 - weight) * c.lexical + weight * share


def id_forms(tender_id: str) -> set[str]:
    """The id as stored and without its source prefix ('uk-cf:WTC 2025/3' → also 'wtc 2025/3')."""
    low = tender_id.lower()
    return {low, low.split(":", 1)[1]} if ":" in low else {low}


def mark_exact(candidates: Iterable[Candidate], query: str) -> None:
    """A notice whose reference is the query, or one of its tokens, is an exact hit."""
    typed = {t.lower() for t in compound_tokens(query)} | {" ".join(query.lower().split())}
    for c in candidates:
        c.exact = bool(id_forms(c.id) & typed)


def fuse(candidates: list[Candidate], query: str, terms: list[str], vector_weight: float, sector: str | None,
         sector_bonus: float, idf: dict[str, float] | None = None,
         variants: dict[str, list[str]] | None = None, bm25_weight: float = 0.0) -> list[Candidate]:
    """Score and sort the pool (best first); ties go to the closer vector.

    ``terms`` are the query's terms as the lexical index analyses them (the keys of
    each candidate's ``strong`` / ``body`` sets); ``idf`` and ``variants`` as in ``lexical_scores``;
    ``bm25_weight`` as in ``blend_bm25``."""
    lexical_scores(candidates, terms, idf, variants)
    blend_bm25(candidates, bm25_weight)
    mark_exact(candidates, query)
    for c in candidates:
        c.sector_match = bool(sector) and (c.sector or c.metadata.get("sector")) == sector
        if c.exact:
            c.score = 1.0
            continue
        raw = vector_weight * max(c.cosine, 0.0) + (1 - vector_weight) * c.lexical
        c.score = min(1.0, raw + (sector_bonus if c.sector_match else 0.0))
    return sorted(candidates, key=lambda c: (c.exact, c.score, c.cosine), reverse=True)
