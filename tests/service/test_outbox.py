"""The durable outbox between the inference worker and the records database."""

from __future__ import annotations

import time

import pytest

from service.outbox import Flusher, Outbox


def test_append_drain_in_order_and_survive_reopen(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    box.append([{"id": i} for i in range(5)])
    box.append([])
    assert len(Outbox(tmp_path / "outbox.db")) == 5  # on disk, visible to a fresh handle (another process)
    got = []
    assert box.drain(got.extend, batch=2) == 5
    assert [r["id"] for r in got] == [0, 1, 2, 3, 4] and len(box) == 0


def test_a_failing_handler_keeps_the_records(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    box.append([{"id": 1}, {"id": 2}])

    def down(rows):
        raise ConnectionError("database is down")

    with pytest.raises(ConnectionError):
        box.drain(down)
    assert len(box) == 2
    seen = []
    box.drain(seen.extend)
    assert [r["id"] for r in seen] == [1, 2]


def test_flusher_retries_until_the_database_returns(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    stored, up = [], {"ok": False}

    def insert(rows):
        if not up["ok"]:
            raise ConnectionError("refused")
        stored.extend(rows)

    flusher = Flusher(box, insert, interval=0.05).start()
    try:
        box.append([{"id": "a"}])
        flusher.poke()
        time.sleep(0.3)
        assert flusher.failing and len(box) == 1 and stored == []
        up["ok"] = True
        deadline = time.monotonic() + 5
        while len(box) and time.monotonic() < deadline:
            flusher.poke()
            time.sleep(0.05)
        assert stored == [{"id": "a"}] and len(box) == 0
    finally:
        flusher.stop()
