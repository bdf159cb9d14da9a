"""The service's own tables (detections, feedback, API keys, moderators, drift reports, rate buckets) and
their migrations, beside the data pipeline's (model/etl/db.py) in the same database.

Tables of its own live in their own metadata with their own Alembic history (service/migrations, version
table alembic_version_service), so the ETL's migration history stays the ETL's. Who creates them: on the
embedded SQLite store (a laptop, `aidetect up`) opening it does; on a shared server database (PostgreSQL)
nothing that serves migrates: `aidetect records migrate` does, once, before the replicas roll (the
deployment's ArgoCD PreSync job), and opening a store that is behind says so instead of racing other
replicas to ALTER it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from model.etl.db import utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_service"


class NotFound(LookupError):
    """No such detection / key / account; the message says which."""


class Base(DeclarativeBase):
    pass


class DetectionRow(Base):
    """A stored service.detection.Detection (the deciding model's name and version, the final verdict)."""

    __tablename__ = "detections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    score: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(32), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    provenance: Mapped[dict | None] = mapped_column(JSON)
    kept: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class Feedback(Base):
    __tablename__ = "feedback"
    # One row per caller and Idempotency-Key (service/idempotency.py): a replica that replays a request another
    # one committed fails here instead of storing the label twice. Rows without a key (NULL) never collide.
    __table_args__ = (Index("uq_feedback_idempotency_key", "given_by", "idempotency_key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    detection_id: Mapped[str] = mapped_column(String(36), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(8))
    given_by: Mapped[str] = mapped_column(String(200), index=True)  # "moderator:NAME" or "key:ID"
    held_back: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))  # as the caller sent it; kept with the row


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Moderator(Base):
    __tablename__ = "moderators"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DriftReport(Base):
    """What `aidetect monitor drift` measured, kept where every replica can read it (its /metrics exports
    the newest as aidetect_drift_psi), wherever the command ran: a CronJob's pod has no disk they share."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    model: Mapped[str] = mapped_column(String(300))
    report: Mapped[dict] = mapped_column(JSON)


class RateBucket(Base):
    """One token bucket per API key, client or sign-in name, shared by every replica (service.ratelimit):
    with buckets in each process, N replicas would give a key N times its limit."""

    __tablename__ = "rate_buckets"

    who: Mapped[str] = mapped_column(String(300), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float, index=True)  # the database's clock, epoch seconds: one clock for all
    allowed: Mapped[bool] = mapped_column(Boolean)  # whether the last take got a token


@dataclass(frozen=True)
class KeyRow:
    id: str
    name: str
    key_hash: str
    rate_per_minute: int | None
    revoked: bool


def aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # SQLite gives naive datetimes back


def embedded(url: str) -> bool:
    """The local embedded store (SQLite, one machine) creates its own tables; a server database does not."""
    return url.startswith("sqlite")


def _quiet_alembic() -> None:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # as model.etl.db.migrate: quiet unless debugging
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _alembic_config(engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine) -> None:
    """`alembic upgrade head` for the service tables (the ETL's own migrations must have run first)."""
    _quiet_alembic()
    from alembic import command

    from model.etl.db import _MIGRATING

    with _MIGRATING:
        command.upgrade(_alembic_config(engine), "head")


def pending_migrations(engine) -> list[str]:
    """What `aidetect records migrate` would still do here: '<history>: at X, head Y' per history behind."""
    _quiet_alembic()
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from model.etl.db import alembic_config

    behind = []
    with engine.connect() as conn:
        for name, cfg, table in (
            ("data pipeline", alembic_config(engine), "alembic_version"),
            ("service", _alembic_config(engine), VERSION_TABLE),
        ):
            current = MigrationContext.configure(conn, opts={"version_table": table}).get_current_revision()
            head = ScriptDirectory.from_config(cfg).get_current_head()
            if current != head:
                behind.append(f"{name}: at {current or 'nothing'}, head {head}")
    return behind


