"""Engine and sessions from one URL (``DATABASE_URL``).

SQLite gets what it needs to be shared by the API's threads and a DAG task at
once: WAL journal, a busy timeout and enforced foreign keys (ON DELETE
CASCADE). ``postgresql://`` URLs use psycopg 3, the driver both images ship.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` → ``postgresql+psycopg://``; anything else as given."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redacted(url: str | URL) -> str:
    """The URL with its password masked: the only form that may reach a log or an error."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first use."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
