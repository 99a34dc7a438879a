"""What a notice's card holds beyond the enricher's labels: its published description and its sector's CPV code
and confidence, and how a card's sector reads (a sector, or Unclassified).

Why here: the card in the lexical index is what a result, ``/tenders/{id}`` and the tender page show (Chroma holds
ids and vectors only). A card written before it kept the description (the v2 cards ``recover`` re-seals) has
none: it is read back from the embedded text, where ``documents.document_text`` put it (its first
``DESCRIPTION_CHARS`` characters).
"""

from __future__ import annotations

from typing import Any

from tender_pipeline.models import UNCLASSIFIED

# sector labels that mean "no sector": what the enricher writes when unsure, an empty field, and the label
# schema v2 gave an empty sector
_NO_SECTOR = {"", "unclassified", "unknown"}
DESCRIPTION_MAX = 20_000  # characters of the published description a card keeps (the rare longer one is cut)
# lines of ``documents.document_text`` after the "Sector:" line that are not the description
_FIELD_LINES = ("Buyer:", "Location:", "Keywords:", "Reference:")


def card_extras(item) -> dict[str, Any]:
    """The card-only fields of an ``EnrichedTender``."""
    e = item.enrichment
    return {"description": item.record.description[:DESCRIPTION_MAX], "sector_code": e.sector_code,
            "sector_confidence": round(float(e.sector_confidence), 4)}


def is_unclassified(meta: dict[str, Any]) -> bool:
    """No sector was assigned with confidence: the enricher said Unclassified, or left the sector empty. A sector
    without a code (cards written before the classifier gave codes) still counts as a sector."""
    return str(meta.get("sector") or "").strip().lower() in _NO_SECTOR


def sector_label(meta: dict[str, Any]) -> str:
    """The sector a card shows and filters on: its label, or ``UNCLASSIFIED``."""
    return UNCLASSIFIED if is_unclassified(meta) else str(meta["sector"]).strip()


def sector_code(meta: dict[str, Any]) -> str:
    """The CPV division behind the sector ('' when unclassified or not known)."""
    return "" if is_unclassified(meta) else str(meta.get("sector_code") or "")


def sector_confidence(meta: dict[str, Any]) -> float:
    """How sure the enricher was of the sector, 0..1 (0 when it did not say)."""
    try:
        value = float(meta.get("sector_confidence") or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return min(max(value, 0.0), 1.0)


def description_from_text(text: str) -> str:
    """The description as ``documents.document_text`` embedded it: the line after the Sector (or, when
    unclassified, Type) line and the Buyer / Location / Keywords lines, before the Reference line ('' when
    the notice had none)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("Sector:", "Type:"))), None)
    if start is None:
        return ""
    for line in lines[start + 1:]:
        if not line.startswith(_FIELD_LINES):
            return line
        if line.startswith("Reference:"):
            break
    return ""


def description(meta: dict[str, Any], text: str = "") -> str:
    """The published description: the card's own, else read back from the embedded ``text``."""
    if "description" in meta:
        return str(meta.get("description") or "")
    return description_from_text(text)
