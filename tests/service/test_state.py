"""The HTTP process's key cache (service/state.py): checks answer from memory, whatever the database does."""

from __future__ import annotations

import dataclasses
import threading
import time

from service.auth import hash_key, new_key
from service.records import KeyRow
from service.state import KeyCache


def a_key(revoked: bool = False) -> tuple[str, KeyRow]:
    key_id, secret = new_key()
    return secret, KeyRow(key_id, "bot", hash_key(secret), None, revoked)


def test_a_check_answers_from_the_copy_while_a_read_of_the_database_hangs():
    secret, row = a_key()
    hang, reads = threading.Event(), []

    def load():
        reads.append(1)
        if len(reads) > 1:  # the database stops answering after the first read
            hang.wait(30)
        return [row]

    cache = KeyCache(load, ttl=0.2)
    assert cache.check(secret) == row
    reader = threading.Thread(target=cache.refresh)
    reader.start()
    while len(reads) < 2:
        time.sleep(0.01)  # the second read is now hanging
    time.sleep(0.3)  # for longer than the copy's ttl: it still answers while no read has
    answered = []
    asker = threading.Thread(target=lambda: answered.append(cache.from_memory(secret)))
    asker.start()
    asker.join(5)  # a copy lookup takes microseconds; one that waited for the read would wait 30 s
    hang.set()
    reader.join()
    assert answered == [(True, row)]


def test_the_refresher_keeps_the_copy_fresh_and_a_revocation_holds_without_any_check_reading():
    secret, row = a_key()
    rows, reads = {"k": row}, []

    def load():
        reads.append(1)
        return list(rows.values())

    cache = KeyCache(load, ttl=0.2)
    stop = threading.Event()
    threading.Thread(target=cache.refresh_forever, args=(stop,), daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while cache.from_memory(secret) != (True, row):
            assert time.monotonic() < deadline, "the refresher never read the keys"
            time.sleep(0.02)
        rows["k"] = dataclasses.replace(row, revoked=True)
        while cache.from_memory(secret) != (True, None):  # decided from memory: refused
            assert time.monotonic() < deadline, "the revocation never reached the copy"
            time.sleep(0.02)
    finally:
        stop.set()


def test_the_outage_is_said_once_and_its_end_once(caplog):
    secret, row = a_key()
    up = {"ok": True}

    def load():
        if not up["ok"]:
            raise ConnectionError("connection refused")
        return [row]

    cache = KeyCache(load, ttl=0)
    assert cache.check(secret) == row
    up["ok"] = False
    for _ in range(5):
        assert cache.check(secret) == row  # the last copy decides
    up["ok"] = True
    cache.refresh()
    said = [r.message for r in caplog.records if "API keys" in r.message]
    assert len(said) == 2 and "cannot read" in said[0] and "again" in said[1]


def test_a_key_made_just_after_a_read_works_at_once_and_guessers_cost_one_read_per_interval():
    from service.state import MIN_REFRESH_S

    secret, row = a_key()
    rows, reads = [], []

    def load():
        reads.append(time.monotonic())
        return list(rows)

    cache = KeyCache(load, ttl=60)
    cache.refresh()
    rows.append(row)  # made a moment after that read: the copy lacks it
    assert cache.check(secret) == row  # looked up again, not refused
    before = len(reads)
    guesses = [threading.Thread(target=cache.check, args=(new_key()[1],)) for _ in range(20)]
    for t in guesses:
        t.start()
    for t in guesses:
        t.join()
    assert 1 <= len(reads) - before <= 2  # twenty unknown keys, one or two reads
    assert all(b - a >= MIN_REFRESH_S * 0.99 for a, b in zip(reads, reads[1:], strict=False))
