"""Query building blocks, and the BM25 query over a search's words.

The words of a query are looked up in every text field, except a "common" word (in more than
``COMMON_SHARE`` of the notices and more than ``COMMON_MIN_DF`` of them), which is looked up in titles only:
its body postings are the longest in the index and add least to BM25 (low IDF). At 1M notices a reference
such as 'GHS/2016/lot-1' or 'supply of drugs' spent 5-17 ms walking them (1.5-2 ms without). Below the
floor every posting list is short, so small collections are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import tantivy

from tender_pipeline.lexical.schema import TEXT_FIELDS

COMMON_SHARE = 0.05
COMMON_MIN_DF = 10_000
# A query keeps at most this many common terms, the rarest: a pasted reference ('GHS/2016/NCT/lot-1/...') splits
# into a dozen terms, several in half the notices, and reading which candidates hold each cost 18 ms at 1M.
MAX_COMMON_TERMS = 4


def term(schema: tantivy.Schema, name: str, value: Any) -> tantivy.Query:
    return tantivy.Query.term_query(schema, name, value, index_option="basic")


def any_of(schema: tantivy.Schema, name: str, values: Iterable[str] | Iterable[int]) -> tantivy.Query:
    """Any of these terms, for the per-search sets (a few hundred ids at most): a union of term
    queries costs half what ``term_set_query`` does (0.35 ms fixed + ~10 µs a term at 100k)."""
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, term(schema, name, v)) for v in values])


def value_range(schema: tantivy.Schema, name: str, kind, lower=None, upper=None) -> tantivy.Query:
    return tantivy.Query.range_query(schema, name, kind, lower, upper)


def all_of(*queries: tantivy.Query | None, scored: tantivy.Query | None = None) -> tantivy.Query:
    """Every query must match; only ``scored`` contributes to the score (all notices when none is given)."""
    parts = [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in queries if q is not None]
    if scored is not None:
        parts.append((tantivy.Occur.Must, scored))
    if not parts:
        return tantivy.Query.all_query()
    return tantivy.Query.boolean_query(parts)


def common_df(searcher) -> float:
    return max(COMMON_MIN_DF, COMMON_SHARE * searcher.num_docs)


def text_df(word: str, searcher) -> int:
    """In how many notices ``word`` appears in some text field (its most frequent field)."""
    return max(searcher.doc_freq(name, word) for name in TEXT_FIELDS)


def focus(terms: Sequence[str], searcher) -> list[str]:
    """The query's terms, keeping only the ``MAX_COMMON_TERMS`` rarest common ones (order kept). The most
    frequent terms are the costliest to look up and the least telling; a short query is never cut."""
    common = common_df(searcher)
    dfs = {t: text_df(t, searcher) for t in terms}
    frequent = sorted((t for t in terms if dfs[t] > common), key=lambda t: dfs[t])
    drop = set(frequent[MAX_COMMON_TERMS:])
    return [t for t in terms if t not in drop]


def text_query(schema: tantivy.Schema, terms: Sequence[str], searcher=None) -> tantivy.Query | None:
    """BM25 over the analysed query terms in every text field (any term may match). With a ``searcher``, a
    common term (``COMMON_SHARE``) is looked up in titles only; which fields hold it is still read for
    every candidate (``evidence.present``), so the ranking sees it."""
    should = []
    common = common_df(searcher) if searcher is not None else None
    for word in terms:
        fields = TEXT_FIELDS
        if common is not None and text_df(word, searcher) > common:
            fields = {"title": TEXT_FIELDS["title"]}
        for name, boost in fields.items():
            q = tantivy.Query.term_query(schema, name, word, index_option="freq")
            should.append((tantivy.Occur.Should, tantivy.Query.boost_query(q, boost) if boost != 1 else q))
    return tantivy.Query.boolean_query(should) if should else None
