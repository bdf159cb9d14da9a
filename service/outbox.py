"""A durable local queue of detection records between the inference worker and the database.

    box = Outbox(home / "outbox.db")
    box.append([detection, ...])          # service.detection.Detection; one SQLite transaction per batch
    box.drain(records.apply_outbox)       # rows leave the box only after the handler committed them

The worker never waits on the (maybe remote, maybe down) database: it appends to a local SQLite
file and a flusher drains it. While the database is down records pile up here and are flushed
when it returns. Several processes may drain the same box; a file lock makes one drain at a time,
and the handler skips ids already stored, so a drain cut short between commit and delete repeats
nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import tenacity
from pydantic import ValidationError

from service.detection import Detection

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_suffix(".lock")
        with self._connect() as c:
            c.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT)")
        # The appender's connection stays open: opening one per batch, and closing it (the last close of a WAL
        # database checkpoints it), was a fifth of the worker's CPU per image besides the model.
        self._writer: sqlite3.Connection | None = None
        self._writer_pid = 0
        self._writer_lock = threading.Lock()

    def _connect(self, **kw) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, timeout=30, isolation_level=None, **kw)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process; fsync at checkpoints
        return c

    def append(self, records: list[Detection]) -> None:
        if not records:
            return
        rows = [(r.to_outbox(),) for r in records]
        with self._writer_lock:
            if self._writer is not None and self._writer_pid != os.getpid():
                # A forked child opens its own, and never closes the parent's (SQLite connections must
                # not cross a fork; closing one in the child would touch the parent's locks).
                self._inherited, self._writer = self._writer, None
            if self._writer is None:
                # Appends may come from several threads (the cascade's); the lock makes them one at a time.
                self._writer, self._writer_pid = self._connect(check_same_thread=False), os.getpid()
            c = self._writer
            try:
                c.execute("BEGIN IMMEDIATE")
                c.executemany("INSERT INTO outbox (payload) VALUES (?)", rows)
                c.execute("COMMIT")
            except BaseException:
                self._writer = None  # whatever state it is in, the next append starts on a fresh connection
                c.close()
                raise

    def backlog(self) -> int:
        """Records waiting, from the span of sequence numbers (a drain deletes the oldest first), so it costs
        the same at ten rows as at ten million, where count(*) reads them all."""
        c = self._connect()
        try:
            return c.execute("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM outbox").fetchone()[0]
        finally:
            c.close()

    __len__ = backlog  # the one count: len(box) reads the same span

    @contextmanager
    def _exclusive(self):
        with open(self._lock_path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def drain(self, handler: Callable[[list[Detection]], object], batch: int = 500) -> int:
        """Hand queued records to `handler` oldest first; delete each chunk once the handler returned.
        A handler exception leaves the chunk queued and propagates."""
        done = 0
        with self._exclusive():
            c = self._connect()
            try:
                while True:
                    rows = c.execute("SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (batch,)).fetchall()
                    if not rows:
                        return done
                    handler([d for _, p in rows if (d := load_record(p)) is not None])
                    c.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
                    done += len(rows)
            finally:
                c.close()

    def hand_over(self, write: Callable[[list[str]], object]) -> int:
        """Give every queued row's payload (one-line JSON) to `write` at once and delete the rows once it
        returned (service/outbox_spill.py parks them elsewhere). No drain lock: the final flush's drain may
        still hold it, blocked on a database that does not answer; should that drain commit later, its rows are
        stored twice over, which the records handler's skipping of known ids makes harmless."""
        c = self._connect()
        try:
            rows = c.execute("SELECT seq, payload FROM outbox ORDER BY seq").fetchall()
            if rows:
                write([p for _, p in rows])
                c.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
            return len(rows)
        finally:
            c.close()


FINAL_FLUSH_S = 10.0  # a third of the pod's grace period: what is left after LitServe's own shutdown


