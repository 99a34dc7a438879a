"""One tender as a tantivy document: its words by field, its filter keys, its card and its vector."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from tender_pipeline.lexical import cards
from tender_pipeline.lexical.keys import id_forms, norm
from tender_pipeline.lexical.schema import MISSING_NUMBER
from tender_pipeline.lexical.vectors import quantize
from tender_pipeline.taxonomy import load_taxonomy


@lru_cache(maxsize=1)
def _division_words() -> dict[str, str]:
    return {code: d.hints for code, d in load_taxonomy().divisions.items()}


def sector_vocabulary(meta: dict[str, Any]) -> str:
    """The words buyers use for a notice's division (its hint words), for the index only: document expansion
    so "drainage" finds a "box drain" among construction works. Only for a confident sector (one with a code);
    never shown, and never in the notice's keywords."""
    return _division_words().get(cards.sector_code(meta), "")  # '' when unclassified or without a code


def to_document(tender_id: str, meta: dict[str, Any], text: str, vector=None,
                slot: int | None = None) -> dict[str, Any]:
    """A tantivy document from the Chroma metadata, the embedded text and (when given) the vector and the
    Chroma slot of one tender. An unclassified notice files under ``cards.UNCLASSIFIED`` (its label, key and
    count); the card keeps the published description (read back from ``text`` when ``meta`` lacks it)."""
    label = cards.sector_label(meta)
    if "description" not in meta:
        meta = {**meta, "description": cards.description_from_text(text)}
    place = " ".join(str(meta.get(k, "")) for k in ("city", "region", "country"))
    strong = " ".join([str(meta.get("buyer", "")), place, tender_id])
    sector_words = "" if label == cards.UNCLASSIFIED else label  # 'unclassified' is no word of the notice
    fields = ("summary", "keywords", "subsector", "category", "cpv_codes")
    body = " ".join([text, sector_words, sector_vocabulary(meta)] + [str(meta.get(k, "")) for k in fields])
    return {
        "id": tender_id, "id_key": id_forms(tender_id), "title": str(meta.get("title", "")),
        "strong": strong, "body": body, "buyer_words": str(meta.get("buyer", "")),
        "country_key": norm(meta.get("country", "")), "region_key": norm(meta.get("region", "")),
        "sector_key": norm(label), "type_key": norm(meta.get("procurement_type", "")),
        "sector": label,
        "sector_pair": f"{cards.sector_code(meta)}|{label}", "country": str(meta.get("country") or "Unknown"),
        "procurement_type": str(meta.get("procurement_type") or "Unknown"),
        "closing_num": int(meta.get("closing_num") or 0), "published_num": int(meta.get("published_num") or 0),
        "ingested_ts": int(meta.get("ingested_ts") or 0),
        "is_corrigendum": int(bool(meta.get("is_corrigendum", False))),
        "value_amount": float(meta.get("value_amount", MISSING_NUMBER)),
        "value_report": float(meta.get("value_report", MISSING_NUMBER)),
        "card": json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        "text": str(text).encode("utf-8"),
        **({"vec": quantize(vector)} if vector is not None else {}),
        **({"slot": int(slot)} if slot is not None else {}),
    }
