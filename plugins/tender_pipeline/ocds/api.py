"""A paginated OCDS search API as a source: one data interval, every page, each fetched once.

``INCOMING_URI=ocds+https://host/path?publishedFrom={start}&publishedTo={end}&limit={page_size}``
names such an API (UK Contracts Finder's ``Published/Notices/OCDS/Search``, Find
a Tender's ``/api/1.0/ocdsReleasePackages``, ...). A run over [start, end) asks
for the releases published in it and follows each page's ``links.next`` (the
OCDS pagination extension) until a page has none. ``{start}``/``{end}`` become
ISO 8601 UTC (``2026-11-27T06:00:00Z``) unless given a strftime format
(``{start:%Y-%m-%dT%H:%M:%S}``); ``{page_size}`` is OCDS_PAGE_SIZE.

* **Once per interval.** The ledger claims (source, interval) for the first run
  that fetches it: a backfill fetches each interval exactly once, and another
  run of a claimed interval (a rerun, an overlapping backfill) fetches nothing.
* **Pages kept raw.** Each page is stored as received under
  ``<STAGING_URI>/_ocds_pages/<interval key>/`` before the next is asked for, and
  ``done.json`` marks a complete chain. A retry of the run resumes after the last
  stored page and a replay (or ``--force``) reads the stored pages: the portal is
  not asked for a page twice. Delete an interval's folder to fetch it afresh.
* **Polite and patient.** OCDS_REQUEST_DELAY_S between pages; a 429 waits for
  its ``Retry-After``; 5xx and dropped connections are retried with exponential
  backoff (tenacity), at most OCDS_MAX_RETRIES times, no wait longer than
  OCDS_RETRY_MAX_S. Other 4xx answers are a configuration error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import httpx
import ijson
import tenacity

from tender_pipeline import staging
from tender_pipeline.retry_after import parse_retry_after
from tender_pipeline.sources import Ledger, file_sha256, redact

log = logging.getLogger(__name__)

SCHEME = "ocds+"
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class OcdsApiError(ValueError):
    """The API refused the request (4xx other than 429): a wrong URI or parameter, not a passing fault."""


class _Retryable(Exception):
    def __init__(self, response: httpx.Response, url: str) -> None:
        super().__init__(f"HTTP {response.status_code} from {redact(url)}")
        self.status = response.status_code
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


def is_api(uri: str | None) -> bool:
    return uri is not None and uri.startswith((SCHEME + "http://", SCHEME + "https://"))


class _When:
    """A datetime for ``str.format``: ISO 8601 UTC by default, or the strftime format given."""

    def __init__(self, when: datetime) -> None:
        self.when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)

    def __format__(self, spec: str) -> str:
        return self.when.strftime(spec) if spec else self.when.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_url(uri: str, page_size: int, interval: tuple[datetime, datetime] | None = None) -> str:
    """The first page's URL: ``ocds+`` dropped, ``{start}``, ``{end}`` and ``{page_size}`` filled."""
    template = uri.removeprefix(SCHEME)
    if interval is None:
        return template.replace("{page_size}", str(page_size))
    start, end = interval
    return template.format(start=_When(start), end=_When(end), page_size=page_size)


@dataclass
class FetchStats:
    """What one fetch did, for fetch.json: requests sent, pages reused from staging, waits by cause."""

    requests: int = 0
    pages_fetched: int = 0
    pages_reused: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    waited_s: float = 0.0


