"""GET /: the search page for people (plain HTML/CSS/JS in search_api/static)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["web"])


@router.get("/", response_class=FileResponse, summary="Search page",
            responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}},
                             "description": "The web page: search box, filters, result cards, feedback."}})
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
