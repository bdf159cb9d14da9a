"""The ETL tables. Their history lives in migrations/ (Alembic); `migrate(url)` upgrades a database.

    engine = connect("sqlite:////srv/aidetect/etl.db")   # or postgresql://user@host/db
    migrate(engine)                                        # alembic upgrade head

Tables:
    images      one row per distinct image (sha256): object key, size, perceptual hash, provenance
                fields, the current label and where it came from, and its sticky snapshot split
    sightings   every time an image (or a failed download) was seen: source, post id and URL,
                hashed author, fetched time, licence, and what ingest did with it (status, reason)
    labels      label history: dataset, moderator and weak labels, newest last
    cursors     resumable per (source, query) collection state
    snapshots   frozen manifests: version, content digest, counts
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"

LABEL_ORIGINS = ("dataset", "moderator", "weak")
# Which origin may overwrite which: a moderator's word beats a data set's, which beats metadata hints.
ORIGIN_RANK = {"weak": 0, "dataset": 1, "moderator": 2}
STATUSES = ("stored", "duplicate", "near_duplicate", "quarantined", "failed")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class Image(Base):
    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    phash: Mapped[str] = mapped_column(String(16), index=True)  # 64-bit DCT hash, hex
    source: Mapped[str] = mapped_column(String(64), index=True)  # where it was first seen
    origin: Mapped[str | None] = mapped_column(String(1000))  # upstream sub-origin or post URL
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # provenance (model/provenance.py)
    c2pa: Mapped[dict | None] = mapped_column(JSON)
    iptc_digital_source_type: Mapped[str | None] = mapped_column(String(64))
    generator: Mapped[str | None] = mapped_column(String(200))
    software: Mapped[str | None] = mapped_column(String(200))
    ai_hint: Mapped[bool] = mapped_column(Boolean, default=False)
    # current label (history in `labels`)
    label: Mapped[str | None] = mapped_column(String(8), index=True)
    label_origin: Mapped[str | None] = mapped_column(String(16))
    # splits: what an upstream data set said, and the sticky one snapshots assign once
    source_split: Mapped[str | None] = mapped_column(String(16))
    split: Mapped[str | None] = mapped_column(String(16), index=True)


class Sighting(Base):
    __tablename__ = "sightings"
    __table_args__ = (UniqueConstraint("source", "post_id", "media_key", name="uq_sighting"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    query: Mapped[str | None] = mapped_column(String(200))
    post_id: Mapped[str] = mapped_column(String(200))
    media_key: Mapped[str] = mapped_column(String(200), default="")
    post_url: Mapped[str | None] = mapped_column(String(1000))
    media_url: Mapped[str | None] = mapped_column(String(2000))
    author_hash: Mapped[str | None] = mapped_column(String(64))
    posted_at: Mapped[str | None] = mapped_column(String(40))  # as the platform gave it (ISO 8601)
    fetched_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    license: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why quarantined / failed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    content_sha256: Mapped[str | None] = mapped_column(String(64))  # sha256 of the bytes fetched
    image_sha256: Mapped[str | None] = mapped_column(ForeignKey("images.sha256"), index=True)


class LabelEvent(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    label: Mapped[str] = mapped_column(String(8))
    origin: Mapped[str] = mapped_column(String(16))
    moderator: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Cursor(Base):
    __tablename__ = "cursors"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    query: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Snapshot(Base):
    __tablename__ = "snapshots"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(1000))
    counts: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


CONNECT_TIMEOUT_S = 5
PARTITION_BOUNDS = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,  # an idle pooled connection to a vanished host is found dead within ~25 s ...
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ... and one whose query goes unacknowledged, within 30 s (ms)
}


def connect(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout so a reader never blocks ingest."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # libpq waits for a host that does not answer as long as TCP does (minutes to connect, about 15 minutes
    # on a connection already open): a partitioned database should fail a request in seconds to tens of
    # seconds, and let the outbox and the last key copy carry on. (The rate limiter does not wait even that
    # long: service/ratelimit.py.)
    return create_engine(_with_driver(url), pool_pre_ping=True, connect_args=dict(PARTITION_BOUNDS))


def _with_driver(url: str) -> str:
    """postgresql:// means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3, which we do not ship)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def alembic_config(engine_or_url):
    from alembic.config import Config

    # A wheel ships the migrations (packages) but not alembic.ini; everything it sets is set here too.
    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if isinstance(engine_or_url, str):
        cfg.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    else:
        cfg.attributes["engine"] = engine_or_url
    return cfg


# Alembic's `context` is module state: two threads migrating at once (the service's pruner and its
# first request both open the store) trip over each other's configuration.
_MIGRATING = threading.Lock()


def migrate(engine_or_url, revision: str = "head") -> None:
    import logging

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # every CLI call opens the store: keep it quiet
        logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command

    with _MIGRATING:
        command.upgrade(alembic_config(engine_or_url), revision)