class PageFetcher:
    """Follows ``links.next`` from a first URL, storing each page under ``store`` before asking for the next."""

    def __init__(self, settings: Any, store: staging.StagePath, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings, self.store, self.sleep = settings, store, sleep
        self.client = client or httpx.Client(timeout=settings.ocds_timeout_s, follow_redirects=True,
                                             headers={"Accept": "application/json"})
        self.stats = FetchStats()

    def pages(self, url: str) -> list[staging.StagePath]:
        """Every page of the chain, from staging where stored, from the API for the rest."""
        stored = sorted(p for p in staging.listdir(self.store) if p.name.startswith("page-"))
        if (self.store / "done.json").exists():
            self.stats.pages_reused = len(stored)
            return stored
        # urls.json: where each stored page came from (redacted, plus a hash to spot a loop), noted after the page
        notes: list[dict] = staging.read_json(self.store / "urls.json") if (self.store / "urls.json").exists() else []
        stored = stored[:len(notes)]  # a page whose URL was never noted is fetched again
        if stored:  # resume after the last page an earlier attempt stored
            self.stats.pages_reused = len(stored)
            url = _next_link(stored[-1], notes[len(stored) - 1]["url"])
        while url:
            digest = hashlib.sha256(url.encode()).hexdigest()
            if any(n["sha256"] == digest for n in notes):
                raise OcdsApiError(f"links.next of page {len(stored)} points back to an earlier page: {redact(url)}")
            if self.stats.requests:
                self.sleep(self.settings.ocds_request_delay_s)
            page = self.store / f"page-{len(stored) + 1:04d}.json"
            self._get(url, page)
            notes.append({"url": redact(url), "sha256": digest})  # enough to resolve a relative links.next
            staging.write_json(self.store / "urls.json", notes)
            stored.append(page)
            self.stats.pages_fetched += 1
            url = _next_link(page, url)
        staging.write_json(self.store / "done.json", {"pages": len(stored), "finished_at": _now()})
        return stored

    def _get(self, url: str, dest: staging.StagePath) -> None:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.ocds_max_retries + 1),
            wait=self._wait, retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
            before_sleep=self._note_retry, sleep=self.sleep, reraise=True)
        try:
            retrying(self._attempt, url, dest)
        except _Retryable as exc:  # retries exhausted: a passing fault, the task retry resumes here
            raise httpx.HTTPStatusError(f"{exc} after {self.settings.ocds_max_retries} retries",
                                        request=httpx.Request("GET", redact(url)),
                                        response=httpx.Response(exc.status)) from None

    def _attempt(self, url: str, dest: staging.StagePath) -> None:
        self.stats.requests += 1
        with self.client.stream("GET", url) as resp:
            if resp.status_code in RETRYABLE:
                raise _Retryable(resp, url)
            if resp.is_error:  # httpx's own message would quote the URL's query (keys, signatures)
                raise OcdsApiError(f"HTTP {resp.status_code} from {redact(url)}: "
                                   f"{' '.join(resp.read().decode('utf-8', 'replace').split())[:200]}")
            with staging.writer(dest, "wb") as out:
                for chunk in resp.iter_bytes():
                    out.write(chunk)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff from 1 s with jitter, never shorter than Retry-After; capped."""
        backoff = tenacity.wait_exponential_jitter(initial=1, max=self.settings.ocds_retry_max_s, jitter=1)(state)
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, _Retryable) else None
        wait = backoff if hint is None else max(hint, min(backoff, 1.0))
        return min(wait, self.settings.ocds_retry_max_s)

    def _note_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = str(exc.status) if isinstance(exc, _Retryable) else type(exc).__name__
        self.stats.retries[cause] = self.stats.retries.get(cause, 0) + 1
        wait = state.next_action.sleep if state.next_action else 0.0
        self.stats.waited_s = round(self.stats.waited_s + wait, 3)
        log.info("OCDS page request failed (%s); retry %d in %.1f s", cause, state.attempt_number, wait)


def _next_link(page: staging.StagePath, url: str) -> str:
    """The page's ``links.next`` made absolute, or '' at the end of the chain."""
    with staging.local_copy(page) as path, path.open("rb") as fh:
        try:
            link = next(ijson.items(fh, "links.next"), None)
        except ijson.JSONError as exc:
            raise OcdsApiError(f"page {page.name} from {redact(url)} is not JSON ({exc})") from None
    return urljoin(url, link) if isinstance(link, str) and link.strip() else ""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def interval_key(uri: str, interval: tuple[datetime, datetime] | None, run_id: str) -> str:
    """The page store's folder name: the source and interval (or, without one, the run) hashed."""
    scope = "/".join(t.astimezone(UTC).isoformat() for t in interval) if interval else f"run:{run_id}"
    return hashlib.sha256(f"{uri}|{scope}".encode()).hexdigest()[:32]


def fetch(settings: Any, uri: str, raw_dir: staging.StagePath, run_id: str,
          interval: tuple[datetime, datetime] | None = None, *, force: bool = False,
          client: httpx.Client | None = None) -> tuple[list[dict], list[dict], dict]:
    """Stage every page of ``uri`` (for ``interval``) into ``raw_dir``: (files, skipped, stats).

    With an interval the ledger claims (source, interval) first; an interval
    another run claimed is skipped (unless ``force``), and nothing is fetched.
    """
    shown = redact(uri.removeprefix(SCHEME))
    if interval is not None:
        ledger = Ledger(settings.ledger_dir)
        claim = f"ocds+{shown} [{interval[0].isoformat()}, {interval[1].isoformat()})"
        secret_free = hashlib.sha256(uri.encode()).hexdigest()[:16]  # the full URI may carry a key: hashed only
        if not force and not ledger.claim(claim, secret_free, run_id):
            return [], [{"uri": claim, "claimed_by": ledger.owner(claim, secret_free)}], {}
    key = interval_key(uri, interval, run_id)
    store = staging.location(settings.staging_uri) / "_ocds_pages" / key
    fetcher = PageFetcher(settings, store, client=client)
    try:
        pages = fetcher.pages(first_url(uri, settings.ocds_page_size, interval))
    finally:
        if client is None:
            fetcher.client.close()
    label = interval[0].astimezone(UTC).strftime("%Y%m%dT%H%M") if interval else run_id[-12:]
    files = []
    for page in pages:
        name = f"ocds-{label}-{page.name}"
        with staging.local_copy(page) as local:
            staging.put_file(local, raw_dir / f"{key[:8]}-{name}")
            sha = file_sha256(local)
        files.append({"uri": f"ocds+{shown}#{page.name}", "name": name, "staged": f"{key[:8]}-{name}",
                      "sha256": sha})
    stats = vars(fetcher.stats) | {"pages": len(pages), "page_store": str(store)}
    log.info("OCDS API %s: %d page(s), %d request(s), %d reused from staging", shown, len(pages),
             fetcher.stats.requests, fetcher.stats.pages_reused)
    return files, [], stats

