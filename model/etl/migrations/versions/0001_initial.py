"""initial tables: images, sightings, labels, cursors, snapshots

Revision ID: 0001
Revises:
Create Date: 2026-11-25 09:33:31.265291
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
        "cursors",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("query", sa.String(length=200), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "query"),
    )
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("phash", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=1000), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("c2pa", sa.JSON(), nullable=True),
        sa.Column("iptc_digital_source_type", sa.String(length=64), nullable=True),
        sa.Column("generator", sa.String(length=200), nullable=True),
        sa.Column("software", sa.String(length=200), nullable=True),
        sa.Column("ai_hint", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=True),
        sa.Column("label_origin", sa.String(length=16), nullable=True),
        sa.Column("source_split", sa.String(length=16), nullable=True),
        sa.Column("split", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_label"), ["label"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_phash"), ["phash"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_split"), ["split"], unique=False)

    op.create_table(
        "snapshots",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
        sa.UniqueConstraint("digest"),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("moderator", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["images.sha256"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_labels_sha256"), ["sha256"], unique=False)

    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("query", sa.String(length=200), nullable=True),
        sa.Column("post_id", sa.String(length=200), nullable=False),
        sa.Column("media_key", sa.String(length=200), nullable=False),
        sa.Column("post_url", sa.String(length=1000), nullable=True),
        sa.Column("media_url", sa.String(length=2000), nullable=True),
        sa.Column("author_hash", sa.String(length=64), nullable=True),
        sa.Column("posted_at", sa.String(length=40), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("license", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_sha256"],
            ["images.sha256"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "post_id", "media_key", name="uq_sighting"),
    )
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sightings_image_sha256"), ["image_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_sightings_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sightings_status"))
        batch_op.drop_index(batch_op.f("ix_sightings_image_sha256"))

    op.drop_table("sightings")
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_labels_sha256"))

    op.drop_table("labels")
    op.drop_table("snapshots")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_split"))
        batch_op.drop_index(batch_op.f("ix_images_source"))
        batch_op.drop_index(batch_op.f("ix_images_phash"))
        batch_op.drop_index(batch_op.f("ix_images_label"))

    op.drop_table("images")
    op.drop_table("cursors")
