"""Persistent enrichment results keyed by content hash, model and prompt version.

SQLite in WAL mode with a busy timeout: several processes (Celery workers,
backfill runs) can read and write the same file safely, and a retry or
backfill finds what an earlier run already paid for. One short-lived
connection per call, so nothing is shared across threads or forks.

The cache is per host unless ``ENRICH_CACHE_PATH`` points at a volume the
hosts share: with remote staging (s3://) each worker keeps its own file. A key
is a record's content hash plus model and prompt version, so a cold worker
only pays Gemini again for a record another worker already enriched (the same
answer, never a wrong one); the run summary counts those calls as
``enrichment_cache_misses``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from tender_pipeline.settings import Settings
from tender_pipeline.staging import is_remote

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS enrichment (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def cache_key(content_hash: str, model: str, prompt_version: str) -> str:
    """One key per (record content, model, prompt): change any of them and the record is enriched again."""
    return hashlib.sha256(f"{content_hash}|{model}|{prompt_version}".encode()).hexdigest()


def cache_path_for(settings: Settings) -> Path:
    """The configured file; with a remote staging URI (s3://) the default is a per-worker local file."""
    if not settings.enrich_cache_path and is_remote(settings.staging_uri):
        fallback = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tender_pipeline"
        log.warning("staging_uri %s is remote; enrichment cache is per worker at %s "
                    "(set ENRICH_CACHE_PATH to a shared volume to share it)",
                    settings.staging_uri, fallback)
        return fallback / "enrich_cache.sqlite"
    return settings.enrich_cache_file


class EnrichmentCache:
    """Key → JSON payload store."""

    def __init__(self, path: Path | str, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout_s)
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        conn = self._connect()
        try:
            for start in range(0, len(keys), 500):  # stay under SQLite's variable limit
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, payload FROM enrichment WHERE key IN ({marks})", chunk)
                found.update(rows.fetchall())
        finally:
            conn.close()
        return found

    def put_many(self, items: dict[str, str], model: str, prompt_version: str) -> None:
        if not items:
            return
        now = time.time()
        conn = self._connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO enrichment (key, model, prompt_version, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(k, model, prompt_version, v, now) for k, v in items.items()],
                )
        finally:
            conn.close()

    def __len__(self) -> int:
        conn = self._connect()
        try:
            return int(conn.execute("SELECT COUNT(*) FROM enrichment").fetchone()[0])
        finally:
            conn.close()
