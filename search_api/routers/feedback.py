"""POST /feedback and GET /feedback/summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from search_api.deps import ServicesDep
from search_api.models import ErrorBody, FeedbackAck, FeedbackCount, FeedbackIn, FeedbackSummary

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackAck, status_code=201, summary="Record a thumbs up / down",
             description="Appends one JSON line to FEEDBACK_PATH (flushed and fsync'ed; safe under concurrent "
                         "requests and several worker processes).",
             responses={422: {"model": ErrorBody, "description": "Invalid feedback (e.g. rating not 1 or -1)."}})
def post_feedback(body: FeedbackIn, services: ServicesDep) -> FeedbackAck:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    services.feedback.append({"received_at": now, **body.model_dump()})
    services.metrics.feedback.labels("up" if body.rating == 1 else "down").inc()
    return FeedbackAck(received_at=now)


@router.get("/feedback/summary", response_model=FeedbackSummary, summary="Feedback counts per query and result",
            description="Queries are compared case- and space-insensitively. Items are sorted by total ratings.")
def feedback_summary(services: ServicesDep,
                     limit: Annotated[int, Query(ge=1, le=10_000, description="Most items returned.")] = 500,
                     ) -> FeedbackSummary:
    total, counts = services.feedback.counts()
    items = sorted(counts.items(), key=lambda kv: (-(kv[1]["up"] + kv[1]["down"]), kv[0]))
    return FeedbackSummary(
        total=total, queries=len({q for q, _ in counts}),
        items=[FeedbackCount(query=q, result_id=r, up=c["up"], down=c["down"]) for (q, r), c in items[:limit]],
    )
