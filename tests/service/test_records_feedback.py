"""Feedback with an Idempotency-Key, on SQLite and on PostgreSQL: a repeat stores nothing and returns the stored
row, another body under the same key is refused, keys are per caller, and racing writers store one row."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, insert, select, text

from model.etl.db import LabelEvent
from service.idempotency import KeyReused
from service.records import Feedback, Records


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'etl.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")
        Records.migrate_store(url=url)  # as the PreSync job: a server database is never migrated on open
    r = Records.open(url=url, objects=str(tmp_path / "objects"))
    yield r
    r.close()


@pytest.fixture
def detection_id(db, make_detection) -> str:
    d = make_detection(b"kept bytes")
    db.store.objects.put(d.sha256, b"kept bytes")
    db.apply_outbox([d])
    return d.id


def rows(db, **where) -> int:
    with db.session("counting") as s:
        q = select(func.count()).select_from(Feedback)
        for k, v in where.items():
            q = q.where(getattr(Feedback, k) == v)
        return s.scalar(q)


def label_events(db) -> int:
    with db.session("counting") as s:
        return s.scalar(select(func.count()).select_from(LabelEvent))


def test_a_repeat_with_the_same_key_returns_the_stored_row_and_stores_nothing(db, detection_id):
    first = db.add_feedback(detection_id, "ai", "key:k1", note="looks generated", idempotency_key="req-1")
    again = db.add_feedback(detection_id, "AI", "key:k1", note="looks generated", idempotency_key="req-1")
    assert first.pop("replayed") is False and again.pop("replayed") is True
    assert again == first and first["to_training"]
    assert rows(db) == 1 and label_events(db) == 1  # the training label was not given twice either
    # Without a key nothing can tell a repeat from a second label: both are stored, as before.
    db.add_feedback(detection_id, "ai", "key:k1")
    db.add_feedback(detection_id, "ai", "key:k1")
    assert rows(db) == 3


def test_the_same_key_for_another_request_is_refused_with_what_differs(db, detection_id):
    db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="req-1")
    with pytest.raises(KeyReused, match=r"Idempotency-Key 'req-1' was used .* \(label 'real' \(it stored 'ai'\)\)"):
        db.add_feedback(detection_id, "real", "key:k1", idempotency_key="req-1")
    with pytest.raises(KeyReused, match="note"):
        db.add_feedback(detection_id, "ai", "key:k1", note="changed my mind", idempotency_key="req-1")
    assert rows(db) == 1


def test_a_key_belongs_to_its_caller(db, detection_id):
    a = db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="shared-string")
    b = db.add_feedback(detection_id, "real", "moderator:alice", idempotency_key="shared-string")
    assert a["id"] != b["id"] and not b["replayed"]
    assert rows(db, idempotency_key="shared-string") == 2


def test_concurrent_writers_with_one_key_store_one_row(db, detection_id):
    start = threading.Barrier(6)

    def send(_):
        start.wait()
        return db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="req-race")

    with ThreadPoolExecutor(6) as pool:
        outs = list(pool.map(send, range(6)))
    assert len({o["id"] for o in outs}) == 1
    assert sorted(o["replayed"] for o in outs) == [False] + [True] * 5
    assert rows(db) == 1 and label_events(db) == 1


# PostgreSQL only: the race is staged by watching pg_stat_activity for the waiting insert, a view SQLite lacks
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_an_insert_that_loses_the_race_on_the_unique_index_returns_the_winner(db, detection_id):
    """The path two replicas take when both looked before either committed: the loser's insert waits on the
    winner's uncommitted index entry (PostgreSQL) and, once the winner commits, answers the winner's row."""
    winner = db.store.engine.connect()
    tx = winner.begin()
    winner.execute(
        insert(Feedback).values(
            detection_id=detection_id, sha256="ab", label="ai", given_by="key:k1", held_back=False,
            idempotency_key="req-lost", created_at=func.now(),
        )
    )  # fmt: skip
    result: dict = {}
    loser = threading.Thread(
        target=lambda: result.update(db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="req-lost"))
    )
    loser.start()
    try:
        deadline = time.monotonic() + 30
        with db.store.engine.connect() as watch:  # until the loser's INSERT waits on the winner's index entry
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND wait_event_type = 'Lock' "
                "AND query LIKE 'INSERT INTO feedback%'"
            )
            while not watch.scalar(text(waiting)):
                assert time.monotonic() < deadline, "the second insert never waited on the first"
                watch.rollback()  # pg_stat_activity is read once per transaction: a new one sees it anew
                time.sleep(0.05)
        tx.commit()
    finally:
        winner.close()
        loser.join(30)
    stored = db.add_feedback(detection_id, "ai", "key:k1", idempotency_key="req-lost")
    assert result["id"] == stored["id"] and result["replayed"]
    assert rows(db) == 1 and label_events(db) == 0  # the loser's label event rolled back with its insert
