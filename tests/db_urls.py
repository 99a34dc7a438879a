"""The databases the DB-layer tests run on: a SQLite file always, a throwaway PostgreSQL when reachable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import postgres_database, postgres_unavailable_reason

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@contextlib.contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend``; yields its URL (psycopg 3 for PostgreSQL)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'tender_search.db'}"
        return
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with postgres_database("tender_db") as url:
        yield url.replace("postgresql+psycopg2://", "postgresql://")
