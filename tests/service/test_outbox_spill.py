"""service/outbox_spill.py: what a stopping server cannot flush is parked in the object store, and a running
server adopts it, so a pod that stops while the database is down loses no answer with its emptyDir."""

from __future__ import annotations

import logging
import time
from itertools import pairwise

import pytest

from model.etl.objects import LocalObjects, ObjectStoreError, open_objects
from service.outbox import Flusher, Outbox, flush_before_exit
from service.outbox_spill import PREFIX, adopt, parked, spill


def refuses(rows):
    raise ConnectionError("connection refused")


def test_parked_records_move_from_one_servers_outbox_to_anothers_whole(tmp_path, make_detection):
    objects = open_objects(tmp_path / "objects")
    stopping, running = Outbox(tmp_path / "a" / "outbox.db"), Outbox(tmp_path / "b" / "outbox.db")
    sent = [make_detection(bytes([i]), verdict="real", latency_ms=float(i)) for i in range(4)]
    stopping.append(sent)
    n, key = spill(stopping, objects)
    assert n == 4 and key.startswith(PREFIX) and objects.keys(PREFIX) == [key] and len(stopping) == 0
    assert spill(stopping, objects) == (0, None) and objects.keys(PREFIX) == [key]  # nothing left: no object
    assert parked(objects) == 1

    assert adopt(running, objects) == 4
    got = []
    running.drain(got.extend)
    assert got == sent  # typed, in order, every field
    assert objects.keys(PREFIX) == [] and adopt(running, objects) == 0  # adopted once
    assert parked(objects) == 0


def test_a_store_that_cannot_take_them_leaves_the_records_in_the_outbox(tmp_path, make_detection):
    (tmp_path / "not-a-dir").write_text("a file where the store's directory should be")
    box = Outbox(tmp_path / "outbox.db")
    box.append([make_detection(b"1"), make_detection(b"2")])
    with pytest.raises(OSError):
        spill(box, LocalObjects(tmp_path / "not-a-dir"))
    assert len(box) == 2


def test_the_final_flush_parks_what_the_database_refuses(tmp_path, make_detection, caplog):
    caplog.set_level(logging.INFO, logger="service.outbox")
    objects = open_objects(tmp_path / "objects")
    box = Outbox(tmp_path / "outbox.db")
    box.append([make_detection(b"1"), make_detection(b"2")])
    assert flush_before_exit(box, refuses, parking=lambda: objects) == 0
    assert len(box) == 0 and len(objects.keys(PREFIX)) == 1
    assert "2 detection records were not flushed before stopping (connection refused): parked in" in caplog.text

    box.append([make_detection(b"3")])
    a_file = LocalObjects(tmp_path / "outbox.db")  # a file where the store's directory should be
    assert flush_before_exit(box, refuses, parking=lambda: a_file) == 0
    assert len(box) == 1 and "cannot park them either" in caplog.text and "are lost if that volume" in caplog.text
    caplog.clear()
    # a store that cannot even be opened (a bad AIDETECT_OBJECT_STORE) still leaves the flush its say
    assert flush_before_exit(box, refuses, parking=lambda: open_objects("s3://")) == 0
    assert len(box) == 1 and "expected s3://bucket" in caplog.text and "are lost if that volume" in caplog.text


def test_a_running_flusher_adopts_parked_records_once_the_database_takes_records(tmp_path, make_detection):
    objects = open_objects(tmp_path / "objects")
    parked = Outbox(tmp_path / "gone" / "outbox.db")
    sent = [make_detection(bytes([i])) for i in range(3)]
    parked.append(sent)
    spill(parked, objects)
    box, got = Outbox(tmp_path / "outbox.db"), []
    flusher = Flusher(box, got.extend, interval=0.02, adopt=lambda: adopt(box, objects), adopt_every=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        flusher.stop()
    assert [d.id for d in got] == [d.id for d in sent] and not objects.keys(PREFIX)


def test_a_store_that_is_away_is_said_once_and_looked_at_again(tmp_path, caplog):
    calls = []

    def away():
        calls.append(time.monotonic())
        raise ObjectStoreError("cannot list outbox-spill/ in s3://review: connection refused")

    flusher = Flusher(Outbox(tmp_path / "outbox.db"), lambda rows: None, interval=0.01, adopt=away, adopt_every=0.05)
    with caplog.at_level(logging.WARNING, logger="service.outbox"):
        flusher.start()
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        flusher.stop()
    assert len(calls) >= 3 and all(b - a >= 0.04 for a, b in pairwise(calls))  # every adopt_every, no faster
    assert caplog.text.count("cannot look for parked detection records") == 1
