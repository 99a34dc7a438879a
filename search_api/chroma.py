"""Lazy, self-healing access to the tenders collection.

The service must start while Chroma is down and recover when it comes back,
so nothing connects at import or blocks startup: the first caller that needs
the collection connects (at most once per ``chroma_retry_s``), and a failed
call drops the client so the next one reconnects.
"""

from __future__ import annotations

import logging
import threading
import time

from tender_pipeline import store
from tender_pipeline.embed import Embedder

log = logging.getLogger(__name__)


class ChromaUnavailable(RuntimeError):
    """Chroma cannot be reached, or the collection is missing or built with another model."""


class ChromaGateway:
    """Holds the client and collection; reconnects on demand."""

    def __init__(self, settings, embedder_info: Embedder) -> None:
        self.settings = settings
        self._model_id = embedder_info.model_id
        self._dim = embedder_info.dim
        self._client = None
        self._collection = None
        self._lock = threading.Lock()
        self._last_attempt = 0.0
        self.last_error = "not connected yet"

    def collection(self):
        """The collection, connecting if needed; raises ChromaUnavailable with the reason."""
        coll = self._collection
        if coll is not None:
            return coll
        with self._lock:
            if self._collection is not None:
                return self._collection
            now = time.monotonic()
            if now - self._last_attempt < self.settings.chroma_retry_s and self._last_attempt:
                raise ChromaUnavailable(self.last_error)
            self._last_attempt = now
            try:
                if self._client is None:
                    self._client = store.get_client(self.settings)
                self._collection = store.open_collection(
                    self._client, self.settings.tender_collection, self._model_id, self._dim, create=False)
            except store.EmbeddingMismatchError as exc:
                self.last_error = str(exc)
                raise ChromaUnavailable(self.last_error) from exc
            except Exception as exc:  # connection refused, collection missing, ...
                self._client = None
                self.last_error = _describe(exc, self.settings)
                log.warning("chroma unavailable: %s", self.last_error)
                raise ChromaUnavailable(self.last_error) from exc
            self.last_error = ""
            log.info("connected to collection %r", self.settings.tender_collection)
            return self._collection

    def reset(self, exc: Exception) -> None:
        """Forget the client after a failed call so the next request reconnects."""
        with self._lock:
            self._client = None
            self._collection = None
            self._last_attempt = 0.0
            self.last_error = _describe(exc, self.settings)

    def check(self) -> tuple[bool, str]:
        """(ready, reason) for /ready: a heartbeat and the collection's presence."""
        try:
            coll = self.collection()
            coll.count()
        except ChromaUnavailable as exc:
            return False, str(exc)
        except Exception as exc:
            self.reset(exc)
            return False, self.last_error
        return True, ""


def _describe(exc: Exception, settings) -> str:
    if isinstance(exc, store.ChromaUnavailableError):
        return str(exc)  # already one line naming host and port
    where = f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else settings.chroma_path
    text = str(exc)
    if "does not exist" in text.lower() or "notfound" in type(exc).__name__.lower():
        return f"collection {settings.tender_collection!r} not found on Chroma at {where}"
    return f"Chroma at {where} unavailable: {text or type(exc).__name__}"
