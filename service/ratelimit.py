"""Rate limits that hold across replicas: token buckets in the records database (table rate_buckets).

    limiter = limiter_for(settings, records)        # shared on PostgreSQL, in-process on embedded SQLite
    limiter.take("key:ab12", per_minute=600)        # 0.0 when allowed, else seconds until the next token

Behind a round-robin Service, buckets kept in each process give a key its limit once per replica. Here
one statement takes a token or says how long to wait, atomically (INSERT ... ON CONFLICT DO UPDATE locks
the row), on the database's clock, so replicas on machines whose clocks differ still agree. It costs one
round trip per request to a database every replica already uses.

While the database is unreachable the process's own buckets take over: detection keeps working and each
replica still limits what it serves, as before this existed, rather than refusing everyone. So they do while
it is merely unresponsive (a partition leaves pooled connections waiting on TCP for minutes): a take that
has not answered within SLOW_S is answered by them, and while one such take is outstanding no other asks
the database, so at most one thread waits on it.

    wait = await take_async(limiter, "key:ab12", 600)   # from an event loop: either limiter, bounded
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import text

from service.auth import RateLimiter

log = logging.getLogger(__name__)

# Both expressions read the row as it was (Postgres evaluates SET from the old row), so their order is free.
# EXCLUDED.at is stamped before the row lock is taken: a take that stamped earlier can commit after one that
# stamped later, so elapsed time is clamped at zero and `at` never moves back (else tokens go below zero
# and the wait exceeds one token's interval).
_REFILLED = "LEAST(:cap, b.tokens + GREATEST(0, EXCLUDED.at - b.at) * :rate)"
_TAKE = text(
    f"""
    INSERT INTO rate_buckets AS b (who, tokens, at, allowed)
    VALUES (:who, :cap - 1, extract(epoch from clock_timestamp()), :cap >= 1)
    ON CONFLICT (who) DO UPDATE SET
      allowed = {_REFILLED} >= 1,
      tokens = {_REFILLED} - CASE WHEN {_REFILLED} >= 1 THEN 1 ELSE 0 END,
      at = GREATEST(b.at, EXCLUDED.at)
    RETURNING tokens, allowed
    """
)
# A bucket untouched for a minute has refilled completely: deleting it changes nothing a caller sees.
_PRUNE = text("DELETE FROM rate_buckets WHERE at < extract(epoch from clock_timestamp()) - 120")
PRUNE_EVERY_S = 300.0
WARN_EVERY_S = 60.0
# After a failure the database is left alone this long, so no request waits on a connection known to fail.
RETRY_AFTER_S = 5.0
SLOW_S = 0.5  # a take still unanswered after this is answered by the process's buckets


class SharedRateLimiter:
    """RateLimiter's interface over rate_buckets; `engine` returns the records database's engine."""

    blocking = True  # one database round trip: callers on an event loop run it in a thread

    def __init__(self, engine: Callable[[], object], fallback: RateLimiter | None = None):
        self.engine = engine
        self.fallback = fallback or RateLimiter()
        self._pruned = time.monotonic()
        self._warned = 0.0
        self._down_until = 0.0
        self._asking: dict[int, float] = {}  # takes waiting on the database: thread id -> when they asked
        self._lock = threading.Lock()

    def stalled(self) -> bool:
        """Whether a take has waited on the database longer than SLOW_S."""
        with self._lock:
            return any(time.monotonic() - t > SLOW_S for t in self._asking.values())

    def take(self, who: str, per_minute: int) -> float:
        rate = per_minute / 60.0
        if time.monotonic() < self._down_until or self.stalled():
            return self.fallback.take(who, per_minute)
        me = threading.get_ident()
        with self._lock:
            self._asking[me] = time.monotonic()
        try:
            with self.engine().begin() as conn:
                tokens, allowed = conn.execute(_TAKE, {"who": who, "cap": float(per_minute), "rate": rate}).one()
                if time.monotonic() - self._pruned > PRUNE_EVERY_S:
                    self._pruned = time.monotonic()
                    conn.execute(_PRUNE)
        except Exception as e:
            self._down_until = time.monotonic() + RETRY_AFTER_S
            self._warn(e)
            return self.fallback.take(who, per_minute)
        finally:
            with self._lock:
                self._asking.pop(me, None)
        if allowed:
            return 0.0
        return (1.0 - tokens) / rate if rate > 0 else math.inf

    def _warn(self, why) -> None:
        if time.monotonic() - self._warned > WARN_EVERY_S:
            self._warned = time.monotonic()
            log.warning("shared rate limits unavailable, limiting per process meanwhile: %s", why)


async def take_async(limiter, who: str, per_minute: int) -> float:
    """limiter.take from an event loop. The shared limiter asks the database, in a thread; one that has not
    answered within SLOW_S is answered by the process's buckets, and the thread left waiting marks the
    limiter stalled, so the requests behind it do not ask."""
    if not getattr(limiter, "blocking", False):
        return limiter.take(who, per_minute)
    try:
        return await asyncio.wait_for(asyncio.to_thread(limiter.take, who, per_minute), SLOW_S)
    except TimeoutError:
        limiter._warn(f"no answer within {SLOW_S} s")
        return limiter.fallback.take(who, per_minute)


def limiter_for(settings, records) -> RateLimiter | SharedRateLimiter:
    """Shared buckets where replicas share a server database; the process's own on the embedded store
    (one process on one machine, where a table would only add a write per request)."""
    from model.etl.store import default_urls
    from service.records import embedded

    if embedded(default_urls(settings)[0]):
        return RateLimiter()
    return SharedRateLimiter(lambda: records.get().store.engine)
