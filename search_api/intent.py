"""Query intent: which sector, if any, the query points at — a soft preference only.

The seed system learned that hard sector filters hide relevant cross-sector
notices (a hospital renovation is construction work, not health). So the
guess only adds a small bonus to notices of that sector, and only when it is
clear: the shipped sector model (the one the offline enricher labels notices
with) must give the query's best division at least ``MIN_CONFIDENCE``.
Notices below their own threshold are Unclassified, so the bonus only ever
joins a confident query guess to a confident notice sector.
"""

from __future__ import annotations

import numpy as np

from tender_pipeline.sector_model import get_sector_model
from tender_pipeline.taxonomy import load_taxonomy

MIN_CONFIDENCE = 0.5  # queries are a few words: stricter than a notice's SECTOR_MIN_CONFIDENCE


class SectorIntent:
    """Sector guess for a query from the sector model (words and word pairs; the vector is not needed)."""

    def __init__(self, embedder: object | None = None, taxonomy_path: str = "",
                 min_confidence: float = MIN_CONFIDENCE) -> None:
        self._divisions = load_taxonomy(taxonomy_path).divisions
        self._min_confidence = min_confidence

    def warm(self) -> None:
        """Load the sector model (and check its checksums) before the first query."""
        get_sector_model()

    def sector_for(self, query: str, query_vector: np.ndarray | None = None) -> str | None:
        """The sector label the query clearly points at, or None."""
        [guess] = get_sector_model().guess_texts([query], top=1)
        division = self._divisions.get(guess.code)
        if division is None or guess.confidence < self._min_confidence:
            return None
        return division.label
