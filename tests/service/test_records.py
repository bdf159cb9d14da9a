"""Records on an embedded SQLite store: detections, kept images, feedback into the data pipeline's labels,
the agreement rule, the review queue, accuracy and retention."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from aidetect.testing.pictures import solid
from model.etl.db import Image, LabelEvent
from model.etl.hashing import phash_hex
from model.etl.snapshots import write_snapshot
from model.preprocess import decode_image
from service.cascade import combine
from service.detection import Detection, ModelRef, Provenance
from service.records import NotFound, Records, agreement, held_back_by_rule


def png(seed: int) -> bytes:
    return solid((24, 16), (seed % 256, (seed * 7) % 256, 3))  # a distinct image per seed


@pytest.fixture
def db(tmp_path):
    r = Records.open(url=f"sqlite:///{tmp_path / 'etl.db'}", objects=str(tmp_path / "objects"))
    yield r
    r.close()


@pytest.fixture
def detection(make_detection):
    def make(db: Records, data: bytes, verdict="uncertain", score=0.5, when=None, keep=True) -> Detection:
        """A detection as the worker files it: a kept image's bytes already in the object store, hashed."""
        d = make_detection(data, verdict=verdict, score=score, when=when, keep=keep)
        if keep:
            db.store.objects.put(d.sha256, data)
            d.phash = phash_hex(decode_image(data))
        return d

    return make


def test_insert_is_idempotent_and_kept_images_join_the_data_store(db, detection):
    rows = [detection(db, png(1)), detection(db, png(2), verdict="real", score=0.1, keep=False)]
    assert db.apply_outbox(rows) == 2
    assert db.apply_outbox(rows) == 0  # a flush repeated after a crash stores nothing twice
    assert db.count_detections() == 2
    with db.session("check") as s:
        img = s.get(Image, rows[0].sha256)
        assert img.source == "service" and img.label is None and img.software == "GIMP"
        assert img.phash != "0" * 16
        assert s.get(Image, rows[1].sha256) is None  # only uncertain (kept) images are stored
    assert db.image_bytes(rows[0].sha256) == png(1)


def test_one_image_row_per_kept_image_whether_stored_before_or_twice_in_a_flush(db, detection):
    before = detection(db, png(3))
    assert db.apply_outbox([before]) == 1
    again = [detection(db, png(3)), detection(db, png(4)), detection(db, png(4)), detection(db, png(6), keep=False)]
    assert db.apply_outbox(again) == 4 and db.count_detections() == 5
    with db.session("check") as s:
        assert [s.get(Image, d.sha256) is not None for d in (again[0], again[1], again[3])] == [True, True, False]
        assert s.scalar(select(func.count()).select_from(Image)) == 2


def test_a_cascade_verdict_queued_behind_its_detection_ends_in_the_record(db, detection):
    fast = detection(db, png(5))
    qwen = {"score": 0.93, "verdict": "ai_generated", "explanation": "too smooth",
            "model": {"name": "aidetect-qwen", "version": "2", "uri": "models:/aidetect-qwen/2"}}  # fmt: skip
    answer = combine(fast, qwen)  # what /v1/detect answered, and the cascade queued behind the fast record
    other = detection(db, png(6), verdict="real", score=0.05, keep=False)
    # one outbox chunk holds the insert and, later in it, the decided detection
    assert db.apply_outbox([fast, other, answer]) == 2
    got = db.get_detection(fast.id)
    assert (got.score, got.verdict, got.stage) == (0.93, "ai_generated", "qwen")
    assert (got.model.name, got.model.version) == ("aidetect-qwen", "2")
    assert db.get_detection(other.id).stage == "fast"  # untouched
    # a drain repeated after a crash changes nothing; the decided one first, then the fast one, ends the same
    assert db.apply_outbox([fast, answer]) == 0
    assert db.get_detection(fast.id).verdict == "ai_generated" and db.count_detections() == 2
    late = detection(db, png(8))
    assert db.apply_outbox([combine(late, qwen), late]) == 1
    assert db.get_detection(late.id).stage == "qwen"
    # without a second model's name the fast model's version stays
    again = detection(db, png(7))
    db.apply_outbox([again, combine(again, {"score": 0.2, "verdict": "real"})])
    assert (db.get_detection(again.id).model.version, db.get_detection(again.id).verdict) == ("3", "real")


def test_feedback_becomes_a_moderator_label_in_the_next_snapshot(db, tmp_path, detection):
    row = detection(db, png(3))
    db.apply_outbox([row])
    out = db.add_feedback(row.id, "AI", given_by="moderator:alice")
    assert out["label"] == "ai" and out["to_training"] and not out["held_back"]
    with db.session("check") as s:
        ev = s.query(LabelEvent).one()
        assert (ev.label, ev.origin, ev.moderator) == ("ai", "moderator", "moderator:alice")
    info = write_snapshot(db.store, tmp_path / "snaps")
    csv = info.csv.read_text()
    assert row.sha256 in csv and "moderator" in csv
    assert db.queue() == []  # labelled: out of the queue