def flush_before_exit(
    box: Outbox,
    handler: Callable[[list[Detection]], object],
    within: float = FINAL_FLUSH_S,
    parking: Callable[[], object] | None = None,
) -> int:
    """Drain what the flusher had not yet taken, once the server has stopped answering: the flusher runs every
    half second and dies with its process, and in the deployment the outbox lives on the pod's emptyDir, which
    goes with the pod. Bounded by `within` (a database that does not answer would hold the pod to its
    SIGKILL). What is left is parked in the object store `parking()` opens (the review images'), for a running
    server to adopt (service/outbox_spill.py); only if that fails too is it logged as at risk, with its count.
    Returns the records flushed."""
    waiting = box.backlog()
    if not waiting:
        return 0
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["done"] = box.drain(handler)
        except Exception as e:  # said below, with the count
            outcome["error"] = e

    t0 = time.monotonic()
    worker = threading.Thread(target=run, name="outbox-final-flush", daemon=True)
    worker.start()
    worker.join(within)
    if "done" in outcome:
        log.info("flushed %d detection records before stopping (%.1f s)", outcome["done"], time.monotonic() - t0)
        return outcome["done"]
    why = outcome.get("error") or f"no answer within {within:g} s"
    if parking is not None:
        from service.outbox_spill import spill

        try:
            objects = parking()
            n, key = spill(box, objects)
            log.warning(
                "%d detection records were not flushed before stopping (%s): parked in %s/%s, where a running "
                "server adopts them",
                n,
                why,
                objects.url,
                key,
            )
            return 0
        except Exception as e:
            why = f"{why}; cannot park them either: {e}"
    log.error(
        "%d detection records were not flushed before stopping (%s): they stay in %s, and are lost if that "
        "volume goes with this process (a pod's emptyDir)",
        box.backlog(),
        why,
        box.path,
    )
    return 0


def load_record(payload: str) -> Detection | None:
    try:
        return Detection.from_outbox(payload)
    except ValidationError as e:  # a row no Detection reads (written by an older release): said, then dropped
        log.error("outbox row dropped, not a detection: %s (%s)", payload[:200], e.errors()[0]["msg"])
        return None


ADOPT_EVERY_S = 60.0  # how often a running server looks for records that stopped servers parked


class Flusher:
    """A daemon thread draining an outbox every `interval` seconds, backing off while the database is down,
    and, once the database takes records, adopting those that stopped servers parked (`adopt`)."""

    def __init__(
        self,
        box: Outbox,
        handler: Callable[[list[Detection]], object],
        interval: float = 0.5,
        adopt: Callable[[], int] | None = None,
        adopt_every: float = ADOPT_EVERY_S,
    ):
        self.box, self.handler, self.interval = box, handler, interval
        self.adopt, self.adopt_every = adopt, adopt_every  # records stopped servers parked (outbox_spill)
        self._adopted_at = -float("inf")
        self._adopt_failing = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.failing = False
        self.thread = threading.Thread(target=self._run, name="outbox-flusher", daemon=True)

    def start(self) -> Flusher:
        self.thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._nap(self.interval)
            try:
                for attempt in self._retrying():
                    with attempt:
                        self.box.drain(self.handler)
            except tenacity.RetryError:  # stopped while the database was down: the records stay in the file
                return
            if self.failing:
                log.warning("database is back: outbox flushed")
            self.failing = False
            self._adopt_parked()

    def _adopt_parked(self) -> None:
        if self.adopt is None or time.monotonic() - self._adopted_at < self.adopt_every:
            return
        self._adopted_at = time.monotonic()
        try:
            if self.adopt():
                self._wake.set()  # flush them now, not at the next interval
            self._adopt_failing = False
        except Exception as e:  # the store is away: parked records wait there; said once per outage
            if not self._adopt_failing:
                log.warning("cannot look for parked detection records: %s", e)
            self._adopt_failing = True

    def _retrying(self) -> tenacity.Retrying:
        """Drain until it works (the database is down or refusing: keep records, back off 1 s to 10 s); a poke
        cuts a wait short, stop() ends it."""

        def note(state: tenacity.RetryCallState) -> None:
            if not self.failing:
                log.warning("cannot flush detection records (kept in %s): %s", self.box.path, state.outcome.exception())
            self.failing = True

        return tenacity.Retrying(stop=lambda state: self._stop.is_set(), wait=tenacity.wait_exponential(min=1, max=10),
                                 sleep=self._nap, before_sleep=note)

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()
