"""drift_reports: what `aidetect monitor drift` measured, for every replica's /metrics

Revision ID: s0002
Revises: s0001
Create Date: 2026-12-06 03:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An embedded store made by create_all already has it (see 0001).
    if sa.inspect(op.get_bind()).has_table("drift_reports"):
        return
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_drift_reports_created_at"), "drift_reports", ["created_at"])


def downgrade() -> None:
    op.drop_table("drift_reports")
