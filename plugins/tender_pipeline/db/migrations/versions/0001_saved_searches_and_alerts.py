"""saved searches and alert matches

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_searches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("webhook_secret", sa.String(64), nullable=True),
        sa.Column("feed_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_saved_searches_owner_hash", "saved_searches", ["owner_hash"])
    op.create_table(
        "alert_matches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("saved_search_id", sa.String(32),
                  sa.ForeignKey("saved_searches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tender_id", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("batch", sa.String(256), nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("saved_search_id", "tender_id", "version", name="uq_alert_match_version"),
    )
    op.create_index("ix_alert_matches_search_status", "alert_matches", ["saved_search_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_alert_matches_search_status", table_name="alert_matches")
    op.drop_table("alert_matches")
    op.drop_index("ix_saved_searches_owner_hash", table_name="saved_searches")
    op.drop_table("saved_searches")
