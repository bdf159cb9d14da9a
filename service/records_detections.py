"""Detections in the records database: stored from the outbox, read back typed, queued for review, expired.

    db.apply_outbox([det, ...])      # what the outbox flusher calls: new detections, then the cascade's verdicts
    db.get_detection(id)             # -> service.detection.Detection, or None
    db.queue(verdict="uncertain")    # the review queue, oldest first, one detection per image
    db.prune(retention_days=30)      # forget unlabelled kept images past retention

Kept review images are rows of the data pipeline's `images` table (source "service") whose bytes the
inference worker already put in its content-addressed object store, hashed (phash) from the image it
decoded; a moderator's label becomes a LabelEvent through Store.set_label and flows into the next
snapshot like any other image.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select, update

from model.etl.db import Image, LabelEvent, Sighting, utcnow
from model.etl.objects import object_key
from model.etl.store import StoreError
from service.detection import Detection, ImageFacts, ModelRef, Provenance
from service.tables import DetectionRow, Feedback, aware

log = logging.getLogger(__name__)

NO_PHASH = "0" * 16  # a detection queued without a hash (by an older worker): a nicety, not a reason to lose it


def row_values(d: Detection) -> dict:
    """The detections row of `d`, as column values (the flusher inserts many at once)."""
    name, version = d.deciding_model
    return dict(
        id=d.id,
        sha256=d.sha256,
        score=d.score,
        verdict=d.verdict,
        stage=d.stage,
        model_name=name,
        model_version=version,
        api_key_id=d.api_key_id,
        created_at=d.created_at,
        width=d.image.width,
        height=d.image.height,
        size_bytes=d.size_bytes,
        provenance=d.provenance.model_dump(),
        kept=d.kept_for_review,
    )


def detection_of_row(r: DetectionRow) -> Detection:
    """A stored detection; `model` is the one that decided, and no answer-only field (thresholds, latency) is set."""
    return Detection(
        id=r.id,
        score=r.score,
        verdict=r.verdict,
        model=ModelRef(name=r.model_name, version=r.model_version),
        stage=r.stage,
        provenance=Provenance(**(r.provenance or {})),
        image=ImageFacts(sha256=r.sha256, width=r.width, height=r.height),
        kept_for_review=r.kept,
        api_key_id=r.api_key_id,
        created_at=aware(r.created_at),
        size_bytes=r.size_bytes,
    )


def image_values(d: Detection) -> dict:
    """The images row of a kept detection, as column values."""
    prov = d.provenance
    return dict(
        sha256=d.sha256,
        object_key=object_key(d.sha256),
        size_bytes=d.size_bytes,
        width=d.image.width,
        height=d.image.height,
        phash=d.phash or NO_PHASH,
        source="service",
        origin=f"detection:{d.id}",
        c2pa=prov.c2pa,
        iptc_digital_source_type=prov.iptc_digital_source_type,
        generator=prov.generator[:200] if prov.generator else None,
        software=prov.software[:200] if prov.software else None,
        ai_hint=prov.ai_hint,
    )


class DetectionRecords:
    """The detection half of service.records.Records (which gives it `store` and `session`)."""

    def apply_outbox(self, rows: Iterable[Detection]) -> int:
        """Store detections from the outbox; returns how many were new. A fast-stage detection already stored
        is skipped (a flush retried after a crash repeats nothing); a cascade verdict (stage qwen) replaces the
        score, verdict, stage and deciding model of the detection it follows, whichever of the two came first."""
        rows = list(rows)
        if not rows:
            return 0
        with self.session("recording detections") as s:
            present = set(s.scalars(select(DetectionRow.id).where(DetectionRow.id.in_([d.id for d in rows]))))
            # One query for the kept images already stored and one multi-row insert per table, instead of ORM
            # objects with a lookup and a flush per kept image: the flusher runs in the HTTP process, and those
            # round trips were its largest cost per image.
            kept = {d.sha256 for d in rows if d.kept_for_review and d.id not in present}
            images = set(s.scalars(select(Image.sha256).where(Image.sha256.in_(kept)))) if kept else set()
            new_rows: dict[str, dict] = {}
            new_images: list[dict] = []
            for d in rows:
                if d.id not in present:
                    new_rows[d.id] = row_values(d)
                    present.add(d.id)
                    if d.kept_for_review and d.sha256 not in images:
                        new_images.append(image_values(d))
                        images.add(d.sha256)  # a second detection of the same image in this batch adds no row
                elif d.stage != "fast":
                    name, version = d.deciding_model
                    decided = dict(
                        score=d.score, verdict=d.verdict, stage=d.stage, model_name=name, model_version=version
                    )
                    if d.id in new_rows:  # its fast detection is in this flush too
                        new_rows[d.id].update(decided)
                    else:
                        stored = s.get(DetectionRow, d.id)
                        for k, v in decided.items():
                            setattr(stored, k, v)
            if new_images:
                s.execute(insert(Image), new_images)
            if new_rows:
                s.execute(insert(DetectionRow), list(new_rows.values()))
        return len(new_rows)

    def get_detection(self, detection_id: str) -> Detection | None:
        with self.session("reading a detection") as s:
            d = s.get(DetectionRow, detection_id)
            return detection_of_row(d) if d else None

    def count_detections(self) -> int:
        with self.session("counting detections") as s:
            return s.scalar(select(func.count()).select_from(DetectionRow)) or 0

    # --- the review queue ---

    def _queue_query(self, verdict: str | None, model_version: str | None, min_score, max_score):
        # An image labelled through any of its detections is done: the queue is of images, not requests.
        q = select(DetectionRow).where(DetectionRow.kept.is_(True), ~DetectionRow.sha256.in_(select(Feedback.sha256)))
        if verdict:
            q = q.where(DetectionRow.verdict == verdict)
        if model_version:
            q = q.where(DetectionRow.model_version == model_version)
        if min_score is not None:
            q = q.where(DetectionRow.score >= min_score)
        if max_score is not None:
            q = q.where(DetectionRow.score <= max_score)
        return q

    def queue(
        self,
        verdict: str | None = None,
        model_version: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        ai_hint: bool | None = None,
        limit: int = 50,
    ) -> list[Detection]:
        q = self._queue_query(verdict, model_version, min_score, max_score)
        with self.session("reading the review queue") as s:
            rows, seen = [], set()
            for d in s.scalars(q.order_by(DetectionRow.created_at).limit(limit * 4)):
                if d.sha256 not in seen:  # the same image sent twice is reviewed once
                    seen.add(d.sha256)
                    rows.append(detection_of_row(d))
        if ai_hint is not None:  # a JSON field: filtered here rather than in SQL, portably
            rows = [r for r in rows if r.provenance.ai_hint == ai_hint]
        return rows[:limit]

    def queue_size(self) -> int:
        with self.session("counting the review queue") as s:
            sub = self._queue_query(None, None, None, None).subquery()
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
                select(DetectionRow).where(
                    DetectionRow.kept.is_(True),
                    DetectionRow.created_at < cutoff,
                    ~DetectionRow.sha256.in_(select(Feedback.sha256)),
                )
            ).all()
            shas = {d.sha256 for d in stale}
            s.execute(update(DetectionRow).where(DetectionRow.id.in_([d.id for d in stale])).values(kept=False))
            # An image still kept by a newer detection, labelled, or seen by ingest stays.
            still_kept = set(
                s.scalars(select(DetectionRow.sha256).where(DetectionRow.sha256.in_(shas), DetectionRow.kept))
            )
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
