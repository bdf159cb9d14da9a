"""The durable outbox between the inference worker and the records database."""

from __future__ import annotations

import time

import pytest

from service.outbox import Flusher, Outbox


def test_append_drain_in_order_and_survive_reopen(tmp_path, make_detection):
    box = Outbox(tmp_path / "outbox.db")
    sent = [make_detection(bytes([i])) for i in range(5)]
    sent[0].latency_ms = 3.5
    box.append(sent)
    box.append([])
    assert len(Outbox(tmp_path / "outbox.db")) == 5  # on disk, visible to a fresh handle (another process)
    got = []
    assert box.drain(got.extend, batch=2) == 5
    assert [r.id for r in got] == [d.id for d in sent] and len(box) == 0
    # typed on both sides, the fields a caller never sees included
    assert got == sent and got[0].phash == sent[0].phash and got[0].created_at == sent[0].created_at


def test_a_row_that_is_not_a_detection_is_dropped_with_a_log_line(tmp_path, make_detection, caplog):
    box = Outbox(tmp_path / "outbox.db")
    with box._connect() as c:  # what an older release queued: a dict with the image as base64
        c.execute("INSERT INTO outbox (payload) VALUES (?)", ('{"id": "x", "image_b64": "AAAA"}',))
    box.append([make_detection()])
    got = []
    assert box.drain(got.extend) == 2 and len(got) == 1
    assert "outbox row dropped" in caplog.text


def test_a_failing_handler_keeps_the_records(tmp_path, make_detection):
    box = Outbox(tmp_path / "outbox.db")
    sent = [make_detection(b"1"), make_detection(b"2")]
    box.append(sent)

    def down(rows):
        raise ConnectionError("database is down")

    with pytest.raises(ConnectionError):
        box.drain(down)
    assert len(box) == 2
    seen = []
    box.drain(seen.extend)
    assert [r.id for r in seen] == [d.id for d in sent]


def test_flusher_retries_until_the_database_returns(tmp_path, make_detection):
    box = Outbox(tmp_path / "outbox.db")
    stored, up = [], {"ok": False}

    def insert(rows):
        if not up["ok"]:
            raise ConnectionError("refused")
        stored.extend(rows)

    flusher = Flusher(box, insert, interval=0.05).start()
    try:
        sent = make_detection()
        box.append([sent])
        flusher.poke()
        time.sleep(0.3)
        assert flusher.failing and len(box) == 1 and stored == []
        up["ok"] = True
        deadline = time.monotonic() + 5
        while len(box) and time.monotonic() < deadline:
            flusher.poke()
            time.sleep(0.05)
        assert stored == [sent] and len(box) == 0
    finally:
        flusher.stop()


# Run in a fresh interpreter: forked from this pytest process, whose earlier tests leave daemon threads that use
# SQLite (in-process apps' flushers), the child once inherited a lock one of them held and hung in connect.
FORKING_APPENDS = """
import os, sys, threading
from service.detection import Detection
from service.outbox import Outbox

box = Outbox(sys.argv[1])
rows = [Detection.from_outbox(line) for line in sys.stdin.read().splitlines()]
box.append(rows[:1])
threads = [threading.Thread(target=box.append, args=([r],)) for r in rows[1:5]]
for t in threads:
    t.start()
for t in threads:
    t.join()
pid = os.fork()
if pid == 0:  # the child appends through the object it inherited, then leaves without cleanup
    try:
        box.append(rows[5:6])
    finally:
        os._exit(0)
os.waitpid(pid, 0)
box.append(rows[6:])
"""


def test_appends_from_threads_and_a_forked_child_all_land(tmp_path, make_detection):
    # The appender keeps its connection open: threads share it one at a time, a forked child opens its own.
    import subprocess
    import sys
    from pathlib import Path

    sent = [make_detection(bytes([i])) for i in range(7)]
    path = tmp_path / "outbox.db"
    subprocess.run([sys.executable, "-c", FORKING_APPENDS, str(path)], input="\n".join(d.to_outbox() for d in sent),
                   text=True, check=True, timeout=120, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    got = []
    Outbox(path).drain(got.extend)
    assert sorted(d.id for d in got) == sorted(d.id for d in sent)


def test_the_final_flush_takes_what_is_left_and_a_database_that_hangs_costs_at_most_its_bound(
    tmp_path, make_detection, caplog
):
    import logging
    import threading

    from service.outbox import flush_before_exit

    caplog.set_level(logging.INFO, logger="service.outbox")
    box = Outbox(tmp_path / "outbox.db")
    assert flush_before_exit(box, lambda rows: None) == 0  # nothing waiting: nothing asked of the database
    sent = [make_detection(bytes([i])) for i in range(3)]
    box.append(sent)
    got = []
    assert flush_before_exit(box, got.extend) == 3 and got == sent and len(box) == 0
    assert "flushed 3 detection records before stopping" in caplog.text

    box.append(sent)
    hang = threading.Event()

    def hangs(rows):
        hang.wait(30)
        raise ConnectionError("gave up late")

    t0 = time.monotonic()
    assert flush_before_exit(box, hangs, within=0.3) == 0
    assert time.monotonic() - t0 < 10  # the bound, not the database, decided
    assert "3 detection records were not flushed before stopping (no answer within 0.3 s)" in caplog.text
    hang.set()
    while any(t.name == "outbox-final-flush" for t in threading.enumerate()):
        time.sleep(0.01)

    def refuses(rows):
        raise ConnectionError("connection refused")

    assert flush_before_exit(box, refuses) == 0 and len(box) == 3  # kept, and said
    assert "(connection refused)" in caplog.text
