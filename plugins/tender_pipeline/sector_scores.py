"""The division scorer the offline enricher and the search intent used before the sector model.

A division's score is the cosine between the text and ``"label: hints"`` plus
a bonus per hint word the text contains (capped at three). Kept as the baseline
``bench/enrich_quality.py`` compares the shipped sector model
(``tender_pipeline.sector_model``) against; nothing in the product uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import numpy as np

from tender_pipeline.embed import Embedder
from tender_pipeline.taxonomy import Division, Taxonomy

HINT_BONUS = 0.08
MAX_HINTS = 3


class DivisionScorer:
    """Scores per (text, division); divisions in code order (``self.divisions``)."""

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None,
                 tokenize: Callable[[str], Iterable[str]]) -> None:
        self.divisions: list[Division] = [taxonomy.divisions[c] for c in sorted(taxonomy.divisions)]
        self._tokenize = tokenize
        self._hints = [set(tokenize(f"{d.label} {d.hints}")) for d in self.divisions]
        # Rows-only batches (64), as when the labels and hints were tuned: the sector is an argmax over close
        # cosines and int8 activation scales follow the batch, so a new batching moved 7 % of real notices to
        # another sector (bench/README.md). These texts are short, so the token limit buys little here.
        with_batching = getattr(embedder, "with_batching", None)
        self._embedder = with_batching(None) if with_batching else embedder
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def label_vectors(self) -> np.ndarray:
        """The divisions' description vectors, embedded once."""
        with self._lock:
            if self._vectors is None:
                assert self._embedder is not None, "label vectors need an embedder"
                self._vectors = self._embedder.embed_documents([f"{d.label}: {d.hints}" for d in self.divisions])
        return self._vectors

    def scores(self, texts: list[str], vectors: np.ndarray | None = None) -> np.ndarray:
        """(len(texts), divisions) scores; ``vectors`` are the texts' embeddings when already known."""
        words = [set(self._tokenize(t)) for t in texts]  # once a text, not once a division
        lexical = np.array([[min(len(w & h), MAX_HINTS) for h in self._hints]
                            for w in words], dtype=np.float32).reshape(len(texts), len(self.divisions))
        scores = HINT_BONUS * lexical
        if self._embedder is not None:
            if vectors is None:
                vectors = self._embedder.embed_documents(texts)
            scores = scores + np.atleast_2d(vectors) @ self.label_vectors().T
        return scores
