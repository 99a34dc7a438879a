"""Alembic environment: the engine comes from ``upgrade()`` or, for the alembic CLI, DATABASE_URL."""

from __future__ import annotations

from alembic import context

from tender_pipeline.db.engine import make_engine
from tender_pipeline.db.migrate import VERSION_TABLE
from tender_pipeline.db.models import Base


def _engine():
    engine = context.config.attributes.get("engine")
    if engine is None:
        from tender_pipeline.settings import Settings

        engine = make_engine(Settings().database_url)
    return engine


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                          render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
