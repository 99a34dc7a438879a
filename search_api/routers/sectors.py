"""GET /sectors: the sectors a search can filter on, with their counts, Unclassified included.

The counts are the lexical index's (``catalog``): aggregated once per index version and served from the
cache in between, so a request costs the same at 2 million notices as at 200.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from search_api.catalog import Facts
from search_api.deps import ServicesDep
from search_api.models import ErrorBody, SectorCount, SectorList
from tender_pipeline.lexical.cards import UNCLASSIFIED

router = APIRouter(tags=["search"])


def sector_list(facts: Facts) -> SectorList:
    """Sectors by label, then Unclassified (listed even when no notice is unclassified)."""
    named = sorted((label for label in facts.sectors if label != UNCLASSIFIED), key=str.casefold)
    unclassified = int(facts.sectors.get(UNCLASSIFIED, 0))
    items = [SectorCount(sector=label, code=facts.sector_codes.get(label, ""), count=facts.sectors[label])
             for label in named]
    items.append(SectorCount(sector=UNCLASSIFIED, code="", count=unclassified))
    return SectorList(sectors=items, unclassified=unclassified, documents=facts.documents,
                      computed_at=datetime.fromtimestamp(facts.computed_at, UTC).isoformat(timespec="seconds"))


@router.get("/sectors", response_model=SectorList, summary="Sectors to filter on, with counts",
            description="Every sector present in the index with its CPV division and number of notices, then "
                        "`Unclassified` (notices no sector was assigned to with confidence) with its count. "
                        "Pass a `sector` value as the `sector` filter of `/search` (case-insensitive); "
                        "`sector=Unclassified` finds exactly the unclassified notices. The counts are aggregated "
                        "once per index version (after each ingest) and cached.",
            responses={503: {"model": ErrorBody, "description": "The lexical index is unavailable."}})
def sectors(services: ServicesDep) -> SectorList:
    return sector_list(services.catalog.get(services.lexical()))
