"""The FastAPI application: ``create_app(settings)`` builds it; ``app`` is what uvicorn serves.

Importing this module does no I/O: the Chroma client and the embedding model
are set up in the lifespan (see ``services.Services``), so the service starts
while Chroma is down and says so on /ready.

Run: ``uvicorn search_api.main:app`` (with ``plugins/`` on PYTHONPATH).
"""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from search_api.chroma import ChromaUnavailable
from search_api.database import DatabaseUnavailable
from search_api.filters import UnknownCurrency
from search_api.metrics import Metrics, MetricsMiddleware
from search_api.models import ErrorBody
from search_api.routers import feedback, ops, page, saved_searches, search, sectors, tenders, web
from search_api.security import RateLimit, RequestLimits, SecurityHeaders
from search_api.services import LexicalUnavailable, ModelNotReady, Services
from search_api.settings import ApiSettings, get_api_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Search the tenders indexed by the `tender_ingest` DAG: hybrid (vector + lexical) ranking with
filters, CSV export, a tender by id, questions about one tender, feedback, operations endpoints, a web page at `/`
and a page per tender at `/t/{id}`.

Errors are JSON: `{"error": <code>, "detail": <message or validation errors>}`."""


# What search_api/security.py may answer on any route (documented so clients and schemathesis expect it).
LIMIT_RESPONSES: dict[int | str, dict] = {
    400: {"model": ErrorBody, "description": "Malformed request: a body that is not UTF-8 JSON, a bad Content-Length."},
    413: {"model": ErrorBody, "description": "Request body larger than MAX_BODY_BYTES."},
    414: {"model": ErrorBody, "description": "Query string longer than MAX_QUERY_BYTES."},
    429: {"model": ErrorBody, "description": "Over RATE_LIMIT for this client; retry after `Retry-After` seconds.",
          "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}},
}


def _error(status: int, code: str, detail) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """A new app; settings default to the environment (read when the app starts)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services(settings or get_api_settings(), metrics)
        app.state.services = services
        services.start()
        yield
        services.close()

    app = FastAPI(title="Tender search API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    # Middleware must be added before startup, so these read the env here (no I/O).
    # Added innermost first: requests pass Metrics → SecurityHeaders → CORS → RateLimit → RequestLimits.
    config = settings or _env_settings_for_cors()
    app.add_middleware(RequestLimits, max_body=config.max_body_bytes, max_query=config.max_query_bytes)
    if config.rate_limit:
        app.add_middleware(RateLimit, limit=config.rate_limit, storage_uri=config.rate_limit_storage_uri)
    if config.cors_origins:  # off unless configured
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Content-Type", "Authorization"])
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return _error(422, "invalid_request", errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, exc.detail)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path, not the first route's
            response.headers["Allow"] = _allowed_methods(request)
        return response

    @app.exception_handler(ChromaUnavailable)
    async def chroma_down(_: Request, exc: ChromaUnavailable) -> JSONResponse:
        return _error(503, "chroma_unavailable", str(exc))

    @app.exception_handler(UnknownCurrency)
    async def unknown_currency(_: Request, exc: UnknownCurrency) -> JSONResponse:
        return _error(422, "invalid_request", [{"loc": ["query", "currency"], "msg": str(exc),
                                                "type": "unknown_currency"}])

    @app.exception_handler(LexicalUnavailable)
    async def lexical_down(_: Request, exc: LexicalUnavailable) -> JSONResponse:
        return _error(503, "lexical_unavailable", str(exc))

    @app.exception_handler(DatabaseUnavailable)
    async def database_down(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return _error(503, "database_unavailable", str(exc))

    @app.exception_handler(ModelNotReady)
    async def model_down(_: Request, exc: ModelNotReady) -> JSONResponse:
        return _error(503, "model_unavailable", str(exc))

    for module in (search, sectors, tenders, page, feedback, saved_searches, ops, web):
        app.include_router(module.router, responses=LIMIT_RESPONSES)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app


def _allowed_methods(request: Request) -> str:
    """Methods of the most specific path matching the request, over all its routes.

    GET and POST /search are two routes of one path; ``/tenders/{id:path}`` also
    matches ``/tenders/X/ask``, whose own, more literal template wins.
    """
    matched = [r for r in request.app.router.routes if r.matches(request.scope)[0] != Match.NONE]
    literal = [len(re.sub(r"\{[^}]*\}", "", getattr(r, "path", ""))) for r in matched]  # routes don't hash
    best = max(literal, default=0)
    methods = {m for r, n in zip(matched, literal, strict=True) if n == best
               for m in (getattr(r, "methods", None) or ())}
    return ", ".join(sorted(methods))


def _env_settings_for_cors() -> ApiSettings:
    """Middleware (CORS, limits) must be added before startup, so read the env here (no I/O)."""
    return get_api_settings()


app = create_app()
