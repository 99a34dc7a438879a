"""POST/GET/DELETE /saved-searches and the Atom feed of each.

Owner tokens: the first POST without a token mints one (``tsk_`` + 43
URL-safe characters, 256 random bits) and returns it once; only its SHA-256 is
stored, which is enough for a high-entropy secret. Every other call needs it
as ``Authorization: Bearer``; another owner's search answers 404, the same as
a missing one, so ids can't be probed. The feed URL carries its own random key
(read-only), so feed readers need no header.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import uuid
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select

from search_api.alerts import feed
from search_api.alerts.evaluate import feed_path
from search_api.alerts.schemas import (
    DeliveryStats,
    SavedSearchCreated,
    SavedSearchIn,
    SavedSearchList,
    SavedSearchOut,
)
from search_api.alerts.webhook_url import UnsafeWebhookURL, check_webhook_url
from search_api.deps import ServicesDep
from search_api.models import ErrorBody
from tender_pipeline.db import AlertMatch, SavedSearch

router = APIRouter(tags=["saved searches"])
bearer = HTTPBearer(auto_error=False, description="The owner token returned by your first POST /saved-searches.")
TOKEN = re.compile(r"^tsk_[A-Za-z0-9_-]{43}$")
FEED_ENTRIES = 100
Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: {"model": ErrorBody, "description": "No or malformed owner token."}}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No saved search with this id among yours."}}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def owner(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The caller's owner hash; 401 without a well-formed token."""
    if credentials is None:
        raise _unauthorized("send your owner token as 'Authorization: Bearer <token>'")
    if not TOKEN.match(credentials.credentials):
        raise _unauthorized("malformed owner token")
    return token_hash(credentials.credentials)


def optional_owner(request: Request,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str | None:
    """None without an Authorization header (a new owner); a header that is not a valid token is a 401."""
    if credentials is None and "authorization" in request.headers:  # not "Bearer <token>": never a new owner
        raise _unauthorized("malformed owner token: send 'Authorization: Bearer <token>' or no header at all")
    return None if credentials is None else owner(credentials)


def same_secret(stored: str, given: str) -> bool:
    """Constant-time comparison that accepts any text (compare_digest on str refuses non-ASCII: a 500)."""
    return secrets.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))


def _out(search: SavedSearch, cls=SavedSearchOut, **extra) -> SavedSearchOut:
    return cls(id=search.id, name=search.name, params=search.params, delivery=search.delivery,
               webhook_url=search.target if search.delivery == "webhook" else None,
               email=search.target if search.delivery == "email" else None,
               feed_url=feed_path(search), created_at=search.created_at, **extra)


def _db_urls(services) -> list[str | None]:
    # the Airflow metadata DB, when this process knows it (compose passes it to the API too)
    return [services.settings.database_url, os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")]


@router.post("/saved-searches", response_model=SavedSearchCreated, status_code=201,
             summary="Save a search (and get alerts for it)",
             description="Without a token, a new owner token is minted and returned once in `token`. "
                         "With `delivery=webhook` each batch's matches are POSTed, signed with `webhook_secret`; "
                         "with `email` a digest is sent per batch; every search has an Atom feed (`feed_url`).",
             responses={422: {"model": ErrorBody, "description": "Invalid search, delivery or webhook URL "
                                                                 "(non-http(s), link-local/metadata or database "
                                                                 "address)."}, **UNAUTHORIZED},
             # the token is optional here (none mints one): `{}` in the security list says so in OpenAPI
             openapi_extra={"security": [{}]})
def create(body: SavedSearchIn, services: ServicesDep,
           owner_hash: Annotated[str | None, Depends(optional_owner)]) -> SavedSearchCreated:
    if body.delivery == "webhook":
        try:
            check_webhook_url(body.webhook_url or "", allow_private=services.settings.alert_webhook_allow_private,
                              db_urls=_db_urls(services))
        except UnsafeWebhookURL as exc:
            raise RequestValidationError([{"loc": ("body", "webhook_url"), "msg": str(exc),
                                           "type": "unsafe_url"}]) from None
    token = None
    if owner_hash is None:
        token = "tsk_" + secrets.token_urlsafe(32)
        owner_hash = token_hash(token)
    search = SavedSearch(id=uuid.uuid4().hex, owner_hash=owner_hash, name=body.name.strip(),
                         params=body.stored_params(), delivery=body.delivery, target=body.target.strip(),
                         webhook_secret=secrets.token_hex(32) if body.delivery == "webhook" else None,
                         feed_key=secrets.token_urlsafe(24))
    with services.database.session() as session:
        session.add(search)
        session.commit()
    return cast(SavedSearchCreated, _out(search, SavedSearchCreated, token=token, webhook_secret=search.webhook_secret))


@router.get("/saved-searches", response_model=SavedSearchList, summary="Your saved searches",
            responses=UNAUTHORIZED)
def list_mine(services: ServicesDep, owner_hash: Annotated[str, Depends(owner)]) -> SavedSearchList:
    with services.database.session() as session:
        rows = session.scalars(select(SavedSearch).where(SavedSearch.owner_hash == owner_hash)
                               .order_by(SavedSearch.created_at.desc()))
        return SavedSearchList(items=[_out(s) for s in rows])


def _mine(session, search_id: str, owner_hash: str) -> SavedSearch:
    search = session.get(SavedSearch, search_id)
    if search is None or not same_secret(search.owner_hash, owner_hash):
        raise HTTPException(404, detail=f"no saved search {search_id!r}")
    return search


SearchId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]


