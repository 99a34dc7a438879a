"""The API's handle on the relational database (saved searches).

Like Chroma, the database may be down when the service starts: ``start()``
tries to migrate once and only logs a failure; the first request that needs
the database migrates (at most once per ``retry_s``) or gets a 503 naming the
database host, never its password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from tender_pipeline.db import make_engine, redacted, session_factory, upgrade

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or migrated."""


class Database:
    def __init__(self, url: str, retry_s: float = 2.0) -> None:
        self.url = url
        self.engine = make_engine(url)  # connects lazily
        self._sessions = session_factory(self.engine)
        self._ready = False
        self._lock = threading.Lock()
        self._retry_s = retry_s
        self._last_attempt = 0.0
        self.last_error = "not migrated yet"

    def start(self) -> None:
        try:
            self.ensure()
        except DatabaseUnavailable as exc:
            log.warning("%s", exc)

    def ensure(self) -> None:
        """Migrate to head once per process; raises DatabaseUnavailable with a one-line reason."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            now = time.monotonic()
            if now - self._last_attempt < self._retry_s and self._last_attempt:
                raise DatabaseUnavailable(self.last_error)
            self._last_attempt = now
            try:
                upgrade(self.engine)
            except Exception as exc:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                self.last_error = f"database {redacted(self.url)} unavailable: {reason}"
                raise DatabaseUnavailable(self.last_error) from exc
            self._ready = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.ensure()
        with self._sessions() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()
