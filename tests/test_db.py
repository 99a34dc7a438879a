"""The relational DB layer: Alembic migrations and the constraints alerts rely on, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from tender_pipeline.db import AlertMatch, SavedSearch, make_engine, session_factory, upgrade
from tender_pipeline.db.migrate import VERSION_TABLE, downgrade
from tests.db_urls import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with database_url(request.param, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _search(sid: str = "a" * 32) -> SavedSearch:
    return SavedSearch(id=sid, owner_hash="f" * 64, name="roads", params={"q": "road works"}, delivery="feed",
                       target="", feed_key="k")


def _match(sid: str, version: str) -> AlertMatch:
    return AlertMatch(saved_search_id=sid, tender_id="T-1", version=version, kind="new", score=0.9,
                      card={"id": "T-1", "title": "Road works"}, batch="run-1")


def test_upgrade_is_idempotent_and_downgrade_removes_everything(engine):
    assert upgrade(engine) == "0001"
    assert upgrade(engine) == "0001"  # a second process starting must be a no-op
    tables = set(inspect(engine).get_table_names())
    assert {"saved_searches", "alert_matches", VERSION_TABLE} <= tables
    assert "alembic_version" not in tables  # never Airflow's version table
    assert downgrade(engine, "base") is None
    assert set(inspect(engine).get_table_names()) <= {VERSION_TABLE}


def test_one_row_per_search_tender_version_and_cascade_on_delete(engine):
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as s:
        s.add(_search())
        s.add(_match("a" * 32, "v1"))
        s.commit()
        s.add(_match("a" * 32, "v2"))  # a corrigendum: another version of the same tender
        s.commit()
        s.add(_match("a" * 32, "v1"))
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
        found = s.scalars(select(AlertMatch)).all()
        assert sorted(m.version for m in found) == ["v1", "v2"]
        assert found[0].matched_at.tzinfo is not None  # aware UTC on every backend
        s.delete(s.get(SavedSearch, "a" * 32))
        s.commit()
        assert s.scalars(select(AlertMatch)).all() == []


def test_models_match_the_migrations(engine):
    """Autogenerate against the migrated DB finds nothing to do: models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tender_pipeline.db import Base

    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                                Base.metadata)
    assert diff == []
