"""Query intent: which sector, if any, the query points at — a soft preference only.

The seed system learned that hard sector filters hide relevant cross-sector
notices (a hospital renovation is construction work, not health). So the
guess only adds a small bonus to notices of that sector, and only when it is
clear: the best sector must beat the runner-up by a margin.
"""

from __future__ import annotations

import numpy as np

from search_api.ranking import query_terms, stem
from tender_pipeline.embed import Embedder
from tender_pipeline.sector_scores import DivisionScorer
from tender_pipeline.taxonomy import load_taxonomy

MIN_MARGIN = 0.04
MIN_SCORE = 0.30


class SectorIntent:
    """Sector guess from the query's embedding and the taxonomy's label/hint words."""

    def __init__(self, embedder: Embedder, taxonomy_path: str = "") -> None:
        self._scorer = DivisionScorer(load_taxonomy(taxonomy_path), embedder,
                                      lambda text: {stem(w) for w in query_terms(text)})

    def warm(self) -> None:
        """Embed the sector descriptions once (the same texts the offline enricher classifies against)."""
        self._scorer.label_vectors()

    def sector_for(self, query: str, query_vector: np.ndarray) -> str | None:
        """The sector label the query clearly points at, or None."""
        scores = self._scorer.scores([query], np.asarray(query_vector, dtype=np.float32))[0]
        order = np.argsort(scores)[::-1]
        best, second = scores[order[0]], scores[order[1]]
        if best < MIN_SCORE or best - second < MIN_MARGIN:
            return None
        return self._scorer.divisions[int(order[0])].label
