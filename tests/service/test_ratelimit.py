"""Shared rate limits (service/ratelimit.py) on a real PostgreSQL: two limiters stand for two replicas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from aidetect.settings import Settings
from service.auth import RateLimiter
from service.ratelimit import SharedRateLimiter, limiter_for
from service.records import Records


@pytest.fixture(scope="module")
def migrated(postgres):
    """A PostgreSQL database at head (as the PreSync job leaves it): its URL."""
    pg = postgres
    url = pg.create_database("limits")
    Records.migrate_store(url=url)
    return url


def _engine(url: str):
    return create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))


def test_two_replicas_share_one_bucket_per_key(migrated):
    a, b = _engine(migrated), _engine(migrated)
    replicas = [SharedRateLimiter(lambda: a), SharedRateLimiter(lambda: b)]
    # Round robin, and concurrently: the row lock must not let two takes spend the same token.
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda i: replicas[i % 2].take("key:shared", 10), range(30)))
    assert sum(w == 0.0 for w in waits) == 10  # a minute's worth of burst, once, not once per replica
    refused = [w for w in waits if w > 0]
    assert all(0 < w <= 6.0 for w in refused)  # 10 a minute: a token every 6 s
    assert replicas[0].take("key:other", 10) == 0.0  # buckets are per identity


def test_a_take_stamped_before_a_later_commit_never_runs_the_clock_back(migrated):
    # Each take stamps its time before it waits for the row lock, so under contention a take can find
    # the row already stamped later than itself: here 1 s later, with half a token left.
    engine = _engine(migrated)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rate_buckets (who, tokens, at, allowed) "
                "VALUES ('key:late', 0.5, extract(epoch from clock_timestamp()) + 1, false)"
            )
        )
    wait = SharedRateLimiter(lambda: engine).take("key:late", 10)
    # Half a token at 10 a minute is 3 s away; negative elapsed time would have taken tokens away too.
    assert 0 < wait <= 3.0
    with engine.connect() as conn:
        tokens, ahead = conn.execute(
            text("SELECT tokens, at - extract(epoch from clock_timestamp()) FROM rate_buckets WHERE who = 'key:late'")
        ).one()
    assert tokens == pytest.approx(0.5) and ahead > 0.5  # nothing spent, and the row's time kept


def test_unreachable_database_falls_back_to_the_process_limit():
    tries = []

    def down():
        tries.append(1)
        raise ConnectionError("database is down")

    limiter = SharedRateLimiter(down)
    assert [limiter.take("key:x", 2) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("key:x", 2) > 0  # still limited, by this process alone
    assert len(tries) == 1  # and the database is not asked again at once: no request waits on it


def test_the_embedded_store_keeps_buckets_in_the_process(tmp_path, migrated):
    assert type(limiter_for(Settings(home=tmp_path), records=None)) is RateLimiter
    shared = limiter_for(Settings(home=tmp_path, store_url=migrated), records=None)
    assert isinstance(shared, SharedRateLimiter)


@pytest.mark.timeout(120)  # a regression waits on the frozen backend: fail in minutes, not at the suite's limit
def test_a_database_that_stops_answering_holds_one_thread_and_no_request(migrated):
    """A partition, or a hung server, leaves a pooled connection waiting on TCP for minutes: here the
    backend process behind the pool's connection is frozen (SIGSTOP). The first take waits SLOW_S and is
    answered by the process's buckets; the ones behind it do not ask the database at all; once it
    answers again the shared buckets are back."""
    import asyncio
    import os
    import signal
    import time

    from service import ratelimit

    def run(coro):  # not asyncio.run: that joins the executor's threads, the frozen one among them
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()

    engine, asked = _engine(migrated), []
    limiter = SharedRateLimiter(lambda: asked.append(1) or engine)
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()  # the pool's one connection
    assert run(ratelimit.take_async(limiter, "key:frozen", 600)) == 0.0 and len(asked) == 1

    async def many(n: int) -> list[float]:
        return [await ratelimit.take_async(limiter, "key:frozen", 600) for _ in range(n)]

    os.kill(backend, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        waits = run(many(20))
        took = time.monotonic() - t0
        assert waits == [0.0] * 20  # answered, by the process's own buckets
        assert len(asked) == 2  # one take went to the database and is still waiting; none other asked
        assert limiter.stalled()
        assert took < 20 * ratelimit.SLOW_S  # not every request waited for it
    finally:
        os.kill(backend, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while limiter.stalled():  # the waiting take gets its answer
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run(ratelimit.take_async(limiter, "key:frozen", 600)) == 0.0 and len(asked) == 3
