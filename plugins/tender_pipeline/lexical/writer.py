"""The index's one writer: taking it (waiting for another process's), and the changes made while holding it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import tantivy

from tender_pipeline.lexical.documents import to_document

WRITER_HEAP = 64_000_000
LOCK_WAIT_S = 3600.0  # a writer waits this long for another (an upsert behind a compaction)


def take_writer(index: tantivy.Index, path: Path, wait_s: float):
    """tantivy allows one writer per index across processes: wait for a running one to finish."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return index.writer(heap_size=WRITER_HEAP, num_threads=1)
        except ValueError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise RuntimeError(f"lexical index at {path} is locked by another writer: {exc}") from exc
            time.sleep(0.5)


class Writer:
    """Changes made while holding the index's writer; committed together by ``LexicalIndex.writing``."""

    def __init__(self, writer, schema: tantivy.Schema) -> None:
        self._writer = writer
        self._schema = schema
        self.after_commit: list[Callable[[], object]] = []  # run once the changes are committed and published

    def upsert(self, ids: Sequence[str], metadatas: Sequence[dict], texts: Sequence[str],
               vectors: Sequence | np.ndarray | None = None) -> int:
        """Replace these tenders' documents (delete by id + add; the add wins within one commit).
        ``vectors`` are the ones written to Chroma; without them a search reads the vector from Chroma."""
        vectors = [None] * len(ids) if vectors is None else vectors
        for tid, meta, text, vec in zip(ids, metadatas, texts, vectors, strict=True):
            self._writer.delete_documents_by_term("id", tid)
            self._writer.add_document(tantivy.Document.from_dict(to_document(tid, meta, text, vec), self._schema))
        return len(ids)

    def delete(self, ids: Iterable[str]) -> int:
        count = 0
        for tid in ids:
            self._writer.delete_documents_by_term("id", tid)
            count += 1
        return count

    def clear(self) -> None:
        self._writer.delete_all_documents()
