"""Evaluate every saved search against one ingest batch and deliver what is new.

The search is ``Searcher.search`` itself — the code behind ``/search`` —
restricted to the batch's new and updated tender ids, with the saved query and
filters, keeping results scoring at least ALERT_MIN_SCORE. Each match is a row
per (saved search, tender, version): inserting is what makes a rerun, retry or
backfill silent, because a version already recorded is skipped. A tender the
search alerted on before that comes back with a new version (a corrigendum) is
sent as an ``update``, even if the change moved it under the threshold: the
subscriber wants to hear that a notice they follow changed.

Delivery is per saved search: one signed webhook POST or one email digest with
all its pending matches; failure after the retries parks those matches with the
reason and moves on to the next search.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from search_api.alerts import digest, webhooks
from search_api.alerts.digest import EmailSender
from search_api.alerts.webhook_url import UnsafeWebhookURL, resolve_webhook_url
from search_api.models import SearchParams
from search_api.search import card_fields
from search_api.settings import ApiSettings
from tender_pipeline.changes import batch_changes
from tender_pipeline.db import AlertMatch, SavedSearch, make_engine, session_factory, upgrade
from tender_pipeline.db.models import utcnow

log = logging.getLogger(__name__)
PAGE = 100
IN_CHUNK = 500  # ids per SQL IN (...) list


@dataclass
class Counts:
    batch_notices: int = 0
    searches_evaluated: int = 0
    matches: int = 0  # new rows recorded this run (new + updates)
    updates: int = 0
    deliveries_sent: int = 0  # matches delivered by webhook or email
    deliveries_failed: int = 0  # matches parked because their delivery failed
    skipped_already_sent: int = 0  # matches whose (search, tender, version) was recorded by an earlier run
    feed_only: int = 0
    webhooks_posted: int = 0
    emails_sent: int = 0
    parked: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def feed_path(search: SavedSearch) -> str:
    return f"/saved-searches/{search.id}/feed?key={search.feed_key}"


class BatchSearch:
    """The /search code path over one batch: the same Searcher (lexical index + Chroma) and collection."""

    def __init__(self, settings: ApiSettings, searcher=None, collection=None) -> None:
        self.settings = settings
        self._searcher, self._collection = searcher, collection

    @property
    def searcher(self):
        if self._searcher is None:
            from search_api.intent import SectorIntent
            from search_api.search import Searcher
            from tender_pipeline.embed import get_embedder
            from tender_pipeline.lexical import open_index

            embedder = get_embedder(self.settings)
            self._searcher = Searcher(self.settings, embedder, SectorIntent(embedder, self.settings.taxonomy_path),
                                      lexical=open_index(self.settings.lexical_dir))
        return self._searcher

    @property
    def collection(self):
        if self._collection is None:
            from tender_pipeline import store

            embedder = self.searcher.embedder
            self._collection = store.open_collection(store.get_client(self.settings), self.settings.tender_collection,
                                                     embedder.model_id, embedder.dim, create=False)
        return self._collection

    def matches(self, saved: dict[str, Any], ids: list[str]) -> list[tuple[dict[str, Any], float]]:
        """(card, score) of the batch notices the saved search finds at or above the threshold, best first.

        The batch is searched in slices of at most SEARCH_EXHAUSTIVE_MAX ids, so each slice takes the
        search's exhaustive path (every id ranked by its stored vector). One search over a larger batch would
        take the broad-filter path instead: the collection-wide nearest vectors plus the BM25 top
        notices, which at scale holds few of the batch's notices, and matches would go unsent.
        """
        s = self.settings
        step = max(1, s.search_exhaustive_max)
        found: list[tuple[dict[str, Any], float]] = []
        for start in range(0, len(ids), step):
            found += self._matches_in(saved, ids[start:start + step])
        found.sort(key=lambda hit: hit[1], reverse=True)
        return found[:s.alert_max_per_search]

    def _matches_in(self, saved: dict[str, Any], ids: list[str]) -> list[tuple[dict[str, Any], float]]:
        s = self.settings
        found: list[tuple[dict[str, Any], float]] = []
        offset = 0
        while len(found) < s.alert_max_per_search and offset <= 1000:
            params = SearchParams(**{**saved, "limit": PAGE, "offset": offset})
            ranked = self.searcher.search(self.collection, params, ids=ids)
            keep = [r for r in ranked.results if r.score >= s.alert_min_score]
            found += [(r.model_dump(mode="json", exclude={"score"}), r.score) for r in keep]
            if len(keep) < PAGE:
                break
            offset += PAGE
        return found

    def cards(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The result cards of followed notices, from the lexical index (as a search's are: with the sector's
        code and confidence, which Chroma does not keep)."""
        found = self.searcher.lexical.cards(ids) if ids else {}
        return {tid: card_fields(tid, meta) for tid, meta in found.items()}


