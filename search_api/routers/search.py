"""GET and POST /search."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Query

from search_api.deps import ServicesDep, with_collection
from search_api.models import SCORE_MEANING, ErrorBody, SearchParams, SearchResponse
from search_api.services import Services

router = APIRouter(tags=["search"])

DESCRIPTION = f"""Hybrid search over the indexed tenders.

The query is embedded with the same backend as the notices (query-side task type where the backend has one).
Candidates are the nearest notices that pass the filters plus the best BM25 matches of the query's words under the
filters and any notice whose reference was typed (from the lexical index beside Chroma); they are re-ranked by
vector similarity fused with lexical evidence.
A clear sector intent adds a small boost, never a filter.

**score**: {SCORE_MEANING}

Filters narrow the results; text filters compare case-insensitively. Paging (`offset`, `limit`) walks the
re-ranked list.
"""
RESPONSES = {
    422: {"model": ErrorBody, "description": "Invalid parameters (e.g. q too long, limit 0, malformed date)."},
    503: {"model": ErrorBody, "description": "Chroma or the collection is unavailable, or the model is loading."},
}


def run_search(services: Services, params: SearchParams) -> SearchResponse:
    started = time.perf_counter()
    services.wait_for_model()

    services.lexical()  # opens the index on first use (503 when it cannot be opened)
    ranked = with_collection(services, lambda collection: services.searcher.search(collection, params))
    for stage, seconds in ranked.timings.items():
        services.metrics.search_stage.labels(stage).observe(seconds)
    return SearchResponse(query=params.q, took_ms=round((time.perf_counter() - started) * 1000, 2),
                          total_candidates=ranked.total_candidates, sector_preference=ranked.sector_preference,
                          results=ranked.results)


@router.get("/search", response_model=SearchResponse, summary="Search tenders (query string)",
            description=DESCRIPTION, responses=RESPONSES)
def search_get(params: Annotated[SearchParams, Query()], services: ServicesDep) -> SearchResponse:
    return run_search(services, params)


@router.post("/search", response_model=SearchResponse, summary="Search tenders (JSON body)",
             description=DESCRIPTION + "\nSame fields as `GET /search`, sent as a JSON body.", responses=RESPONSES)
def search_post(params: Annotated[SearchParams, Body()], services: ServicesDep) -> SearchResponse:
    return run_search(services, params)
