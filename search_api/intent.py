"""Query intent: which sector, if any, the query points at — a soft preference only.

The seed system learned that hard sector filters hide relevant cross-sector
notices (a hospital renovation is construction work, not health). So the
guess only adds a small bonus to notices of that sector, and only when it is
clear: the best sector must beat the runner-up by a margin.
"""

from __future__ import annotations

import threading

import numpy as np

from search_api.ranking import query_terms, stem
from tender_pipeline.embed import Embedder
from tender_pipeline.taxonomy import load_taxonomy

HINT_BONUS = 0.08  # per hint word present (as the offline enricher does), at most 3
MIN_MARGIN = 0.04
MIN_SCORE = 0.30


class SectorIntent:
    """Sector guess from the query's embedding and the taxonomy's label/hint words."""

    def __init__(self, embedder: Embedder, taxonomy_path: str = "") -> None:
        taxonomy = load_taxonomy(taxonomy_path)
        self._divisions = [taxonomy.divisions[c] for c in sorted(taxonomy.divisions)]
        self._hints = [{stem(w) for w in query_terms(f"{d.label} {d.hints}")} for d in self._divisions]
        self._embedder = embedder
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Embed the sector descriptions once (the same texts the offline enricher classifies against)."""
        with self._lock:
            if self._vectors is None:
                texts = [f"{d.label}: {d.hints}" for d in self._divisions]
                self._vectors = self._embedder.embed_documents(texts)

    def sector_for(self, query: str, query_vector: np.ndarray) -> str | None:
        """The sector label the query clearly points at, or None."""
        self.warm()
        terms = set(query_terms(query))
        lexical = np.array([min(len(terms & h), 3) for h in self._hints], dtype=np.float32)
        scores = self._vectors @ np.asarray(query_vector, dtype=np.float32) + HINT_BONUS * lexical
        order = np.argsort(scores)[::-1]
        best, second = scores[order[0]], scores[order[1]]
        if best < MIN_SCORE or best - second < MIN_MARGIN:
            return None
        return self._divisions[int(order[0])].label
