"""GET /t/{id}: a tender's own page, rendered on the server (no script, so a strict CSP can apply).

The "Ask about this tender" form is a plain GET of the same page with
``?question=``, so it works without JavaScript and an answer has a shareable URL.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from search_api import notice
from search_api.deps import ServicesDep, with_collection
from search_api.routers.tenders import TenderId, ask, load
from tender_pipeline.ask import MAX_QUESTION_CHARS
from tender_pipeline.lexical.cards import UNCLASSIFIED

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
router = APIRouter(tags=["web"])


def money(amount: float | None, currency: str) -> str:
    if amount is None:
        return ""
    return f"{currency} {amount:,.0f}".strip() if amount >= 100 else f"{currency} {amount:,.2f}".strip()


def closing_text(closing: date | None, today: date) -> tuple[str, str]:
    if closing is None:
        return "Not given", ""
    label = f"{closing.day} {closing.strftime('%B %Y')}"
    days = (closing - today).days
    if days < 0:
        return f"{label} · closed {-days} day{'s' if days != -1 else ''} ago", "closed"
    if days == 0:
        return f"{label} · closes today", "soon"
    return f"{label} · closes in {days} day{'s' if days != 1 else ''}", "soon" if days <= 7 else ""


SURE = 0.75  # at or above this confidence a sector is shown plainly; below it is marked "likely" (app.js too)


def sector_view(sector: str, code: str, confidence: float) -> dict[str, str]:
    """The sector chip: its text, class and hint. Unclassified says so; a sector with a code says which CPV
    division and how sure the enricher was; one without (classified before codes were kept) shows as before."""
    if sector == UNCLASSIFIED:
        return {"text": UNCLASSIFIED, "cls": "unclassified",
                "hint": "No sector could be assigned with confidence"}
    if not code:
        return {"text": sector, "cls": "", "hint": ""}
    hint = f"CPV division {code} · confidence {round(confidence * 100)}%"
    if confidence < SURE:
        return {"text": f"{sector} · likely", "cls": "tentative", "hint": hint}
    return {"text": sector, "cls": "", "hint": hint}


def safe_link(url: str) -> str:
    return url if urlsplit(url).scheme in ("http", "https") else ""


def back_link(request: Request) -> str:
    """The search the user came from (same site only), else the search page."""
    ref = urlsplit(request.headers.get("referer", ""))
    if ref.netloc == request.url.netloc and ref.path == "/" and ref.query:
        return f"/?{ref.query}"
    return "/"


@router.get("/t/{tender_id:path}", response_class=HTMLResponse, summary="A tender's page",
            responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}},
                             "description": "All stored fields, versions, source link, similar open notices "
                                            "and the ask form (answer included when `question` is given)."},
                       404: {"description": "No tender with this id (an HTML page)."}})
def tender_page(request: Request, tender_id: TenderId, services: ServicesDep,
                question: Annotated[str, Query(max_length=2000, description="Ask this about the tender.")] = "",
                ) -> HTMLResponse:
    from fastapi import HTTPException

    today = date.today()
    try:
        stored = load(services, tender_id, with_vector=True)
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
        return TEMPLATES.TemplateResponse(request, "not_found.html", {"tender_id": tender_id}, status_code=404)
    t = notice.tender(stored, services.reporter)
    similar = with_collection(services, lambda c: notice.similar_open(c, services.lexical(), stored, today))
    for s in similar:
        notice.with_report_value(s, services.reporter)
    question = " ".join(question.split())
    answer, question_error = None, ""
    if len(question) > MAX_QUESTION_CHARS:
        question_error = f"Please keep the question under {MAX_QUESTION_CHARS} characters."
    elif question:
        answer = ask(services, stored, question)
    rates = []
    if services.reporter is not None and t.value_report is not None and t.currency != t.report_currency:
        rates = [d for d in (services.reporter.table.describe(t.currency),
                             services.reporter.table.describe(t.report_currency)) if d]
    closing, closing_class = closing_text(t.closing_date, today)
    context = {
        "t": t, "meta": stored.meta, "similar": similar, "question": question, "answer": answer,
        "question_error": question_error, "max_question": MAX_QUESTION_CHARS, "closing": closing,
        "closing_class": closing_class, "source_url": safe_link(t.url), "rates": rates,
        "back": back_link(request), "money": money, "closing_text": lambda d: closing_text(d, today)[0],
        "place": ", ".join(dict.fromkeys(p for p in (t.city, t.region, t.country) if p)),
        "sector": sector_view(t.sector, t.sector_code, t.sector_confidence),
    }
    return TEMPLATES.TemplateResponse(request, "tender.html", context)