def test_feedback_errors(db, detection):
    with pytest.raises(NotFound):
        db.add_feedback("no-such-id", "ai", "key:x")
    row = detection(db, png(4))
    db.apply_outbox([row])
    with pytest.raises(ValueError, match="label"):
        db.add_feedback(row.id, "maybe", "key:x")


def test_agreement_rule():
    assert agreement([]) is None
    assert not held_back_by_rule([("ai", "real")] * 4)  # too little overlap to judge
    assert held_back_by_rule([("ai", "real")] * 3 + [("ai", "ai")] * 2)  # 40 % agreement
    assert not held_back_by_rule([("ai", "ai")] * 3 + [("ai", "real")] * 2)  # 60 %


def test_a_contrarian_moderator_is_held_back_from_training(db, detection):
    rows = [detection(db, png(10 + i)) for i in range(7)]
    db.apply_outbox(rows)
    for r in rows:
        db.add_feedback(r.id, "ai", "moderator:alice")
        db.add_feedback(r.id, "ai", "moderator:bob")
    outs = [db.add_feedback(r.id, "real", "moderator:mallory") for r in rows]
    # Each image gives two comparisons (with alice, with bob): after two images (4 < MIN_OVERLAP)
    # there is too little to judge; from the third on Mallory's labels are held back.
    assert [o["held_back"] for o in outs] == [False] * 2 + [True] * 5
    assert db.agreement_of("moderator:mallory")["agreement"] == 0.0
    assert db.agreement_of("moderator:alice")["agreement"] > 0.5
    with db.session("check") as s:
        assert s.get(Image, rows[-1].sha256).label == "ai"  # the held-back "real" did not overwrite it


def test_queue_filters_size_and_accuracy(db, detection):
    rows = [
        detection(db, png(20), score=0.45),
        detection(db, png(21), score=0.55),
        detection(db, png(22), verdict="ai_generated", score=0.9, keep=False),
        detection(db, png(23), verdict="real", score=0.1, keep=False),
    ]
    rows[1].model = ModelRef(name="aidetect", version="4")
    rows[1].provenance = Provenance(ai_hint=True)
    db.apply_outbox(rows)
    assert db.queue_size() == 2
    assert [q.id for q in db.queue(verdict="uncertain")] == [rows[0].id, rows[1].id]
    assert [q.id for q in db.queue(min_score=0.5)] == [rows[1].id]
    assert [q.id for q in db.queue(model_version="3")] == [rows[0].id]
    assert [q.id for q in db.queue(ai_hint=True)] == [rows[1].id]
    db.add_feedback(rows[2].id, "ai", "key:k")  # verdict confirmed
    db.add_feedback(rows[3].id, "ai", "key:k")  # verdict wrong
    db.add_feedback(rows[0].id, "real", "key:k")  # uncertain: not counted for accuracy
    acc = db.accuracy()
    assert (acc["decided"], acc["correct"], acc["accuracy"], acc["uncertain_labelled"]) == (2, 1, 0.5, 1)
    assert db.queue_size() == 1
    again = detection(db, png(21), score=0.55)  # the same image sent again: still one item to review
    db.apply_outbox([again])
    assert db.queue_size() == 1 and len(db.queue()) == 1
    db.add_feedback(again.id, "ai", "key:k")
    assert db.queue_size() == 0 and db.queue() == []  # labelling one detection of an image settles them all


def test_prune_forgets_unlabelled_images_past_retention_only(db, detection):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    stale, labelled, fresh = detection(db, png(30), when=old), detection(db, png(31), when=old), detection(db, png(32))
    db.apply_outbox([stale, labelled, fresh])
    db.add_feedback(labelled.id, "real", "moderator:alice")
    out = db.prune(retention_days=30)
    assert out == {"detections_expired": 1, "images_deleted": 1, "objects_deleted": 1}
    assert db.image_bytes(stale.sha256) is None
    assert db.image_bytes(labelled.sha256) == png(31) and db.image_bytes(fresh.sha256) == png(32)
    assert db.get_detection(stale.id).kept_for_review is False  # the record itself stays
    assert stale.id not in [q.id for q in db.queue()]


def test_keys_and_moderators(db):
    db.add_key("k1", "bot", "h" * 64, 30)
    db.revoke_key("k1")
    assert [(k.id, k.revoked, k.rate_per_minute) for k in db.keys()] == [("k1", True, 30)]
    with pytest.raises(NotFound):
        db.revoke_key("nope")
    db.set_moderator("alice", "hash1")
    db.set_moderator("alice", "hash2")
    assert db.moderators() == ["alice"] and db.moderator_hash("alice") == "hash2"
