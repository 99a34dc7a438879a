"""The offline sector, decided again once the notice's document is embedded.

The enrich stage guesses a notice's sector from its words (``OfflineEnricher``);
the embed stage then has the notice's vector, and the sector model's embedding
head reads it (``SectorModel.blend``). Cross-validated on the CPV-coded UK
notices, the blend is right more often than the words alone (bench/README.md,
"Sector model, fourth pass"), for one small matmul a notice.

The decision is written into the staged row (``REFINED``) by the embed stage,
beside the enrich stage's own enrichment, which is left as it was: a rerun of
the embed stage embeds the same document and decides the same. ``upsert`` and
every rebuild read the row through ``kept.notice_payload`` (``apply``), so the
stores hold one sector whichever path wrote them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tender_pipeline.enrich.offline import SectorCall, given_types, typed
from tender_pipeline.models import EnrichedTender
from tender_pipeline.sector_model import SectorModel, get_sector_model
from tender_pipeline.sector_model.features import record_terms
from tender_pipeline.taxonomy import Taxonomy, load_taxonomy

REFINED = "sector_refined"  # the staged row's key: the Enrichment fields the embedding changed
OFFLINE_SOURCES = ("local", "fallback")  # enrichments whose sector is the offline words model's guess


class SectorRefiner:
    """Decides the sector of offline-enriched notices without CPV codes from words and vector together."""

    def __init__(self, taxonomy: Taxonomy, min_confidence: float, model: SectorModel | None = None) -> None:
        self.taxonomy = taxonomy
        self.min_confidence = min_confidence
        self.model = model or get_sector_model()

    @classmethod
    def for_embedder(cls, settings: Any, embedder_id: str, dim: int) -> SectorRefiner | None:
        """The refiner for vectors of this embedder, or None when the model's head was trained on another
        one (Gemini embeddings, another local model) or ships none."""
        model = get_sector_model()
        head = model.embedding
        if not head or head.get("embedder") != embedder_id or int(head.get("dim", 0)) != dim:
            return None
        return cls(load_taxonomy(settings.taxonomy_path), settings.sector_min_confidence, model)

    def applies(self, item: EnrichedTender) -> bool:
        """Only the offline enricher's guesses (its own, or standing in for Gemini after a failure): a CPV code
        decides its own sector, and Gemini answers for itself."""
        return (item.enrichment.enrichment_source in OFFLINE_SOURCES
                and self.taxonomy.division_of_record(item.record.cpv_codes) is None)

    def decide(self, items: list[EnrichedTender], vectors: np.ndarray) -> list[dict[str, Any] | None]:
        """Per item, the Enrichment fields to store (``REFINED``), or None where the refiner does not apply."""
        out: list[dict[str, Any] | None] = [None] * len(items)
        todo = [i for i, item in enumerate(items) if self.applies(item)]
        if not todo:
            return out
        records = [items[i].record for i in todo]
        words = self.model.probabilities([record_terms(r) for r in records])
        blended = self.model.blend(words, np.asarray(vectors)[todo])
        guesses = self.model.ranked(given_types(self.model, self.taxonomy, records, blended), top=1)
        for i, record, guess in zip(todo, records, guesses, strict=True):  # the enrich stage's rule, blended
            call = SectorCall.of(self.taxonomy, guess, self.min_confidence)
            out[i] = {**call.fields(), "subsector": "", **typed(record, call)}
        return out


def apply(item: EnrichedTender, row: dict[str, Any]) -> EnrichedTender:
    """The item with the sector the embed stage decided for its row, if it decided one."""
    refined = row.get(REFINED)
    if not refined:
        return item
    if "procurement_type" not in refined:  # decided before the type followed the sector: rebuilds mend it
        refined = {**refined, **_typed_after(item, refined)}
    return item.model_copy(update={"enrichment": item.enrichment.model_copy(update=refined)})


def _typed_after(item: EnrichedTender, refined: dict[str, Any]) -> dict[str, str]:
    """The type and summary for an older row's decided division; an Unclassified one keeps the enrich stage's
    (the row does not say which division the unsure guess was)."""
    division = load_taxonomy().divisions.get(str(refined.get("sector_code") or ""))
    if division is None:
        return {}
    return typed(item.record, SectorCall(division, float(refined.get("sector_confidence", 0.0)), division))
