"""GET /tenders/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from search_api.deps import ServicesDep, with_collection
from search_api.models import ErrorBody, Tender
from search_api.search import card_fields

router = APIRouter(tags=["tenders"])


@router.get("/tenders/{tender_id:path}", response_model=Tender, summary="One tender, the full stored record",
            responses={404: {"model": ErrorBody, "description": "No tender with this id.",
                             "content": {"application/json": {"example": {
                                 "error": "not_found", "detail": "no tender with id 'XX-1'"}}}},
                       503: {"model": ErrorBody, "description": "Chroma unavailable."}})
def get_tender(tender_id: Annotated[str, Path(min_length=1, max_length=256, examples=["PK-NHA-2026-1002"])],
               services: ServicesDep) -> Tender:
    got = with_collection(services, lambda c: c.get(ids=[tender_id], include=["metadatas", "documents"]))
    if not got["ids"]:
        raise HTTPException(status_code=404, detail=f"no tender with id {tender_id!r}")
    meta = got["metadatas"][0] or {}
    return Tender(
        **card_fields(got["ids"][0], meta),
        keywords=[k.strip() for k in str(meta.get("keywords", "")).split(",") if k.strip()],
        category=meta.get("category", ""), cpv_codes=str(meta.get("cpv_codes", "")).split(),
        notice_type=meta.get("notice_type", ""), published_date=meta.get("published_date") or None,
        source=meta.get("source", ""), enrichment_source=meta.get("enrichment_source", ""),
        ingested_at=meta.get("ingested_at", ""), document=got["documents"][0] or "",
    )
