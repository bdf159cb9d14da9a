"""rate_buckets: token buckets every replica shares, so a key's limit holds across replicas

Revision ID: s0003
Revises: s0002
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An embedded store made by create_all already has it (see 0001).
    if sa.inspect(op.get_bind()).has_table("rate_buckets"):
        return
    op.create_table(
        "rate_buckets",
        sa.Column("who", sa.String(length=300), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("who"),
    )
    op.create_index(op.f("ix_rate_buckets_at"), "rate_buckets", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_buckets_at"), table_name="rate_buckets")
    op.drop_table("rate_buckets")