def _recorded(session: Session, ids: list[str]) -> dict[str, dict[str, set[str]]]:
    """{saved search id: {tender id: versions already recorded}} for the batch's tenders."""
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for start in range(0, len(ids), IN_CHUNK):
        rows = session.execute(select(AlertMatch.saved_search_id, AlertMatch.tender_id, AlertMatch.version)
                               .where(AlertMatch.tender_id.in_(ids[start:start + IN_CHUNK])))
        for sid, tid, version in rows:
            seen[sid][tid].add(version)
    return seen


def run_batch(settings: ApiSettings, staging_dir: str, *, run_id: str, send_email: EmailSender | None = None,
              db_urls: Iterable[str | None] = (), engine: Engine | None = None,
              batch_search: BatchSearch | None = None) -> dict[str, Any]:
    """Evaluate all saved searches against the batch staged at ``staging_dir``; returns the counts."""
    counts = Counts()
    changes = batch_changes(staging_dir)
    counts.batch_notices = len(changes)
    engine = engine or make_engine(settings.database_url)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        searches = list(session.scalars(select(SavedSearch).order_by(SavedSearch.created_at)))
    if not changes or not searches:
        return counts.as_dict()
    versions = {c.tender_id: c.version for c in changes}
    ids = list(versions)
    batch_search = batch_search or BatchSearch(settings)
    db_urls = [settings.database_url, *db_urls]
    with sessions() as session:
        seen = _recorded(session, ids)
    for saved in searches:
        try:
            found = batch_search.matches(saved.params, ids)
        except ValidationError as exc:  # stored before a schema change: report, don't stop the others
            counts.parked.append({"saved_search": saved.id, "reason": f"invalid saved query: {exc.errors()[0]}"})
            continue
        counts.searches_evaluated += 1
        mine = seen.get(saved.id, {})
        rows: list[AlertMatch] = []
        for card, score in found:
            tid = card["id"]
            if versions[tid] in mine.get(tid, ()):
                counts.skipped_already_sent += 1
                continue
            rows.append(_row(saved, tid, versions[tid], "update" if mine.get(tid) else "new", score, card, run_id))
        matched = {card["id"] for card, _ in found}
        followed = [tid for tid in mine if tid in versions and versions[tid] not in mine[tid] and tid not in matched]
        for tid, card in batch_search.cards(followed).items():
            rows.append(_row(saved, tid, versions[tid], "update", 0.0, card, run_id))
        with sessions() as session:
            _insert(session, rows, counts)
            _deliver(session, saved, settings, send_email, db_urls, counts)
    log.info("alerts for %s: %s", run_id, {k: v for k, v in counts.as_dict().items() if k != "parked"})
    return counts.as_dict()


def _row(saved: SavedSearch, tid: str, version: str, kind: str, score: float, card: dict, run_id: str) -> AlertMatch:
    return AlertMatch(saved_search_id=saved.id, tender_id=tid, version=version, kind=kind, score=round(score, 4),
                      card=card, batch=run_id, status="feed" if saved.delivery == "feed" else "pending",
                      attempts=0, reason="", matched_at=utcnow())


