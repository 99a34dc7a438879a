"""Lexical evidence for re-ranking: which query terms each candidate holds in a strong field or the body,
and whether it is in the asked-for sector, read from the scores of constant-score clauses.

Each (term, field) clause adds its own power of two to a candidate's score, so the score is the bitmask of
what it holds (sums of distinct powers of two below 2^24 are exact in a float): one query answers for many
terms and candidates, and no stored document is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import tantivy

from tender_pipeline.lexical.filters import Filters, filter_query
from tender_pipeline.lexical.hits import Hit, unread
from tender_pipeline.lexical.keys import norm
from tender_pipeline.lexical.queries import all_of, any_of, term

FLOAT_BITS = 24  # integers below 2^24 are exact in a float32 score: the room for bits read back from a score
EVIDENCE_FIELDS = ("title", "strong", "body")  # one evidence bit each per term: title or strong is "strong"
DENSE_SHARE = 1 / 64  # a (term, field) in more of the notices than this is "dense" for the evidence query
TERMS_PER_QUERY = 7  # evidence bits for 7 terms (three each) and the sector fit in FLOAT_BITS


@dataclass
class Evidence:
    """Which candidates hold each query term in a strong field (title, buyer, place, reference) or
    in the body, and which are in a given sector: what re-ranking needs besides the cosine. Kept by
    candidate (``of``, what ranking reads); the by-term views are derived from it."""

    terms: list[str]
    in_sector: set[str] = field(default_factory=set)
    by_id: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # id -> (strong terms, body terms)

    @classmethod
    def empty(cls, terms: Sequence[str]) -> Evidence:
        return cls(list(terms))

    @property
    def strong(self) -> dict[str, set[str]]:
        """term -> the candidates holding it in a strong field."""
        return {t: {tid for tid, (strong, _) in self.by_id.items() if t in strong} for t in self.terms}

    @property
    def body(self) -> dict[str, set[str]]:
        """term -> the candidates holding it in the body."""
        return {t: {tid for tid, (_, body) in self.by_id.items() if t in body} for t in self.terms}

    def of(self, tender_id: str) -> tuple[set[str], set[str]]:
        """The terms a candidate holds in a strong field and in the body."""
        return self.by_id.get(tender_id) or (set(), set())

    def add(self, tender_id: str, bits: int, group: Sequence[str], sector_bit: int = 0) -> None:
        """Record one candidate's evidence bits for a group of terms (three a term: title, strong, body)."""
        strong, body = self.by_id.setdefault(tender_id, (set(), set()))
        for i, word in enumerate(group):
            if bits >> (3 * i) & 3:
                strong.add(word)
            if bits >> (3 * i + 2) & 1:
                body.add(word)
        if sector_bit and bits & sector_bit:
            self.in_sector.add(tender_id)

    def update(self, other: Evidence) -> None:
        self.terms.extend(t for t in other.terms if t not in self.terms)
        self.in_sector |= other.in_sector
        for tid, (strong, body) in other.by_id.items():
            mine = self.by_id.setdefault(tid, (set(), set()))
            mine[0].update(strong)
            mine[1].update(body)


def with_evidence(schema: tantivy.Schema, base: tantivy.Query, group: Sequence[str], sector: str | None,
                  searcher, shift: int = 0) -> tuple[tantivy.Query, int]:
    """``base`` (what must match) scored with evidence bits: each (term, field) is a constant-score clause
    worth its own power of two (from 2^shift), then the sector's; returns the query and the sector's bit
    (0 without a sector). For every candidate tantivy seeks the optional clauses: a union of them is walked
    in 4,096-document windows, cheap for sparse postings and slow for dense ones (a common word's body), so
    each dense clause (in more than ``DENSE_SHARE`` of the notices) gets a level of its own, seeked
    alone, and the sparse ones share one union. At 1M, evidence of 'supply medical equipment' for 200
    notices took 5.1 ms as one union and 1.6 ms chained; 'laboratory reagents kumasi' 0.7 ms as a union
    and 1.5 ms chained."""
    dense: list[tantivy.Query] = []
    sparse: list[tantivy.Query] = []
    floor = DENSE_SHARE * max(searcher.num_docs, 1)
    wanted = [(name, word, 1 << (shift + len(EVIDENCE_FIELDS) * i + j))
              for i, word in enumerate(group) for j, name in enumerate(EVIDENCE_FIELDS)]
    sector_bit = 0
    if sector:
        sector_bit = 1 << (shift + len(EVIDENCE_FIELDS) * len(group))
        wanted.append(("sector_key", norm(sector), sector_bit))
    for name, word, bit in wanted:
        clause = tantivy.Query.const_score_query(term(schema, name, word), float(bit))
        (dense if searcher.doc_freq(name, word) > floor else sparse).append(clause)
    query = base
    if sparse:
        union = sparse[0] if len(sparse) == 1 else tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, c) for c in sparse])
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Should, union)])
    for clause in dense:
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Should, clause)])
    return query, sector_bit


