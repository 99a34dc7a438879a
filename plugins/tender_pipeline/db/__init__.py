"""The project's one relational database: SQLAlchemy 2 models, engine and Alembic migrations.

SQLite by default (a file under ``data/``), PostgreSQL by ``DATABASE_URL``.
The search API (saved searches) and the ``tender_alerts`` DAG (deliveries)
share it; both run ``upgrade()`` to head before using it.
"""

from tender_pipeline.db.engine import make_engine, redacted, session_factory
from tender_pipeline.db.migrate import current_revision, upgrade
from tender_pipeline.db.models import AlertMatch, Base, SavedSearch

__all__ = ["AlertMatch", "Base", "SavedSearch", "current_revision", "make_engine", "redacted",
           "session_factory", "upgrade"]
