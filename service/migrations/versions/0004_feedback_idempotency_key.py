"""feedback.idempotency_key: a replayed label write finds the row it stored instead of storing another

Revision ID: s0004
Revises: s0003
Create Date: 2026-12-06 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0004"
down_revision = "s0003"
branch_labels = None
depends_on = None

INDEX = "uq_feedback_idempotency_key"


def upgrade() -> None:
    # A store whose tables create_all made from these models already has both (see 0001).
    inspector = sa.inspect(op.get_bind())
    if "idempotency_key" not in {c["name"] for c in inspector.get_columns("feedback")}:
        # Nullable, no default: adding it rewrites nothing, on SQLite and PostgreSQL alike.
        op.add_column("feedback", sa.Column("idempotency_key", sa.String(length=255), nullable=True))
    if INDEX not in {i["name"] for i in inspector.get_indexes("feedback")}:
        # Every existing row has NULL here, and NULLs never collide: building it cannot fail on old data.
        op.create_index(INDEX, "feedback", ["given_by", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="feedback")
    op.drop_column("feedback", "idempotency_key")
