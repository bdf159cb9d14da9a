"""The detect routes refuse new images while the local outbox is full, so an outage of the records
database never costs records.

While the database is down every detection record waits in the worker's outbox on local disk
(service/outbox.py). Unbounded, a long outage would fill the disk, and then appends would fail and
records would be lost. Past `outbox_max_records` the detect routes answer 503 with Retry-After instead:
the platform retries later, and what was answered is still recorded once the database returns. The
backlog is read at most once a RECHECK_S, from the span of the outbox's sequence numbers, so the check
costs the same at ten records as at ten million.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from fastapi import HTTPException

log = logging.getLogger(__name__)

RECHECK_S = 1.0
RETRY_AFTER_S = 30
# What one waiting record may take on disk, for sizing the limit against a volume: typical records are
# 0.5-1 KB of JSON; a signed C2PA summary (up to 20 actions and agents) makes them about 2 KB.
RECORD_BYTES = 2048


class OutboxRoom:
    """The FastAPI dependency: raises 503 while `outbox` holds `limit` or more records (0 = no limit)."""

    def __init__(self, outbox, limit: int):
        self.outbox, self.limit = outbox, limit
        self._backlog, self._read_at = 0, -math.inf
        self._full = False

    async def backlog(self) -> int:
        if time.monotonic() - self._read_at >= RECHECK_S:
            self._read_at = time.monotonic()
            try:
                self._backlog = await asyncio.to_thread(self.outbox.backlog)
            except Exception as e:  # an unreadable outbox is the worker's to report; this check does not fail detects
                log.warning("cannot read the outbox backlog of %s: %s", self.outbox.path, e)
        return self._backlog

    async def __call__(self) -> None:
        if not self.limit:
            return
        waiting = await self.backlog()
        full = waiting >= self.limit
        if full != self._full:  # said once each way, not per refused request
            self._full = full
            if full:
                log.error("outbox %s holds %d records (limit %d): refusing new images until the database takes them",
                          self.outbox.path, waiting, self.limit)  # fmt: skip
            else:
                log.warning("outbox back under its limit (%d records): taking images again", waiting)
        if full:
            raise HTTPException(
                503,
                f"{waiting} detection records are waiting for the records database on this server (limit "
                f"{self.limit}); new images are refused until they are stored, so none is lost",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
