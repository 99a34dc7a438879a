"""What gets embedded and stored as a tender's indexed text (internal: pages show the published words).

Embedded text, in order (the local model reads ~256 word pieces, so the most
telling fields come first): title; summary; sector / subsector and type;
buyer and place; keywords; then the description. The reference id is appended
after the description so ``where_document`` ``$contains`` finds exact
references without it steering the embedding.
"""

from __future__ import annotations

from tender_pipeline.models import UNCLASSIFIED, EnrichedTender

DESCRIPTION_CHARS = 1500


def document_text(item: EnrichedTender) -> str:
    """The text that is embedded and indexed (never shown as the notice's own words). The embed stage embeds
    it with the enrich stage's sector, procurement type and summary; the stores index it with those the
    embed stage decided from the vector (``enrich.refine``), which is also what a card rebuilt from the index
    says."""
    r, e = item.record, item.enrichment
    place = ", ".join(p for p in (r.city, r.region, r.country) if p)
    # an unsure sector is left out: "Unclassified" would steer the embedding and match the word
    sector = "" if e.sector in ("", UNCLASSIFIED) else e.sector + (f" / {e.subsector}" if e.subsector else "")
    lines = [
        r.title,
        e.summary if e.summary and e.summary != r.title else "",
        f"Sector: {sector}. Type: {e.procurement_type}." if sector else f"Type: {e.procurement_type}.",
        f"Buyer: {r.buyer}." if r.buyer else "",
        f"Location: {place}." if place else "",
        f"Keywords: {', '.join(e.keywords)}." if e.keywords else "",
        r.description[:DESCRIPTION_CHARS],
        f"Reference: {r.tender_id}",
    ]
    return "\n".join(line for line in lines if line)
