"""GET /tenders/{id} and POST /tenders/{id}/ask."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from search_api import notice
from search_api.deps import ServicesDep, with_collection
from search_api.models import AskIn, AskOut, AskPassage, ErrorBody, Tender
from search_api.services import LexicalUnavailable, Services

router = APIRouter(tags=["tenders"])
TenderId = Annotated[str, Path(min_length=1, max_length=256, examples=["PK-NHA-2026-1002"])]
NOT_FOUND = {404: {"model": ErrorBody, "description": "No tender with this id.",
                   "content": {"application/json": {"example": {
                       "error": "not_found", "detail": "no tender with id 'XX-1'"}}}},
             503: {"model": ErrorBody, "description": "Chroma unavailable, or the model is loading."}}


def load(services: Services, tender_id: str, with_vector: bool = False) -> notice.Stored:
    try:
        lexical = services.lexical()
    except LexicalUnavailable:  # the card then comes from Chroma's metadata (no sector code, no confidence)
        lexical = None
    stored = with_collection(services, lambda c: notice.fetch(c, tender_id, with_vector, lexical))
    if stored is None:
        raise HTTPException(status_code=404, detail=f"no tender with id {tender_id!r}")
    return stored


def ask(services: Services, stored: notice.Stored, question: str) -> AskOut:
    """Answer from this notice's passages only (see tender_pipeline.ask)."""
    started = time.perf_counter()
    services.wait_for_model()
    text = stored.notice()
    result = services.asker.answer(text, question)
    services.metrics.search_stage.labels(f"ask_{result.mode}").observe(time.perf_counter() - started)
    return AskOut(
        tender_id=stored.tender_id, question=question, answer=result.answer, stated=result.stated,
        mode=result.mode, note=result.note, usage=result.usage, notice_text=text.text,
        passages=[AskPassage(index=s.passage.index, text=s.passage.text, field=s.passage.field,
                             start=s.passage.start, end=s.passage.end, score=s.score) for s in result.support],
    )


ASK_DESCRIPTION = """Answers only from this notice's stored text: its fields written as short sentences
(closing date, value, buyer, place, source link) and the sentences of its title, summary and description.

* **extractive** (default, offline): the notice's passages ranked by the local embedder's similarity to the
  question and by shared words; the best passage is the answer, the top three are returned with their positions.
* **gemini** (`ASK_BACKEND=gemini`, the default when `GEMINI_API_KEY` is set): a grounded answer citing passage
  numbers, or "Not stated in the notice."; same client, rate limits, retries and cost accounting as enrichment.
  When Gemini is unavailable the extractive answer is returned with a `note` saying why.

`start`/`end` are character offsets in `notice_text`. Questions are limited to 500 characters."""


@router.post("/tenders/{tender_id:path}/ask", response_model=AskOut, summary="Ask a question about one tender",
             description=ASK_DESCRIPTION,
             responses={**NOT_FOUND, 422: {"model": ErrorBody, "description": "Question empty or too long."}})
def ask_tender(tender_id: TenderId, body: AskIn, services: ServicesDep) -> AskOut:
    return ask(services, load(services, tender_id), body.question.strip())


@router.get("/tenders/{tender_id:path}", response_model=Tender, summary="One tender, the full stored record",
            responses=NOT_FOUND)
def get_tender(tender_id: TenderId, services: ServicesDep) -> Tender:
    return notice.tender(load(services, tender_id), services.reporter)
