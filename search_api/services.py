"""Everything a request needs, built by the app's lifespan and reached through dependencies.

Nothing here does I/O when constructed. ``start()`` loads the embedding model
in a background thread — the model takes ~9 s to load, and we would rather
answer /health at once and report "loading" on /ready than hold startup — and
tries a first Chroma connection. A search that arrives during the load waits
for it (up to ``EMBED_WAIT_S``) instead of failing.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from fastapi import Request

from search_api.catalog import Catalog
from search_api.chroma import ChromaGateway, ChromaUnavailable
from search_api.database import Database
from search_api.feedback import FeedbackLog
from search_api.intent import SectorIntent
from search_api.metrics import Metrics
from search_api.search import Searcher
from search_api.settings import ApiSettings
from tender_pipeline.ask import Asker
from tender_pipeline.embed import get_embedder
from tender_pipeline.gemini import GeminiConfigError
from tender_pipeline.lexical import LexicalIndex, open_index
from tender_pipeline.lexical_sync import Follower, store_for
from tender_pipeline.money import RatesError, Reporter

log = logging.getLogger(__name__)
EMBED_WAIT_S = 60.0
FIRST_SYNC_WAIT_S = 10.0  # a reader that follows a published index waits this long for its first copy


class ModelNotReady(RuntimeError):
    """The embedding model failed to load or is still loading after EMBED_WAIT_S."""


class LexicalUnavailable(RuntimeError):
    """The lexical index folder cannot be opened (missing volume, newer schema, ...)."""


class Services:
    def __init__(self, settings: ApiSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.embedder = get_embedder(settings)  # constructing loads nothing; EMBED_THREADS sizes its session
        self.chroma = ChromaGateway(settings, self.embedder)
        self.intent = SectorIntent(self.embedder, settings.taxonomy_path)
        self._lexical: LexicalIndex | None = None
        self._lexical_lock = threading.Lock()
        self.lexical_error = ""
        self.follower: Follower | None = None
        if settings.lexical_publish_uri:  # another host writes the index: keep a local copy in sync
            self.follower = Follower(store_for(settings.lexical_publish_uri, settings.tender_collection),
                                     settings.lexical_dir, settings.lexical_sync_s, on_change=self._reload_lexical)
        self.reporter = _reporter(settings)
        self.searcher = Searcher(settings, self.embedder, self.intent, reporter=self.reporter)
        self.catalog = Catalog(settings.stats_ttl_s)
        self.feedback = FeedbackLog(settings.feedback_path, settings.feedback_rotate_bytes,
                                    settings.feedback_keep_days)
        self.asker = _asker(settings, self.embedder)
        metrics.ask_gemini.source = self.asker.usage
        self.database = Database(settings.database_url, settings.chroma_retry_s)
        self._model_ready = threading.Event()
        self.model_error = ""
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------
    def start(self) -> None:
        self.database.start()
        if self.follower is not None:
            self.follower.start()
        if not self.settings.warm_embedder:
            self._model_ready.set()
            return
        self._thread = threading.Thread(target=self._warm, name="embedder-warmup", daemon=True)
        self._thread.start()

    def _warm(self) -> None:
        try:
            self.embedder.embed_queries(["warm-up"])  # loads the local model / checks the Gemini route
            self.intent.warm()
        except Exception as exc:
            self.model_error = f"embedding model failed to load: {exc}"
            log.exception("embedder warm-up failed")
        finally:
            self._model_ready.set()
        try:
            self.chroma.collection()  # connect once up front
        except ChromaUnavailable:
            pass  # reported on /ready; reconnects lazily
        try:
            self.catalog.get(self.lexical())  # /stats, aggregated once up front
        except Exception as exc:
            log.warning("first catalog aggregation failed (retried on demand): %s", exc)
        settle_heap()

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        if self._thread is not None:
            self._thread.join(timeout=0.1)
        self.database.close()

    def lexical(self) -> LexicalIndex:
        """The lexical index, opened on first use (it reloads by itself after each commit)."""
        if self._lexical is None:
            if self.follower is not None:
                self.follower.first_attempt.wait(FIRST_SYNC_WAIT_S)  # open the published copy, not an empty one
            with self._lexical_lock:
                if self._lexical is None:
                    try:
                        self._lexical = open_index(self.settings.lexical_dir)
                    except Exception as exc:
                        self.lexical_error = f"lexical index at {self.settings.lexical_dir}: {exc}"
                        raise LexicalUnavailable(self.lexical_error) from exc
                    self.lexical_error = ""
                    self.searcher.lexical = self._lexical
        return self._lexical

    def _reload_lexical(self) -> None:
        """After a sync: reload now rather than at tantivy's next meta.json poll."""
        if self._lexical is not None:
            self._lexical.index.reload()

    def lexical_sync_status(self) -> tuple[bool, dict]:
        """(synced at least once, fields of /ready) about following a published index ('off': shared folder)."""
        if self.follower is None:
            return True, {"lexical_sync": "off"}
        st, now = self.follower.status, time.time()
        return st.synced, {"lexical_sync": st.error or ("ok" if st.synced else "waiting for the first sync"),
                "lexical_version_age_s": round(now - st.published_at, 1) if st.published_at else None,
                "lexical_checked_age_s": round(now - st.checked_at, 1) if st.checked_at else None}

    def lexical_status(self) -> tuple[str, int]:
        """('ok' or the reason, documents) for /ready."""
        try:
            return "ok", self.lexical().num_docs()
        except LexicalUnavailable as exc:
            return str(exc), 0

    # --- state ----------------------------------------------------------
    @property
    def model_status(self) -> str:
        if not self._model_ready.is_set():
            return "loading"
        return self.model_error or "ok"

    def wait_for_model(self) -> None:
        if not self._model_ready.wait(EMBED_WAIT_S):
            raise ModelNotReady("the embedding model is still loading; retry shortly")
        if self.model_error:
            raise ModelNotReady(self.model_error)


def _reporter(settings: ApiSettings) -> Reporter | None:
    """The reporting-currency converter; a broken rates table leaves values unconverted, loudly."""
    try:
        return Reporter.from_settings(settings)
    except RatesError as exc:
        log.error("reporting values disabled: %s", exc)
        return None


def _asker(settings: ApiSettings, embedder) -> Asker:
    try:
        return Asker(settings, embedder)
    except GeminiConfigError as exc:
        log.error("ask: %s; answering extractively", exc)
        return Asker(settings.model_copy(update={"ask_backend": "local"}), embedder)


async def get_services(request: Request) -> Services:
    """Dependency: the app's services (created in its lifespan). ``async`` because it does no I/O: FastAPI runs a
    plain ``def`` dependency in a worker thread, a hand-off per request for an attribute read."""
    return request.app.state.services


def settle_heap() -> None:
    """Move what start-up loaded (libraries, model, taxonomy, index handles: ~250k objects) out of the
    garbage collector's reach. Otherwise every full collection walks it while holding the GIL, stalling all
    requests of the worker: measured 280–520 ms pauses under load, the largest part of the p99."""
    gc.collect()
    gc.freeze()
