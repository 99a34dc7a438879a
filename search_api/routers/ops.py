"""Operations: /health, /ready, /stats, /metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from search_api.deps import ServicesDep
from search_api.models import ErrorBody, Health, Ready, Stats

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
def health() -> Health:
    return Health()


@router.get("/ready", response_model=Ready,
            summary="Readiness: Chroma reachable, collection present, lexical index open, model loaded",
            responses={503: {"model": Ready, "description": "Not ready; the fields say why."}})
def ready(services: ServicesDep) -> Response:
    ok, reason = services.chroma.check()
    model = services.model_status
    lexical, documents = services.lexical_status()
    synced, sync = services.lexical_sync_status()  # a follower is ready once its first sync succeeded
    body = Ready(ready=ok and model == "ok" and lexical == "ok" and synced,
                 chroma="ok" if ok else reason, embedder=model, lexical=lexical, lexical_documents=documents,
                 collection=services.settings.tender_collection, **sync)
    services.metrics.ready.set(1 if body.ready else 0)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/stats", response_model=Stats, summary="Collection statistics",
            description="Document count, last ingest time and counts per sector, country and procurement type. "
                        "Aggregated by the lexical index and cached for STATS_TTL_S seconds.",
            responses={503: {"model": ErrorBody, "description": "The lexical index is unavailable."}})
def stats(services: ServicesDep) -> Stats:
    facts = services.catalog.get(services.lexical())
    return Stats(documents=facts.documents, last_ingest=facts.last_ingest,
                 sectors=dict(facts.sectors.most_common()), countries=dict(facts.countries.most_common()),
                 procurement_types=dict(facts.procurement_types.most_common()),
                 computed_at=datetime.fromtimestamp(facts.computed_at, UTC).isoformat(timespec="seconds"))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": "search_api_requests_total{...} 3.0"}},
                             "description": "Request counts, latency histograms, search stage timings."}})
def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