def _insert(session: Session, rows: list[AlertMatch], counts: Counts) -> None:
    for row in rows:
        try:
            with session.begin_nested():  # a concurrent run may have recorded it a moment ago
                session.add(row)
        except IntegrityError:
            counts.skipped_already_sent += 1
            continue
        counts.matches += 1
        counts.updates += row.kind == "update"
        counts.feed_only += row.status == "feed"
    session.commit()


def _deliver(session: Session, saved: SavedSearch, settings: ApiSettings, send_email: EmailSender | None,
             db_urls: list[str | None], counts: Counts) -> None:
    """Send every pending match of ``saved`` (this batch's and any a crashed run left) in one delivery."""
    pending = list(session.scalars(select(AlertMatch).where(AlertMatch.saved_search_id == saved.id,
                                                            AlertMatch.status == "pending").order_by(AlertMatch.id)))
    if not pending:
        return
    items = [{"kind": m.kind, "tender_id": m.tender_id, "version": m.version, "score": m.score, "card": m.card}
             for m in pending]
    send = {"webhook": _send_webhook, "email": _send_email}.get(saved.delivery)
    ok, attempts, reason = send(saved, items, settings, send_email, db_urls) if send else (False, 0, "unknown delivery")
    now = utcnow()
    for m in pending:
        m.attempts += attempts
        if ok:
            m.status, m.delivered_at, m.reason = "sent", now, ""
        else:
            m.status, m.reason = "parked", reason[:2000]
    session.commit()
    if ok:
        counts.deliveries_sent += len(pending)
        counts.webhooks_posted += saved.delivery == "webhook"
        counts.emails_sent += saved.delivery == "email"
    else:
        counts.deliveries_failed += len(pending)
        counts.parked.append({"saved_search": saved.id, "delivery": saved.delivery, "reason": reason})
        log.warning("saved search %s: %d match(es) parked: %s", saved.id, len(pending), reason)


def _delivery_id(saved: SavedSearch, items: list[dict]) -> str:
    """Stable for the same pending set, so a receiver can drop a duplicate after a crash-and-resend."""
    key = saved.id + "|" + "|".join(f"{i['tender_id']}@{i['version']}" for i in items)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _send_webhook(saved: SavedSearch, items: list[dict], settings: ApiSettings, _send_email,
                  db_urls: list[str | None]) -> tuple[bool, int, str]:
    try:
        url, address = resolve_webhook_url(saved.target, allow_private=settings.alert_webhook_allow_private,
                                           db_urls=db_urls)
    except UnsafeWebhookURL as exc:
        return False, 0, f"refused: {exc}"
    delivery_id = _delivery_id(saved, items)
    payload = {"event": "tender.alert", "delivery_id": delivery_id,
               "saved_search": {"id": saved.id, "name": saved.name}, "feed_path": feed_path(saved),
               "items": [{"kind": i["kind"], "version": i["version"], "score": i["score"], "tender": i["card"]}
                         for i in items]}
    result = webhooks.post(url, payload, secret=saved.webhook_secret or "", delivery_id=delivery_id,
                           attempts=settings.alert_webhook_attempts, backoff_s=settings.alert_webhook_backoff_s,
                           timeout_s=settings.alert_webhook_timeout_s, address=address)
    return result.ok, result.attempts, result.reason


def _send_email(saved: SavedSearch, items: list[dict], settings: ApiSettings, send_email: EmailSender | None,
                _db_urls) -> tuple[bool, int, str]:
    if send_email is None:
        return False, 0, f"no SMTP connection {settings.alert_smtp_conn_id!r} configured in Airflow"
    subject, html = digest.render(saved.name, items, feed_path(saved))
    try:
        send_email(saved.target, subject, html)
    except Exception as exc:  # the sender is Airflow's SmtpHook: SMTP, network and config errors all park
        return False, 1, f"email to {saved.target}: {type(exc).__name__}: {exc}"
    return True, 1, ""


__all__ = ["BatchSearch", "Counts", "run_batch", "feed_path"]
