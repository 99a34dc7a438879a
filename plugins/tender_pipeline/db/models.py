"""Tables of saved searches and of the alerts they produced.

One ``alert_matches`` row per (saved search, tender, version) — the unique
constraint is what makes a rerun, retry or backfill notify once. ``version``
is the tender's content hash, so a corrigendum (new content, same tender id)
is a new row, sent as an ``update``. The row carries its delivery state:
``pending`` until delivered, then ``sent``, ``parked`` (gave up, with
``reason``) or ``feed`` (feed-only searches deliver nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class SavedSearch(Base):
    __tablename__ = "saved_searches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_hash: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the owner token
    name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # /search's query and filters
    delivery: Mapped[str] = mapped_column(String(16))  # webhook | email | feed
    target: Mapped[str] = mapped_column(String(2048), default="")  # webhook URL or email address
    webhook_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)  # HMAC key
    feed_key: Mapped[str] = mapped_column(String(64))  # read-only capability in the feed URL
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    matches: Mapped[list[AlertMatch]] = relationship(back_populates="saved_search", cascade="all, delete-orphan",
                                                     passive_deletes=True)


class AlertMatch(Base):
    __tablename__ = "alert_matches"
    __table_args__ = (
        UniqueConstraint("saved_search_id", "tender_id", "version", name="uq_alert_match_version"),
        Index("ix_alert_matches_search_status", "saved_search_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    saved_search_id: Mapped[str] = mapped_column(ForeignKey("saved_searches.id", ondelete="CASCADE"))
    tender_id: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # new | update
    score: Mapped[float] = mapped_column(Float)  # 0 for an update sent only because the search followed it
    card: Mapped[dict[str, Any]] = mapped_column(JSON)  # the result fields as /search shows them
    batch: Mapped[str] = mapped_column(String(256))  # the ingest run that brought this version
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | parked | feed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    saved_search: Mapped[SavedSearch] = relationship(back_populates="matches")
