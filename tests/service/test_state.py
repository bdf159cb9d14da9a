"""The HTTP process's key cache (service/state.py): checks answer from memory, whatever the database does."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

from service.auth import hash_key, new_key
from service.records import KeyRow
from service.state import KeyCache, KeysUnavailable


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
    assert asyncio.run(cache.check(secret)) == row
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
    assert asyncio.run(cache.check(secret)) == row
    up["ok"] = False
    for _ in range(5):
        assert asyncio.run(cache.check(secret)) == row  # the last copy decides
    try:
        asyncio.run(cache.check(new_key()[1]))
        raise AssertionError("a key missing from the copy during an outage was decided")
    except KeysUnavailable:
        pass  # unknown, not invalid: the caller is told to retry
    up["ok"] = True
    cache.refresh()
    said = [r.message for r in caplog.records if "API keys" in r.message]
    assert len(said) == 2 and "cannot read" in said[0] and "again" in said[1]


def test_a_key_made_just_after_a_read_works_at_once_and_guessers_cost_one_read_per_interval():
    secret, row = a_key()
    rows, reads = [], []

    def load():
        reads.append(time.monotonic())
        return list(rows)

    cache = KeyCache(load, ttl=60)
    cache.refresh()
    rows.append(row)  # made a moment after that read: the copy lacks it
    assert cache.from_memory(secret) == (False, None)
    assert asyncio.run(cache.check(secret)) == row  # looked up again, not refused
    before = len(reads)

    async def guess(n):
        return await asyncio.gather(*(cache.check(new_key()[1]) for _ in range(n)))

    assert asyncio.run(guess(20)) == [None] * 20
    assert 1 <= len(reads) - before <= 2  # twenty unknown keys, one or two reads
    assert all(b - a >= cache.spacing * 0.99 for a, b in zip(reads, reads[1:], strict=False))
    assert cache.from_memory("aid_not-a-key") == (True, None)  # malformed: refused without a read


def test_guessed_keys_while_the_database_hangs_hold_no_thread_of_the_event_loop():
    """Before, each unknown key waited for the database in the event loop's thread pool (a handful of threads
    on a small machine), so a burst of guesses during a hang stalled the rate limiter and the routes too."""
    secret, row = a_key()
    hang, reads = threading.Event(), []

    def load():
        reads.append(1)
        if len(reads) > 1:
            hang.wait(30)
        return [row]

    cache = KeyCache(load, ttl=60)
    cache.refresh()

    async def flood():
        guesses = [asyncio.ensure_future(cache.check(new_key()[1])) for _ in range(64)]
        while len(reads) < 2:
            await asyncio.sleep(0.01)  # their read is now hanging
        # The loop's pool still serves others at once: 64 waits hold one thread of their own, not the pool's.
        # (Pool threads held by the waits would make this wait for the hang's 30 s.)
        free = await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 10)
        checking = [t for t in threading.enumerate() if t.name == "api-keys-check"]
        later = asyncio.ensure_future(cache.check(new_key()[1]))  # asked after that read began: the next one
        await asyncio.sleep(0.05)
        hang.set()
        return free, len(checking), await asyncio.gather(*guesses), await later

    free, checking, answers, later = asyncio.run(flood())
    assert free == "free" and checking == 1
    assert answers == [None] * 64 and later is None
    assert len(reads) == 3  # the refresh, the guesses' shared read, the late guess's own
