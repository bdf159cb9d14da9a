"""Labels on detections, and the agreement rule that holds back a moderator who often disagrees.

    db.add_feedback(detection_id, "ai", given_by="moderator:alice")   # committed before it returns
    db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="8e03...")   # a repeat returns the stored row
    db.agreement_of("moderator:alice")
    db.accuracy()

Once a moderator has labelled MIN_OVERLAP images that someone else labelled too, and agrees on fewer than
MIN_AGREEMENT of them, their labels are kept as feedback but not passed to training.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from model.etl.db import Image
from model.etl.store import StoreError
from model.manifest import normalise_label
from service.idempotency import HEADER, KeyReused
from service.tables import DetectionRow, Feedback, NotFound

MIN_OVERLAP = 5
MIN_AGREEMENT = 0.6
# What a verdict claims, in the label vocabulary; "uncertain" claims nothing.
VERDICT_LABEL = {"ai_generated": "ai", "real": "real"}


def agreement(pairs: list[tuple[str, str]]) -> float | None:
    """Share of (mine, theirs) label pairs that agree; None when there are none."""
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)


def held_back_by_rule(pairs: list[tuple[str, str]]) -> bool:
    rate = agreement(pairs)
    return rate is not None and len(pairs) >= MIN_OVERLAP and rate < MIN_AGREEMENT


class _KeyTaken(Exception):
    """Another request with this caller's key committed first (the unique index said so)."""


def _matches(row: Feedback, detection_id: str, label: str, note: str | None) -> str | None:
    """What differs between a stored keyed label and a new request with the same key; None when nothing."""
    for name, stored, sent in (("detection_id", row.detection_id, detection_id), ("label", row.label, label)):
        if stored != sent:
            return f"{name} {sent!r} (it stored {stored!r})"
    return None if row.note == note else "note"


class FeedbackRecords:
    """The feedback half of service.records.Records (which gives it `store` and `session`)."""

    def add_feedback(
        self, detection_id: str, label: str, given_by: str, note: str | None = None, idempotency_key: str | None = None
    ) -> dict:
        """Store a label for a detection, committed before returning; also a LabelEvent when its image was kept
        and the giver is not held back by the agreement rule.

        With an idempotency key (service/idempotency.py) a repeat of a stored request returns that row
        ("replayed": True) and stores nothing; the same key for another request raises KeyReused."""
        norm = normalise_label(label or "")
        if norm is None:
            raise ValueError(f"label {label!r} is not one of ['ai', 'real']")
        if idempotency_key is not None:
            stored = self._replay(detection_id, norm, given_by, note, idempotency_key)
            if stored is not None:
                return stored
        try:
            return self._insert(detection_id, norm, given_by, note, idempotency_key)
        except _KeyTaken:
            # Another replica committed this key between our look and our insert (the unique index waited for
            # it): its row is the answer, as it would have been had we looked a moment later.
            stored = self._replay(detection_id, norm, given_by, note, idempotency_key)
            if stored is None:  # cannot happen while rows are never deleted; say so rather than guess
                raise StoreError(f"feedback key {idempotency_key!r} collided but its row is gone") from None
            return stored

    def _replay(self, detection_id: str, label: str, given_by: str, note: str | None, key: str) -> dict | None:
        with self.session("reading an idempotency key") as s:
            row = s.scalar(select(Feedback).where(Feedback.given_by == given_by, Feedback.idempotency_key == key))
            if row is None:
                return None
            differs = _matches(row, detection_id, label, note)
            if differs is not None:
                raise KeyReused(
                    f"{HEADER} {key!r} was used for another request by this caller ({differs}); "
                    "send a new key for a new label"
                )
            return self._out(row, s.get(Image, row.sha256) is not None, replayed=True)

    def _insert(self, detection_id: str, label: str, given_by: str, note: str | None, key: str | None) -> dict:
        with self.session("recording feedback") as s:
            d = s.get(DetectionRow, detection_id)
            if d is None:
                raise NotFound(f"no detection with id {detection_id}")
            pairs = self._pairs(s, given_by, extra=(d.sha256, label))
            held = held_back_by_rule(pairs)
            fb = Feedback(
                detection_id=d.id, sha256=d.sha256, label=label, given_by=given_by, held_back=held, note=note,
                idempotency_key=key,
            )  # fmt: skip
            s.add(fb)
            try:
                s.flush()  # before the label event: a key taken by a racing replica stops here
            except IntegrityError:
                if key is None:
                    raise
                raise _KeyTaken() from None  # leaving the block rolls this transaction back
            img = s.get(Image, d.sha256)
            if img is not None and not held:
                self.store.set_label(s, img, label, "moderator", moderator=given_by, note=note)
            s.flush()
            return self._out(fb, img is not None)

    @staticmethod
    def _out(fb: Feedback, image_kept: bool, replayed: bool = False) -> dict:
        return {
            "id": fb.id,
            "detection_id": fb.detection_id,
            "label": fb.label,
            "given_by": fb.given_by,
            "held_back": fb.held_back,
            "to_training": image_kept and not fb.held_back,
            "replayed": replayed,
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
                select(DetectionRow.verdict, Feedback.label)
                .join(DetectionRow, DetectionRow.id == Feedback.detection_id)
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
