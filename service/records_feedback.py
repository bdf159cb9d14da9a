"""Labels on detections, and the agreement rule that holds back a moderator who often disagrees.

    db.add_feedback(detection_id, "ai", given_by="moderator:alice")   # committed before it returns
    db.agreement_of("moderator:alice")
    db.accuracy()

Once a moderator has labelled MIN_OVERLAP images that someone else labelled too, and agrees on fewer than
MIN_AGREEMENT of them, their labels are kept as feedback but not passed to training.
"""

from __future__ import annotations

from sqlalchemy import select

from model.etl.db import Image
from model.manifest import normalise_label
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


class FeedbackRecords:
    """The feedback half of service.records.Records (which gives it `store` and `session`)."""

    def add_feedback(self, detection_id: str, label: str, given_by: str, note: str | None = None) -> dict:
        """Store a label for a detection, committed before returning; also a LabelEvent when its image was kept
        and the giver is not held back by the agreement rule."""
        norm = normalise_label(label or "")
        if norm is None:
            raise ValueError(f"label {label!r} is not one of ['ai', 'real']")
        with self.session("recording feedback") as s:
            d = s.get(DetectionRow, detection_id)
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
