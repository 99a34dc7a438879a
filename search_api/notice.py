"""One stored tender as the detail page and the ask endpoint need it, and the open notices like it.

The card, the text and the vector come from the lexical index (Chroma holds ids and vectors only), so a
tender's page needs no Chroma call. The card holds the published description and the sector's code and
confidence; the embedded text stays internal: the page, ``/tenders/{id}`` and "ask" use the notice's own
words. Similar notices are a plain kNN on the tender's own stored vector, with closed
ones dropped in Python: a Chroma ``where`` filter would scan the collection
(see ENVIRONMENT.md), while unfiltered kNN stays ~flat with size. We over-fetch
so that enough open notices remain after the drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from search_api.models import Tender, TenderFields
from search_api.search import card_fields
from tender_pipeline import slots
from tender_pipeline.ask import Notice, build_notice
from tender_pipeline.lexical import LexicalIndex, cards
from tender_pipeline.money import Reporter

SIMILAR_FETCH = 40  # neighbours fetched to find SIMILAR_SHOWN open ones


@dataclass
class Stored:
    tender_id: str
    meta: dict[str, Any]  # the lexical card
    document: str  # the embedded text (internal: never shown as the notice's words)
    vector: list[float] | None = None

    @property
    def description(self) -> str:
        """The description as published (the card's; read back from the embedded text for older cards)."""
        return cards.description(self.meta, self.document)

    def published_text(self) -> str:
        """The notice's own words: title, summary and description (no generated Sector / Keywords lines)."""
        title, summary = str(self.meta.get("title") or ""), str(self.meta.get("summary") or "")
        return "\n".join(t for t in (title, summary if summary != title else "", self.description) if t)

    def notice(self) -> Notice:
        return build_notice(self.tender_id, self.published_text(), self.meta)


def fetch(lexical: LexicalIndex, tender_id: str, with_vector: bool = False) -> Stored | None:
    """The stored notice, or None; ``with_vector``: its int8 vector as floats (cosine space: the scale is moot)."""
    got = lexical.notices([tender_id]).get(tender_id)
    if got is None:
        return None
    card, text, vec = got
    vector = [float(x) for x in np.frombuffer(vec, dtype=np.int8)] if with_vector and vec else None
    return Stored(tender_id, card, text, vector)


def with_report_value(fields: TenderFields, reporter: Reporter | None) -> TenderFields:
    """Fill value_report from value_amount + currency with the current rates table."""
    if reporter is not None:
        fields.report_currency = reporter.currency
        if fields.value_amount is not None:
            fields.value_report = reporter.value(fields.value_amount, fields.currency)
    return fields


def tender(stored: Stored, reporter: Reporter | None) -> Tender:
    meta = stored.meta
    model = Tender(
        **card_fields(stored.tender_id, meta),
        keywords=[k.strip() for k in str(meta.get("keywords", "")).split(",") if k.strip()],
        category=meta.get("category", ""), cpv_codes=str(meta.get("cpv_codes", "")).split(),
        notice_type=meta.get("notice_type", ""), published_date=meta.get("published_date") or None,
        source=meta.get("source", ""), enrichment_source=meta.get("enrichment_source", ""),
        ingested_at=meta.get("ingested_at", ""), versions=int(meta.get("versions") or 1),
        description=stored.description, document=stored.document,
    )
    return with_report_value(model, reporter)  # type: ignore[return-value]


def similar_open(collection, lexical: LexicalIndex, stored: Stored, today: date, limit: int = 5) -> list[TenderFields]:
    """The nearest other notices that are still open (closing today or later; unknown closing dates excluded):
    ids from Chroma's kNN, cards from the lexical index (an id it lacks, e.g. just retired, is skipped)."""
    if stored.vector is None:
        return []
    got = collection.query(query_embeddings=[stored.vector], n_results=SIMILAR_FETCH + 1, include=["distances"])
    numbers = [slots.slot_number(sid) for sid in got["ids"][0]]
    found = lexical.by_slots(numbers)  # kNN names slots; the index names their notices
    near = list(dict.fromkeys(h.id for n in numbers for h in found.get(n, [])))
    cards = {h.id: h.card for held in found.values() for h in held}
    today_num = int(today.strftime("%Y%m%d"))
    out: list[TenderFields] = []
    for tid in near:
        meta = cards[tid]
        if tid == stored.tender_id or int(meta.get("closing_num") or 0) < today_num:
            continue
        out.append(TenderFields(**card_fields(tid, meta)))
        if len(out) == limit:
            break
    return out
