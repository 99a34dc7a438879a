"""Alembic, driven from code: ``upgrade(url)`` brings a database to head.

The migrations live inside the package (``db/migrations``), so every image
that ships ``tender_pipeline`` can migrate. The version table has its own
name, so pointing DATABASE_URL at a database Airflow also uses never touches
Airflow's ``alembic_version``. Developers add a revision with
``alembic -c plugins/tender_pipeline/db/alembic.ini revision --autogenerate -m ...``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from tender_pipeline.db.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "tender_alembic_version"


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> str | None:
    """Migrate to ``revision`` (idempotent); returns the revision the database is at."""
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    command.upgrade(_config(engine), revision)
    return current_revision(engine)


def downgrade(url_or_engine: str | Engine, revision: str) -> str | None:
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    command.downgrade(_config(engine), revision)
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
