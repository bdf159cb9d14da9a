"""Whether a forward pass may use every core: inference workers tell each other when they are scoring.

    share = CoreShare(home / "cores-8000.lock", workers=2)   # each worker, at setup
    with share.busy():                                      # while it scores a batch
        if share.alone(): ...                               # no other worker scoring: take every core

Under load the default layout (service/workers.py: one single-thread worker per core) is what gets the
most images/s, but a lone request then runs on one core while the other idles: on 2 cores its latency
is about twice what it could be. Each worker therefore also keeps a session with a thread per core and
uses it when no sibling is scoring. The workers are separate processes, so they tell each other through
POSIX byte-range locks on one file: worker k holds byte k while it scores and, for its whole life, byte
workers+k to own the slot. Locks die with their process, so a crashed worker never leaves a stale
"busy". Taking our own byte before looking at the others' means two workers that start at the same
moment both see the other busy and stay on one core: the check errs towards sharing, never oversubscribing.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


class CoreShare:
    def __init__(self, path: str | Path, workers: int):
        self.workers = workers
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.slot: int | None = None
        for k in range(workers):
            if self._try(workers + k):
                self.slot = k  # held until this process ends
                break

    def _try(self, byte: int) -> bool:
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)
        except OSError:
            return False
        return True

    @contextmanager
    def busy(self):
        if self.slot is None:  # more workers than slots (an operator's odd layout): never alone
            yield
            return
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, self.slot)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, self.slot)

    def alone(self) -> bool:
        """No other worker is scoring now (call inside busy())."""
        if self.slot is None:
            return False
        for k in range(self.workers):
            if k == self.slot:
                continue
            if not self._try(k):
                return False
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, k)
        return True

    def close(self) -> None:
        os.close(self.fd)
