"""GET and POST /search, and the CSV export (GET /search.csv, or Accept: text/csv on GET /search)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from search_api import export
from search_api.deps import ServicesDep, with_collection
from search_api.models import SCORE_MEANING, ErrorBody, SearchBody, SearchParams, SearchResponse
from search_api.notice import with_report_value
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
re-ranked list. Each result carries its value in the original currency and in the reporting currency
(`value_report`, `report_currency`).

With `Accept: text/csv` the same page comes back as CSV (see `GET /search.csv` for exports up to 1,000 rows).
"""
RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "Invalid parameters (e.g. q too long, limit 0, malformed date)."},
    503: {"model": ErrorBody, "description": "Chroma or the collection is unavailable, or the model is loading."},
}
CSV_RESPONSE = {"content": {"text/csv": {"example": "rank,id,title,...\r\n1,PK-NHA-2026-1002,Consultancy ...\r\n"}},
                "description": "One row per result, best first."}


class ExportParams(SearchParams):
    """The search parameters, with a limit of up to 1,000 rows for the CSV export."""

    limit: int = Field(export.MAX_ROWS, ge=1, le=export.MAX_ROWS,
                       description=f"Rows to export (1–{export.MAX_ROWS}, default {export.MAX_ROWS}).")


def run_search(services: Services, params: SearchParams) -> SearchResponse:
    started = time.perf_counter()
    services.wait_for_model()

    services.lexical()  # opens the index on first use (503 when it cannot be opened)
    ranked = with_collection(services, lambda collection: services.searcher.search(collection, params))
    for stage, seconds in ranked.timings.items():
        services.metrics.search_stage.labels(stage).observe(seconds)
    for result in ranked.results:
        with_report_value(result, services.reporter)
    return SearchResponse(query=params.q, took_ms=round((time.perf_counter() - started) * 1000, 2),
                          total_candidates=ranked.total_candidates, sector_preference=ranked.sector_preference,
                          results=ranked.results)


def json_response(found: SearchResponse) -> Response:
    """The response serialised by pydantic directly. Returned as a model, FastAPI would validate our own model
    again, in a worker thread for a ``def`` endpoint, before serialising it: 0.2 ms and a thread hand-off per
    search. ``response_model`` still documents the shape."""
    return Response(found.model_dump_json(), media_type="application/json")


def csv_response(services: Services, params: SearchParams, request: Request) -> StreamingResponse:
    """Rank first (errors still answer as JSON), then stream the rows."""
    found = run_search(services, params)
    base = str(request.base_url).rstrip("/")
    return StreamingResponse(
        export.stream_csv(found.results, base), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename(params.q)}"',
                 "X-Total-Rows": str(len(found.results))},
    )


@router.get("/search", response_model=SearchResponse, summary="Search tenders (query string)",
            description=DESCRIPTION, responses={**RESPONSES, 200: CSV_RESPONSE})
def search_get(params: Annotated[SearchParams, Query()], services: ServicesDep, request: Request):
    if export.wants_csv(request.headers.get("accept", "")):
        return csv_response(services, params, request)
    return json_response(run_search(services, params))


@router.post("/search", response_model=SearchResponse, summary="Search tenders (JSON body)",
             description=DESCRIPTION + "\nSame fields as `GET /search`, sent as a JSON body.", responses=RESPONSES)
def search_post(params: Annotated[SearchBody, Body()], services: ServicesDep) -> Response:
    return json_response(run_search(services, params))


@router.get("/search.csv", response_class=StreamingResponse, summary="Export search results as CSV",
            description="The same parameters as `GET /search`; `limit` defaults to, and is capped at, "
                        f"{export.MAX_ROWS} rows. Rows stream best first. Text cells that a spreadsheet would "
                        "run as a formula (leading `=`, `+`, `-`, `@`) are prefixed with an apostrophe. "
                        "Columns: " + ", ".join(f"`{c}`" for c in export.COLUMNS) + ".",
            responses={200: CSV_RESPONSE, **RESPONSES})
def search_csv(params: Annotated[ExportParams, Query()], services: ServicesDep,
               request: Request) -> StreamingResponse:
    return csv_response(services, params, request)
