"""What the HTTP process keeps between requests: settings, the records database, keys, limits, secrets.

Made in the parent before LitServe forks its HTTP process; nothing here opens a connection until
first use, so every process gets connections of its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from aidetect.settings import Settings
from service.api import LazyRecords, outbox_path
from service.auth import key_matches, parse_key
from service.outbox import Outbox
from service.ratelimit import limiter_for
from service.records import KeyRow

log = logging.getLogger(__name__)


MIN_REFRESH_S = 0.5  # unknown key ids trigger a refresh at most this often (no database hammering by guessers)


class KeysUnavailable(Exception):
    """A key this process has never seen, while the database that would know it cannot be read."""


class _Read:
    """One read of the keys, shared by every check that asked for it before it began."""

    def __init__(self):
        self.began = False
        self.done: Future = Future()
        self.done.set_running_or_notify_cancel()  # a waiter that goes away cannot cancel the others' answer


class KeyCache:
    """API keys as last read from the database. A refresher thread (refresh_forever, started with the other
    background work) reads them every ttl/2, so checks answer from memory and a revocation holds within
    about `ttl` seconds; a key the copy lacks, or a copy no read has renewed for `ttl`, is read again by
    check(), which waits without holding a thread. While the database is down, or a read of it hangs, the
    last good copy keeps detection working (revocations then wait for it to return). A key missing from that
    copy is then unknown, not invalid: check() raises KeysUnavailable, so a replica that started during an
    outage, or a key made just before it, is told to retry rather than that the key is revoked."""

    def __init__(self, load, ttl: float = 2.0):
        self.load, self.ttl = load, ttl
        self._keys: dict[str, KeyRow] | None = None  # replaced whole, never changed: readers need no lock
        self._read_began = -math.inf  # the last read of the database, failed or not
        self.failing = False  # the last read of the database failed
        self._reading = threading.Lock()  # one read at a time
        self._joining = threading.Lock()  # a check joins the next read, or that read begins: never both at once
        self._next: _Read | None = None
        # Reads for checks stay this far apart, so guessed keys cost the database one read per interval.
        # Never more than the ttl: a copy past its ttl is read again at once.
        self.spacing = min(MIN_REFRESH_S, ttl)

    def refresh(self) -> dict[str, KeyRow] | None:
        """Read the keys now (after any read under way); on failure keep the last copy, and say so once per
        outage."""
        with self._reading:
            return self._read()

    def _read(self) -> dict[str, KeyRow] | None:
        self._read_began = time.monotonic()
        try:
            rows = {k.id: k for k in self.load()}
        except Exception as e:
            if not self.failing:
                log.warning("cannot read API keys (answering from the last copy until it returns): %s", e)
            self.failing = True
            return self._keys
        if self.failing:
            log.warning("API keys can be read again")
        self._keys, self.failing = rows, False
        return rows

    def refresh_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.wait(self.ttl / 2):
            self.refresh()

    def from_memory(self, secret: str) -> tuple[bool, KeyRow | None]:
        """(True, the answer) when the copy can say: it is current (read within `ttl`, or a read is under way:
        until it answers, the copy is the best answer there is) and holds the key, or the key is malformed;
        else (False, None), and check() must read the database."""
        keys, key_id = self._keys, parse_key(secret)
        if key_id is None:
            return True, None  # no read could make it valid
        current = self._reading.locked() or time.monotonic() - self._read_began <= self.ttl
        if not current or keys is None or key_id not in keys:
            return False, None
        return True, _valid(keys[key_id], secret)

    async def check(self, secret: str) -> KeyRow | None:
        """What the database says of `secret` once from_memory could not say (a key made a moment ago, or a
        stale copy), from a read that began after this call. Every check waiting meanwhile shares that read,
        run in one thread of its own, so a flood of guessed keys costs one read per `spacing` and no thread of
        the event loop's pool, which the rate limiter and the routes need."""
        key_id = parse_key(secret)
        if key_id is None:
            return None
        keys = await asyncio.wrap_future(self._join_next_read()) or {}
        row = keys.get(key_id)
        if row is None and self.failing:
            raise KeysUnavailable(key_id)
        return _valid(row, secret)

    def _join_next_read(self) -> Future:
        with self._joining:
            job = self._next
            if job is None or job.began:
                job = self._next = _Read()
                threading.Thread(target=self._run, args=(job,), name="api-keys-check", daemon=True).start()
            return job.done

    def _run(self, job: _Read) -> None:
        try:
            time.sleep(max(0.0, self._read_began + self.spacing - time.monotonic()))
            with self._reading:
                with self._joining:  # whoever joined before this began sees a read that began after it asked
                    job.began = True
                job.done.set_result(self._read())
        except BaseException as e:  # every waiter gets what went wrong
            job.done.set_exception(e)


def _valid(row: KeyRow | None, secret: str) -> KeyRow | None:
    return None if row is None or row.revoked or not key_matches(secret, row.key_hash) else row


def session_secret(settings: Settings) -> bytes:
    """AIDETECT_SESSION_SECRET where replicas must share sessions; else a random key kept under home."""
    env = os.environ.get("AIDETECT_SESSION_SECRET")
    if env:
        return env.encode()
    path = Path(settings.home) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class ServiceState:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.records = LazyRecords(settings)
        self.outbox = Outbox(outbox_path(settings))
        self.keys = KeyCache(lambda: self.records.get().keys())
        self.limiter = limiter_for(settings, self.records)  # shared by the replicas on a server database
        self.secret = session_secret(settings)
        self.drift_file = Path(settings.home) / "monitoring" / "drift.json"
        self._background_pid: int | None = None
        self._stop = threading.Event()
        self._parking = None

    def ensure_background(self) -> None:
        """Start the outbox flusher, the key refresher and the retention pass in this process, once. Called on
        every request (the readiness probe included), because LitServe forks the HTTP process after build time."""
        if self._background_pid == os.getpid():
            return
        self._background_pid = os.getpid()
        from service.api import prune_forever
        from service.outbox import Flusher

        self.flusher = Flusher(self.outbox, LazyRecords(self.settings).apply_outbox, adopt=self.adopt_parked).start()
        threading.Thread(target=self.keys.refresh_forever, args=(self._stop,), name="api-keys", daemon=True).start()
        threading.Thread(
            target=prune_forever, args=(LazyRecords(self.settings), self.settings, self._stop), name="pruner",
            daemon=True,
        ).start()  # fmt: skip

    def stop_background(self) -> None:
        """End what ensure_background started in this process (an app built in-process, as tests build them;
        a served process simply exits, its final flush done by the main process)."""
        self._stop.set()
        if self._background_pid == os.getpid():
            self.flusher.stop()

    def adopt_parked(self) -> int:
        """Records stopped servers parked, moved into this process's outbox (and counted for /metrics)."""
        from service.metrics import metrics
        from service.outbox_spill import adopt

        n = adopt(self.outbox, self.parking())
        metrics().outbox_adopted.inc(n)
        return n

    def parking(self):
        """The object store where stopped servers park unflushed records: the review images' store."""
        if self._parking is None:
            from service.review_store import review_objects

            self._parking = review_objects(self.settings)
        return self._parking

    def db(self):
        """The records database, with every queued detection flushed into it first; raises when it is down."""
        records = self.records.get()
        try:
            self.outbox.drain(records.apply_outbox)
        except Exception:
            self.records._records = None
            records.close()
            raise
        return records