@router.get("/saved-searches/{search_id}", response_model=SavedSearchOut, summary="One of your saved searches",
            description="With delivery counts: sent, pending, parked (with the latest reason) and feed-only.",
            responses={**UNAUTHORIZED, **NOT_FOUND})
def get_one(search_id: SearchId, services: ServicesDep, owner_hash: Annotated[str, Depends(owner)]) -> SavedSearchOut:
    with services.database.session() as session:
        search = _mine(session, search_id, owner_hash)
        counts = dict(session.execute(select(AlertMatch.status, func.count()).where(
            AlertMatch.saved_search_id == search.id).group_by(AlertMatch.status)).all())
        reason = session.scalar(select(AlertMatch.reason).where(
            AlertMatch.saved_search_id == search.id, AlertMatch.status == "parked").order_by(AlertMatch.id.desc())
            .limit(1)) or ""
        stats = DeliveryStats(**{k: v for k, v in counts.items() if k in DeliveryStats.model_fields},
                              last_parked_reason=reason)
        return _out(search, deliveries=stats)


@router.delete("/saved-searches/{search_id}", status_code=204, response_class=Response,
               summary="Delete one of your saved searches (and its alert history)",
               responses={**UNAUTHORIZED, **NOT_FOUND})
def delete(search_id: SearchId, services: ServicesDep, owner_hash: Annotated[str, Depends(owner)]) -> Response:
    with services.database.session() as session:
        session.delete(_mine(session, search_id, owner_hash))
        session.commit()
    return Response(status_code=204)


FEED_EXAMPLE = ('<?xml version=\'1.0\' encoding=\'utf-8\'?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
                '<id>urn:tender-search:saved-search:ss_3f9c2a7e</id><title>Tender alerts: Road works</title>'
                '<updated>2026-11-29T12:00:00Z</updated><author><name>Tender search</name></author>'
                '<entry><id>urn:tender-search:alert:ss_3f9c2a7e:'
                'PK-NHA-2026-1002:1</id><title>Rehabilitation of N-55</title><updated>2026-11-29T12:00:00Z'
                '</updated><link rel="alternate" href="https://tenders.example.org/pk/PK-NHA-2026-1002" />'
                '<category term="new" /><summary>National Highway Authority · Pakistan</summary>'
                '</entry></feed>')


@router.get("/saved-searches/{search_id}/feed", response_class=Response, summary="Atom feed of a saved search",
            description=f"The latest {FEED_ENTRIES} matches, newest first; corrigenda appear as 'Update: ...' "
                        "entries. The `key` comes with the search's `feed_url`.",
            responses={200: {"content": {"application/atom+xml": {"example": FEED_EXAMPLE}},
                             "description": "Atom 1.0 feed."},
                       **NOT_FOUND})
def atom_feed(search_id: SearchId, request: Request, services: ServicesDep,
              key: Annotated[str, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]) -> Response:
    with services.database.session() as session:
        search = session.get(SavedSearch, search_id)
        if search is None or not same_secret(search.feed_key, key):
            raise HTTPException(404, detail=f"no saved search {search_id!r} with this feed key")
        matches = list(session.scalars(select(AlertMatch).where(AlertMatch.saved_search_id == search.id)
                                       .order_by(AlertMatch.matched_at.desc(), AlertMatch.id.desc())
                                       .limit(FEED_ENTRIES)))
        body = feed.atom(search.id, search.name, search.created_at, str(request.url), matches,
                         str(request.base_url))
    return Response(body, media_type="application/atom+xml")
