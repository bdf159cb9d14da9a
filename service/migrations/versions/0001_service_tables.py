"""service tables: detections, feedback, api_keys, moderators

Stores made before this revision got these tables from create_all; such a table is adopted as it
is (same columns), so upgrading an existing deployment never fails on "table already exists".

Revision ID: s0001
Revises:
Create Date: 2026-12-06 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("detections"):
        op.create_table(
            "detections",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
            sa.Column("verdict", sa.String(length=16), nullable=False),
            sa.Column("stage", sa.String(length=16), nullable=False),
            sa.Column("model_name", sa.String(length=200), nullable=False),
            sa.Column("model_version", sa.String(length=32), nullable=False),
            sa.Column("api_key_id", sa.String(length=32), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("width", sa.Integer(), nullable=False),
            sa.Column("height", sa.Integer(), nullable=False),
            sa.Column("size_bytes", sa.Integer(), nullable=False),
            sa.Column("provenance", sa.JSON(), nullable=True),
            sa.Column("kept", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        for column in ("sha256", "verdict", "model_version", "created_at", "kept"):
            op.create_index(op.f(f"ix_detections_{column}"), "detections", [column])
    if _missing("feedback"):
        op.create_table(
            "feedback",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("detection_id", sa.String(length=36), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("label", sa.String(length=8), nullable=False),
            sa.Column("given_by", sa.String(length=200), nullable=False),
            sa.Column("held_back", sa.Boolean(), nullable=False),
            sa.Column("note", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        for column in ("detection_id", "sha256", "given_by", "created_at"):
            op.create_index(op.f(f"ix_feedback_{column}"), "feedback", [column])
    if _missing("api_keys"):
        op.create_table(
            "api_keys",
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("key_hash", sa.String(length=64), nullable=False),
            sa.Column("rate_per_minute", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("key_hash"),
        )
    if _missing("moderators"):
        op.create_table(
            "moderators",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("password_hash", sa.String(length=300), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )


def downgrade() -> None:
    for table in ("moderators", "api_keys", "feedback", "detections"):
        op.drop_table(table)
