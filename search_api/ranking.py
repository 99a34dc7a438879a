"""Hybrid re-ranking: vector similarity fused with lexical evidence from the candidates.

Open-source Chroma has no server-side BM25, so the service over-fetches
candidates (by vector, plus notices that literally contain the query's exact
terms) and scores each one here:

    score = w * max(cos, 0) + (1 - w) * lexical + sector_bonus      (capped at 1)

``lexical`` is the IDF-weighted share of the query's terms found in the
notice — a term in the title, buyer, place or reference counts 1, elsewhere
in the text ``BODY_WEIGHT`` — with IDF taken over the candidate pool. A
notice whose reference equals a query token is an exact hit and scores 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[^\W_]+(?:[-/.][^\W_]+)*")
_PART = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    "a an and are as at be by for from in into is of on or per the to with via this that these those "
    "tender tenders notice notices bid bids contract contracts procurement rfq rfp request".split()
)
META = frozenset("\\.+*?()|[]{}^$#&-~")
BODY_WEIGHT = 0.6  # a term found only in summary/keywords/description
STRONG_FIELDS = ("title", "buyer", "city", "region", "country", "tender_id")
BODY_FIELDS = ("summary", "keywords", "sector", "subsector", "category")


def stem(token: str) -> str:
    """Tiny plural folding so 'hospitals' matches 'hospital' (no language model needed)."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def words(text: str) -> set[str]:
    """Lower-cased, plural-folded word parts of a text (a reference splits into its parts)."""
    return {stem(p) for p in _PART.findall(text.lower())}


def query_terms(query: str) -> list[str]:
    """The query's distinct content terms, in order."""
    seen: dict[str, None] = {}
    for part in _PART.findall(query.lower()):
        if part not in STOPWORDS and (len(part) > 1 or part.isdigit()):
            seen.setdefault(stem(part), None)
    return list(seen)


def compound_tokens(query: str) -> list[str]:
    """Whole tokens as typed, references kept intact (e.g. 'PK-NHA-2026-1002')."""
    return _TOKEN.findall(query)


def is_distinctive(token: str) -> bool:
    """Reference-like (has a digit or a separator), an acronym (2+ capitals) or a capitalised name."""
    if any(c.isdigit() for c in token) or any(c in "-/." for c in token):
        return len(token) >= 3
    upper = sum(c.isupper() for c in token)
    return (upper >= 2 and len(token) >= 2) or (token[:1].isupper() and len(token) >= 4)


def exact_terms(query: str, limit: int) -> list[str]:
    """Terms worth a where_document $contains lookup: distinctive ones first, then the longest words."""
    tokens = [t for t in dict.fromkeys(compound_tokens(query)) if t.lower() not in STOPWORDS]
    distinctive = [t for t in tokens if is_distinctive(t)]
    rest = sorted((t for t in tokens if t not in distinctive and len(t) >= 5), key=len, reverse=True)
    whole = re.sub(r"^\W+|\W+$", "", " ".join(query.split()))
    if 1 < len(tokens) <= 3 and len(whole) <= 40 and any(c.isdigit() for c in whole):
        distinctive.insert(0, whole)  # a reference with spaces, e.g. "WTC 2025/3"
    return (distinctive + rest)[:limit]


def term_pattern(term: str) -> str:
    """A case-insensitive ``$regex`` for ``where_document`` ($contains is case-sensitive).

    Whole-word for references and acronyms (so 'NHA' does not match 'enhance');
    a word prefix otherwise, so 'hospital' also finds 'hospitals'.
    """
    code_like = any(c.isdigit() or c in "-/." for c in term) or sum(c.isupper() for c in term) >= 2
    if code_like:
        return rf"(?i)\b{rust_escape(term)}\b"
    return rf"(?i)\b{rust_escape(stem(term.lower()))}"


def rust_escape(text: str) -> str:
    """Escape regex metacharacters for Chroma's (Rust) regex engine; spaces stay literal."""
    return "".join("\\" + ch if ch in META else ch for ch in text)


@dataclass
class Candidate:
    id: str
    cosine: float
    metadata: dict
    document: str
    strong: set[str] = field(default_factory=set)
    body: set[str] = field(default_factory=set)
    lexical: float = 0.0
    exact: bool = False
    sector_match: bool = False
    score: float = 0.0

    def __post_init__(self) -> None:
        meta = self.metadata
        self.strong = words(" ".join(str(meta.get(f, "")) for f in STRONG_FIELDS))
        self.body = words(" ".join([self.document] + [str(meta.get(f, "")) for f in BODY_FIELDS]))


def lexical_scores(candidates: list[Candidate], terms: list[str]) -> None:
    """Fill ``lexical`` in place: IDF-weighted share of query terms (IDF over the pool)."""
    if not terms or not candidates:
        return
    n = len(candidates)
    idf = {}
    for t in terms:
        df = sum(1 for c in candidates if t in c.strong or t in c.body)
        idf[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    total = sum(idf.values()) or 1.0
    for c in candidates:
        got = 0.0
        for t in terms:
            if t in c.strong:
                got += idf[t]
            elif t in c.body:
                got += BODY_WEIGHT * idf[t]
        c.lexical = got / total


def id_forms(tender_id: str) -> set[str]:
    """The id as stored and without its source prefix ('uk-cf:WTC 2025/3' → also 'wtc 2025/3')."""
    low = tender_id.lower()
    return {low, low.split(":", 1)[1]} if ":" in low else {low}


def mark_exact(candidates: Iterable[Candidate], query: str) -> None:
    """A notice whose reference is the query, or one of its tokens, is an exact hit."""
    typed = {t.lower() for t in compound_tokens(query)} | {" ".join(query.lower().split())}
    for c in candidates:
        c.exact = bool(id_forms(c.id) & typed)


def fuse(candidates: list[Candidate], query: str, vector_weight: float, sector: str | None,
         sector_bonus: float) -> list[Candidate]:
    """Score and sort the pool (best first); ties go to the closer vector."""
    lexical_scores(candidates, query_terms(query))
    mark_exact(candidates, query)
    for c in candidates:
        c.sector_match = bool(sector) and c.metadata.get("sector") == sector
        if c.exact:
            c.score = 1.0
            continue
        raw = vector_weight * max(c.cosine, 0.0) + (1 - vector_weight) * c.lexical
        c.score = min(1.0, raw + (sector_bonus if c.sector_match else 0.0))
    return sorted(candidates, key=lambda c: (c.exact, c.score, c.cosine), reverse=True)