def present(schema: tantivy.Schema, terms: Sequence[str], hits: Sequence[Hit], searcher,
            sector: str | None = None) -> Evidence:
    """Lexical evidence for ``hits`` (which must come from ``searcher``: matched by address): which query
    terms each holds in a strong field or the body, and whether it is in ``sector``.

    One query per ``TERMS_PER_QUERY`` terms, not one per term and field: each (term, field) adds its own
    power of two to the score (``with_evidence``), so a hit's score is the bitmask of what it holds
    (sums of distinct powers of two below 2^24 are exact in a float). No stored document is read."""
    out = Evidence.empty(terms)
    if not hits:
        return out
    by_addr = {h.addr: h.id for h in hits}
    pool = tantivy.Query.const_score_query(any_of(schema, "id", [h.id for h in hits]), 0.0)
    groups = [list(terms[g:g + TERMS_PER_QUERY]) for g in range(0, len(terms), TERMS_PER_QUERY)] or [[]]
    for n, group in enumerate(groups):
        if not group and not (sector and n == 0):
            continue
        query, sector_bit = with_evidence(schema, pool, group, sector if n == 0 else None, searcher)
        got = searcher.search(query, limit=len(hits), count=False)
        for score, a in got.hits:
            tid = by_addr.get((a.segment_ord, a.doc))
            if tid is not None:
                out.add(tid, round(score), group, sector_bit)
    return out


def resolve(schema: tantivy.Schema, filters: Filters, ids: Sequence[str] | Sequence[int], terms: Sequence[str],
            searcher, sector: str | None = None, known: Sequence[Hit] = (),
            by: str = "id") -> tuple[list[Hit], Evidence]:
    """Which of ``ids`` pass the filters, and the lexical evidence (as ``present``) of those and of the
    ``known`` hits, in one query rather than two (each id looked up once). The score carries both answers:
    its low bits name the id (position + 1), the bits above are the evidence bits of the first terms, as
    many as fit below 2^24 (exact in a float): 4-5 terms beside a chunk of 200 vector hits and the BM25
    hits, up to 7 for a few ids. Further terms take ``present``, a second query. ``ids`` must be unique and
    none of them among ``known``; ``known`` hits must pass ``filters`` (they come from searches under them),
    or they get no evidence from this query.

    ``by="slot"``: ``ids`` are Chroma slot numbers (kNN's answer, ``slots``); the notices found are not read:
    each is an ``unread`` hit (named by its address, with its slot) until it is shown."""
    keys: list[str | int] = list(ids)
    known = list(known)
    named: list[str | int] = keys + [h.id for h in known]
    evidence = Evidence.empty(terms)
    if not named:
        return [], evidence
    if len(set(keys)) != len(keys) or len({h.id for h in known}) != len(known) or (
            by == "id" and len(set(named)) != len(named)):
        raise ValueError("resolve() needs unique ids, none of them among the known hits")
    width = len(named).bit_length()  # positions 1..len(named)
    room = FLOAT_BITS - width - (1 if sector else 0)
    if room < len(EVIDENCE_FIELDS) and (terms or sector):
        raise ValueError(f"resolve() takes too many ids at once for evidence bits ({len(named)})")
    first = list(terms[:min(room // len(EVIDENCE_FIELDS), TERMS_PER_QUERY)])
    clauses = [term(schema, by, key) for key in keys] + [term(schema, "id", h.id) for h in known]
    named_query = tantivy.Query.boolean_query([
        (tantivy.Occur.Should, tantivy.Query.const_score_query(clause, float(i + 1)))
        for i, clause in enumerate(clauses)])
    filtering = filter_query(schema, filters)
    if filtering is not None:
        named_query = all_of(filtering, scored=named_query)
    query, sector_bit = with_evidence(schema, named_query, first, sector, searcher, shift=width)
    got = searcher.search(query, limit=len(named) + 8, count=False)  # a reused slot may name two notices
    mask = (1 << width) - 1
    known_at = {h.addr for h in known}
    found: list[Hit] = []
    for score, a in got.hits:
        bits = round(score)
        position = bits & mask
        if not 1 <= position <= len(named):
            continue
        if position > len(keys):
            tid = str(named[position - 1])
        elif by == "id":
            tid = str(named[position - 1])
            found.append(Hit(id=tid, score=0.0, addr=(a.segment_ord, a.doc), searcher=searcher))
        elif (a.segment_ord, a.doc) in known_at:
            continue
        else:
            hit = unread(searcher, a, int(keys[position - 1]))
            tid = hit.id
            found.append(hit)
        evidence.add(tid, bits >> width, first, sector_bit >> width)
    if len(first) < len(terms):
        evidence.update(present(schema, terms[len(first):], found + known, searcher))
    return found, evidence
