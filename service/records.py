"""The service's records: detections, feedback, API keys and moderator accounts, in the data store.

    db = Records.open(settings)              # same database and object store as model/etl
    db.apply_outbox([...])                   # what the outbox flusher calls, once per batch
    db.add_feedback(detection_id, "ai", given_by="moderator:alice")   # committed before it returns
    db.queue(verdict="uncertain")            # the review queue, oldest first

Kept review images are rows of the data pipeline's `images` table (source "service") whose bytes
are in its content-addressed object store, so a moderator's label becomes a LabelEvent through
Store.set_label and flows into the next snapshot like any other. Tables of its own live in their
own metadata with their own Alembic history (service/migrations, version table
alembic_version_service), so the ETL's migration history stays the ETL's.

Who creates the tables: on the embedded SQLite store (a laptop, `aidetect up`) opening it does, as
it always has. On a shared server database (PostgreSQL) nothing that serves migrates: `aidetect
records migrate` does, once, before the replicas roll (the deployment's ArgoCD PreSync job), and
opening a store that is behind says so instead of racing other replicas to ALTER it.

A simple agreement rule holds back labels of a moderator who often disagrees with the others:
once they have labelled MIN_OVERLAP images that someone else labelled too, and agree on fewer
than MIN_AGREEMENT of them, their labels are kept as feedback but not passed to training.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from model.etl.db import Image, LabelEvent, Sighting, utcnow
from model.etl.store import Store, StoreError, default_urls, masked
from model.manifest import normalise_label

MIN_OVERLAP = 5
MIN_AGREEMENT = 0.6
# What a verdict claims, in the label vocabulary; "uncertain" claims nothing.
VERDICT_LABEL = {"ai_generated": "ai", "real": "real"}


log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_service"

# An outbox row that changes an earlier detection instead of adding one (see stage_update).
STAGE_UPDATE = "stage_update"


def stage_update(result: dict) -> dict:
    """The outbox row that records a cascade answer (service.cascade.combine) on its detection: the
    score, verdict and stage the caller got, and the model that decided."""
    second = result.get("second_model") or {}
    return {
        "op": STAGE_UPDATE,
        "id": result["id"],
        "score": float(result["score"]),
        "verdict": result["verdict"],
        "stage": result["stage"],
        "model_name": second.get("name"),
        "model_version": second.get("version"),
    }


class NotFound(LookupError):
    """No such detection / key / account; the message says which."""


class Base(DeclarativeBase):
    pass


class Detection(Base):
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

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    detection_id: Mapped[str] = mapped_column(String(36), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(8))
    given_by: Mapped[str] = mapped_column(String(200), index=True)  # "moderator:NAME" or "key:ID"
    held_back: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


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


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # SQLite gives naive datetimes back


def agreement(pairs: list[tuple[str, str]]) -> float | None:
    """Share of (mine, theirs) label pairs that agree; None when there are none."""
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)


def held_back_by_rule(pairs: list[tuple[str, str]]) -> bool:
    rate = agreement(pairs)
    return rate is not None and len(pairs) >= MIN_OVERLAP and rate < MIN_AGREEMENT


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


class Records:
    def __init__(self, store: Store, create: bool = True):
        self.store = store
        if create:  # embedded mode only (see open)
            with store.guard("creating the service tables"):
                Base.metadata.create_all(store.engine)

    @classmethod
    def open(cls, settings=None, url: str | None = None, objects: str | None = None) -> Records:
        if url is None:
            url = default_urls(settings)[0]
        local = embedded(url)
        store = Store.open(url=url, objects=objects, settings=settings, upgrade=local)
        if not local:
            with store.guard("checking the schema"):
                behind = pending_migrations(store.engine)
            if behind:
                store.close()
                raise StoreError(
                    f"database {masked(url)} is not migrated ({'; '.join(behind)}): run `aidetect records migrate` "
                    "(the deployment's PreSync job does) before serving"
                )
        return cls(store, create=local)

    @classmethod
    def migrate_store(cls, settings=None, url: str | None = None) -> list[str]:
        """Bring a database to head, data pipeline then service tables; returns what was behind."""
        if url is None:
            url = default_urls(settings)[0]
        store = Store.open(url=url, settings=settings, upgrade=False)
        try:
            with store.guard("reading the schema version"):
                before = pending_migrations(store.engine)
            from model.etl.db import migrate as migrate_etl

            with store.guard("migrating the data pipeline tables"):
                migrate_etl(store.engine)
            with store.guard("migrating the service tables"):
                migrate(store.engine)
            return before
        finally:
            store.close()

    def close(self) -> None:
        self.store.close()

    def session(self, doing: str):
        return self.store.session(doing)

    # --- detections ---

    def insert_detections(self, rows: Iterable[dict]) -> int:
        """Insert detection records (dicts from api.detection_record); ids already present are skipped,
        so a flush retried after a crash never duplicates. Kept images get an `images` row."""
        rows = list(rows)
        if not rows:
            return 0
        for r in rows:  # bytes first: a row never points at an object that is not there
            if "image_b64" in r:
                with self.store.guard("keeping a review image"):
                    self.store.objects.put(r["sha256"], base64.b64decode(r["image_b64"]))
        rows = [{k: v for k, v in r.items() if k != "image_b64"} for r in rows]
        with self.session("recording detections") as s:
            ids = [r["id"] for r in rows]
            present = set(s.scalars(select(Detection.id).where(Detection.id.in_(ids))))
            new = [r for r in rows if r["id"] not in present]
            for r in new:
                s.add(Detection(**{**r, "created_at": dt.datetime.fromisoformat(r["created_at"])}))
            for r in new:
                if r["kept"] and s.get(Image, r["sha256"]) is None:
                    s.add(self._image_row(r))
                    s.flush()
        return len(new)

    def apply_outbox(self, rows: Iterable[dict]) -> int:
        """What the outbox flusher calls: new detections, then the cascade's later verdicts on them.
        An update is queued after the detection it changes, so inserting first is always safe."""
        rows = list(rows)
        n = self.insert_detections([r for r in rows if r.get("op") is None])
        self.update_stages([r for r in rows if r.get("op") == STAGE_UPDATE])
        return n

    def update_stages(self, rows: list[dict]) -> None:
        """Set the final score, verdict, stage and deciding model of detections the cascade's second stage
        decided (rows from stage_update). Repeating one is harmless."""
        if not rows:
            return
        with self.session("recording cascade verdicts") as s:
            for r in rows:
                d = s.get(Detection, r["id"])
                if d is None:
                    log.warning("cascade verdict for unknown detection %s dropped", r["id"])
                    continue
                d.score, d.verdict, d.stage = r["score"], r["verdict"], r["stage"]
                if r.get("model_name") and r.get("model_version"):
                    d.model_name, d.model_version = r["model_name"], str(r["model_version"])

    def _image_row(self, r: dict) -> Image:
        from model.etl.hashing import phash_hex
        from model.etl.objects import object_key
        from model.preprocess import decode_image

        key = object_key(r["sha256"])
        try:
            ph = phash_hex(decode_image(self.store.objects.get(key)))
        except Exception:  # the bytes decoded a moment ago; a hash is a nicety, not a reason to lose the record
            ph = "0" * 16
        prov = r.get("provenance") or {}
        return Image(
            sha256=r["sha256"],
            object_key=key,
            size_bytes=r["size_bytes"],
            width=r["width"],
            height=r["height"],
            phash=ph,
            source="service",
            origin=f"detection:{r['id']}",
            c2pa=prov.get("c2pa"),
            iptc_digital_source_type=prov.get("iptc_digital_source_type"),
            generator=(prov.get("generator") or None) and str(prov["generator"])[:200],
            software=(prov.get("software") or None) and str(prov["software"])[:200],
            ai_hint=bool(prov.get("ai_hint")),
        )

    def get_detection(self, detection_id: str) -> dict | None:
        with self.session("reading a detection") as s:
            d = s.get(Detection, detection_id)
            return _detection_dict(d) if d else None

    def count_detections(self) -> int:
        with self.session("counting detections") as s:
            return s.scalar(select(func.count()).select_from(Detection)) or 0

    # --- feedback ---

    def add_feedback(self, detection_id: str, label: str, given_by: str, note: str | None = None) -> dict:
        """Store a label for a detection, committed before returning; also a LabelEvent when its image was kept
        and the giver is not held back by the agreement rule."""
        norm = normalise_label(label or "")
        if norm is None:
            raise ValueError(f"label {label!r} is not one of ['ai', 'real']")
        with self.session("recording feedback") as s:
            d = s.get(Detection, detection_id)
            if d is None:
                raise NotFound(f"no detection with id {detection_id}")
            pairs = self._pairs(s, given_by, extra=(d.sha256, norm))
            held = held_back_by_rule(pairs)
            fb = Feedback(detection_id=d.id, sha256=d.sha256, label=norm, given_by=given_by, held_back=held, note=note)
            s.add(fb)
            img = s.get(Image, d.sha256)
            if img is not None and not held:
                self.store.set_label(s, img, norm, "moderator", moderator=given_by, note=note)
            s.flush()
            return {
                "id": fb.id,
                "detection_id": d.id,
                "label": norm,
                "given_by": given_by,
                "held_back": held,
                "to_training": img is not None and not held,
            }

    def _pairs(self, s, given_by: str, extra: tuple[str, str] | None = None) -> list[tuple[str, str]]:
        """(my label, someone else's label) for every image both of us labelled; labels already held back
        do not count against anyone, so one contrarian cannot drag the others under the bar."""
        mine = dict(s.execute(select(Feedback.sha256, Feedback.label).where(Feedback.given_by == given_by)).all())
        if extra:
            mine[extra[0]] = extra[1]
        if not mine:
            return []
        others = s.execute(
            select(Feedback.sha256, Feedback.label).where(
                Feedback.sha256.in_(list(mine)), Feedback.given_by != given_by, Feedback.held_back.is_(False)
            )
        ).all()
        return [(mine[sha], lab) for sha, lab in others]

    def agreement_of(self, given_by: str) -> dict:
        with self.session("reading agreement") as s:
            pairs = self._pairs(s, given_by)
        rate, held = agreement(pairs), held_back_by_rule(pairs)
        return {"given_by": given_by, "pairs": len(pairs), "agreement": rate, "held_back": held}

    def feedback_for(self, detection_id: str) -> list[dict]:
        with self.session("reading feedback") as s:
            rows = s.scalars(select(Feedback).where(Feedback.detection_id == detection_id).order_by(Feedback.id))
            return [{"label": f.label, "given_by": f.given_by, "held_back": f.held_back} for f in rows]

    def accuracy(self, limit: int = 500) -> dict:
        """How often the model's verdict matched the most recent `limit` labels (uncertain verdicts apart)."""
        with self.session("computing accuracy") as s:
            rows = s.execute(
                select(Detection.verdict, Feedback.label)
                .join(Detection, Detection.id == Feedback.detection_id)
                .order_by(Feedback.id.desc())
                .limit(limit)
            ).all()
        decided = [(VERDICT_LABEL[v], lab) for v, lab in rows if v in VERDICT_LABEL]
        correct = sum(a == b for a, b in decided)
        return {
            "labels": len(rows),
            "decided": len(decided),
            "correct": correct,
            "accuracy": correct / len(decided) if decided else None,
            "uncertain_labelled": len(rows) - len(decided),
        }

    # --- the review queue ---

    def _queue_query(self, verdict: str | None, model_version: str | None, min_score, max_score, ai_hint):
        # An image labelled through any of its detections is done: the queue is of images, not requests.
        q = select(Detection).where(Detection.kept.is_(True), ~Detection.sha256.in_(select(Feedback.sha256)))
        if verdict:
            q = q.where(Detection.verdict == verdict)
        if model_version:
            q = q.where(Detection.model_version == model_version)
        if min_score is not None:
            q = q.where(Detection.score >= min_score)
        if max_score is not None:
            q = q.where(Detection.score <= max_score)
        return q

    def queue(
        self,
        verdict: str | None = None,
        model_version: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        ai_hint: bool | None = None,
        limit: int = 50,
    ) -> list[dict]:
        q = self._queue_query(verdict, model_version, min_score, max_score, ai_hint)
        with self.session("reading the review queue") as s:
            rows, seen = [], set()
            for d in s.scalars(q.order_by(Detection.created_at).limit(limit * 4)):
                if d.sha256 not in seen:  # the same image sent twice is reviewed once
                    seen.add(d.sha256)
                    rows.append(_detection_dict(d))
        if ai_hint is not None:  # a JSON field: filtered here rather than in SQL, portably
            rows = [r for r in rows if bool((r["provenance"] or {}).get("ai_hint")) == ai_hint]
        return rows[:limit]

    def queue_size(self) -> int:
        with self.session("counting the review queue") as s:
            sub = self._queue_query(None, None, None, None, None).subquery()
            return s.scalar(select(func.count(func.distinct(sub.c.sha256)))) or 0

    def image_bytes(self, sha256: str) -> bytes | None:
        with self.session("reading a kept image") as s:
            img = s.get(Image, sha256)
            key = img.object_key if img else None
        if key is None:
            return None
        try:
            return self.store.objects.get(key)
        except (OSError, StoreError):
            return None

    def prune(self, retention_days: float, now: dt.datetime | None = None) -> dict:
        """Forget kept images of unlabelled detections older than the retention period: their `images` row
        (when only the service ever saw it and nobody labelled it) and their bytes."""
        cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
        deleted_objects = 0
        with self.session("pruning the review queue") as s:
            stale = s.scalars(
                select(Detection).where(
                    Detection.kept.is_(True),
                    Detection.created_at < cutoff,
                    ~Detection.sha256.in_(select(Feedback.sha256)),
                )
            ).all()
            shas = {d.sha256 for d in stale}
            s.execute(update(Detection).where(Detection.id.in_([d.id for d in stale])).values(kept=False))
            # An image still kept by a newer detection, labelled, or seen by ingest stays.
            still_kept = set(s.scalars(select(Detection.sha256).where(Detection.sha256.in_(shas), Detection.kept)))
            labelled = set(s.scalars(select(LabelEvent.sha256).where(LabelEvent.sha256.in_(shas))))
            sighted = set(s.scalars(select(Sighting.image_sha256).where(Sighting.image_sha256.in_(shas))))
            doomed = s.scalars(
                select(Image).where(
                    Image.sha256.in_(shas - still_kept - labelled - sighted),
                    Image.source == "service",
                    Image.label.is_(None),
                )
            ).all()
            keys = [img.object_key for img in doomed]
            s.execute(delete(Image).where(Image.sha256.in_([img.sha256 for img in doomed])))
        for key in keys:  # after the commit: a crash in between leaves bytes without a row, never the reverse
            deleted_objects += int(self.store.objects.delete(key))
        return {"detections_expired": len(stale), "images_deleted": len(keys), "objects_deleted": deleted_objects}

    # --- drift reports ---

    def add_drift_report(self, report: dict) -> None:
        with self.session("recording a drift report") as s:
            s.add(DriftReport(model=str(report.get("model", ""))[:300], report=report))

    def latest_drift_report(self) -> dict | None:
        with self.session("reading the latest drift report") as s:
            row = s.scalar(select(DriftReport).order_by(DriftReport.id.desc()).limit(1))
            return None if row is None else {**row.report, "measured_at": _aware(row.created_at).isoformat()}

    # --- API keys ---

    def add_key(self, key_id: str, name: str, key_hash: str, rate_per_minute: int | None = None) -> None:
        with self.session("creating an API key") as s:
            s.add(ApiKey(id=key_id, name=name, key_hash=key_hash, rate_per_minute=rate_per_minute))

    def revoke_key(self, key_id: str) -> None:
        with self.session("revoking an API key") as s:
            k = s.get(ApiKey, key_id)
            if k is None:
                raise NotFound(f"no API key with id {key_id}; `aidetect keys list` shows them")
            if k.revoked_at is None:
                k.revoked_at = utcnow()

    def keys(self) -> list[KeyRow]:
        with self.session("reading API keys") as s:
            return [
                KeyRow(k.id, k.name, k.key_hash, k.rate_per_minute, k.revoked_at is not None)
                for k in s.scalars(select(ApiKey).order_by(ApiKey.created_at))
            ]

    # --- moderators ---

    def set_moderator(self, name: str, password_hash: str) -> None:
        with self.session("saving a moderator") as s:
            m = s.get(Moderator, name)
            if m is None:
                s.add(Moderator(name=name, password_hash=password_hash))
            else:
                m.password_hash = password_hash

    def moderator_hash(self, name: str) -> str | None:
        with self.session("reading a moderator") as s:
            m = s.get(Moderator, name)
            return m.password_hash if m else None

    def moderators(self) -> list[str]:
        with self.session("listing moderators") as s:
            return list(s.scalars(select(Moderator.name).order_by(Moderator.name)))

    def remove_moderator(self, name: str) -> None:
        with self.session("removing a moderator") as s:
            if s.get(Moderator, name) is None:
                raise NotFound(f"no moderator named {name!r}")
            s.execute(delete(Moderator).where(Moderator.name == name))


def _detection_dict(d: Detection) -> dict:
    return {
        "id": d.id,
        "sha256": d.sha256,
        "score": d.score,
        "verdict": d.verdict,
        "stage": d.stage,
        "model": {"name": d.model_name, "version": d.model_version},
        "api_key_id": d.api_key_id,
        "created_at": _aware(d.created_at).isoformat(),
        "image": {"width": d.width, "height": d.height, "size_bytes": d.size_bytes},
        "provenance": d.provenance,
        "kept": d.kept,
    }
