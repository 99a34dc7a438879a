"""Bounded rewrites of the lexical index: at most ``MAX_SEGMENTS`` segments, the smallest folded into each commit.

Why: tantivy's default ``LogMergePolicy`` (tantivy-py 0.27 exposes no other) merges a level once it holds 8
segments of similar size, and the merged segment is written before the merged ones are deleted. Every segment
under 10,000 documents is one level, and at 2M notices the top level holds most of the index, so one merge can
rewrite most of it: the index needed 1.4–2.1× its settled size for a moment (``bench/storage.py``), and deleted
documents stayed on disk until their segment was merged (1.57× the live documents in a model of the policy at 2M,
``docs/running/capacity.md``).

The policy merges nothing while no level holds 8 segments, so an index of at most 7 segments never merges. Before
a commit's first change (``FoldFirst``: an upsert, or retirement's deletes), the live documents of its smallest
segments are re-added in that commit (rebuilt from their stored card, text and vector, as ``to_document`` wrote
them) until the commit leaves at most ``MAX_SEGMENTS``; the emptied segments are dropped, and their files
deleted, by that commit. So a commit writes its own documents plus the smallest segments (at most about a
seventh of the index), and a folded segment's deleted documents are gone with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tantivy

from tender_pipeline.lexical.documents import to_document

log = logging.getLogger(__name__)

MAX_SEGMENTS = 7  # tantivy's LogMergePolicy merges a level of 8 segments: never reached
READ_BATCH = 2000  # stored documents read (and held) at once


class FoldFirst:
    """A tantivy writer that folds before its first change: before any delete or add, so the block's own
    changes (later opstamps) win over the folded copies; never after ``delete_all_documents`` (what follows
    is the whole index). A block that changes nothing (a lock held for reading) folds nothing."""

    def __init__(self, writer, fold: Callable[[], int]) -> None:
        self._writer, self.folded = writer, 0
        self._fold: Callable[[], int] | None = fold

    def _first(self) -> None:
        if self._fold is not None:
            fold, self._fold = self._fold, None
            self.folded = fold()

    def add_document(self, doc):
        self._first()
        return self._writer.add_document(doc)

    def delete_documents_by_term(self, field: str, value):
        self._first()
        return self._writer.delete_documents_by_term(field, value)

    def delete_documents_by_query(self, query):
        self._first()
        return self._writer.delete_documents_by_query(query)

    def delete_all_documents(self):
        self._fold = None
        return self._writer.delete_all_documents()

    def __getattr__(self, name: str):  # commit, rollback, wait_merging_threads...
        return getattr(self._writer, name)


def segment_sizes(path: Path, searcher: tantivy.Searcher) -> list[tuple[int, int]] | None:
    """(max_doc, live documents) of each segment in the searcher's order (``meta.json`` lists them in the order
    the searcher opens them); None when ``meta.json`` does not describe this searcher's version."""
    try:
        segments = json.loads((path / "meta.json").read_text("utf-8")).get("segments", [])
    except (OSError, ValueError):
        return None
    sizes = [(s["max_doc"], s["max_doc"] - ((s.get("deletes") or {}).get("num_deleted_docs") or 0))
             for s in segments]
    if len(sizes) != searcher.num_segments or sum(live for _, live in sizes) != searcher.num_docs:
        return None
    return sizes


def fold(index: tantivy.Index, path: Path, writer, schema: tantivy.Schema) -> int:
    """Re-add, through ``writer``, the live documents of the smallest segments, so that the commit (which adds
    one segment) leaves at most ``MAX_SEGMENTS``; how many documents were re-added. Call it before the commit's
    own changes, so they win over the copies."""
    index.reload()
    searcher = index.searcher()
    sizes = segment_sizes(path, searcher)
    if sizes is None:
        log.warning("lexical index at %s: meta.json does not match the open version; not folding", path)
        return 0
    excess = len(sizes) + 1 - MAX_SEGMENTS
    if excess <= 0:
        return 0
    folded = 0
    for ordinal in sorted(range(len(sizes)), key=lambda k: sizes[k][1])[:excess]:
        folded += _refill(searcher, ordinal, sizes[ordinal], writer, schema)
    log.info("lexical index: %d live documents of %d segment(s) folded into this commit", folded, excess)
    return folded


def _refill(searcher: tantivy.Searcher, ordinal: int, size: tuple[int, int], writer, schema) -> int:
    """Re-add the live documents of one segment: a stored document is live when its id's one live document is
    at its own address."""
    max_doc, live = size
    done = 0
    for start in range(0, max_doc, READ_BATCH):
        docs = {d: searcher.doc(tantivy.DocAddress(ordinal, d)) for d in range(start, min(start + READ_BATCH, max_doc))}
        ids = {str(doc.get_first("id")) for doc in docs.values()}
        query = tantivy.Query.term_set_query(schema, "id", sorted(ids))
        got = searcher.search(query, limit=2 * len(ids) + 1, count=False)
        for _, addr in got.hits:
            if addr.segment_ord != ordinal or addr.doc not in docs:
                continue
            tid, document = _rebuilt(docs[addr.doc])
            writer.delete_documents_by_term("id", tid)
            writer.add_document(tantivy.Document.from_dict(document, schema))
            done += 1
    if done != live:  # re-adding a live document is harmless either way; the count says the segment was read whole
        log.warning("lexical fold: segment %d has %d live documents, %d re-added", ordinal, live, done)
    return done


def _rebuilt(doc: tantivy.Document) -> tuple[str, dict]:
    """A stored document as ``to_document`` builds it: its card is the metadata it was written from, its int8
    vector quantizes to itself, and its other stored fields are copied as they are."""
    tid = str(doc.get_first("id"))
    card, text, vec = (doc.get_first(name) for name in ("card", "text", "vec"))
    meta = json.loads(bytes(card)) if card else {}
    vector = np.frombuffer(bytes(vec), dtype=np.int8) if vec else None
    document = to_document(tid, meta, bytes(text).decode("utf-8") if text else "", vector)
    for name, values in doc.to_dict().items():  # a stored field ``to_document`` is given apart (a slot) is kept
        if name not in document and values:
            document[name] = values[0] if len(values) == 1 else values
    return tid, document
