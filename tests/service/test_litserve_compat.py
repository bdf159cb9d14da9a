"""The LitServe internals the service uses (service/litserve_compat.py), pinned to the installed version:
the blocking batch collector against a real queue, and the request handler and pipe queues against a real
worker."""

from __future__ import annotations

import multiprocessing.queues
import queue
import threading
import time
from types import SimpleNamespace

import litserve
import pytest
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError

from service.litserve_compat import PINNED, collate_blocking


def test_litserve_is_the_pinned_version():
    # service/litserve_compat.py reaches into LitServe's private names; a new version may have moved them.
    assert litserve.__version__ == PINNED, (
        f"LitServe {litserve.__version__} is installed but service/litserve_compat.py is written for {PINNED}: "
        "read LitServe's loops/base.py, loops/simple_loops.py and server.py RegularRequestHandler, adapt the "
        "module, run these tests, then move PINNED (and pyproject's pin) together"
    )


class Loop:
    """LitServe's loop, as the collector sees it: it must send nothing back while collecting (no START
    status, litserve_compat's docstring), so every status it would send is kept to fail the test."""

    def __init__(self):
        self.sent = []

    def put_response(self, transport, response_queue_id, uid, response_data, status, response_type):
        self.sent.append((uid, status))


def api(max_batch_size=4, batch_timeout=0.0, request_timeout=30):
    return SimpleNamespace(max_batch_size=max_batch_size, batch_timeout=batch_timeout, request_timeout=request_timeout)


def request(uid, age=0.0):
    return (0, uid, time.monotonic() - age, {"data": uid})


def test_takes_what_is_queued_up_to_the_batch_limit_without_waiting():
    q = queue.Queue()
    for i in range(6):
        q.put(request(f"r{i}"))
    loop = Loop()
    t0 = time.monotonic()
    payloads, timed_out = collate_blocking(loop, api(max_batch_size=4), q, None, idle_wait=5)
    assert time.monotonic() - t0 < 3  # nothing waited for: waiting would have cost the 5 s idle_wait
    assert [p[1] for p in payloads] == ["r0", "r1", "r2", "r3"] and timed_out == []
    assert loop.sent == [] and q.qsize() == 2  # the rest wait for the next batch


def test_blocks_for_the_first_request_then_gives_the_batch_its_timeout_to_fill():
    q = queue.Queue()

    def producer():
        time.sleep(0.3)
        q.put(request("first"))
        time.sleep(0.05)
        q.put(request("second"))  # inside the 0.5 s fill window
        time.sleep(3.0)  # far past the window, so a loaded machine cannot blur the two
        q.put(request("late"))  # after it: the next batch's

    threading.Thread(target=producer, daemon=True).start()
    t0 = time.monotonic()
    payloads, _ = collate_blocking(Loop(), api(batch_timeout=0.5), q, None, idle_wait=5)
    waited = time.monotonic() - t0
    assert [p[1] for p in payloads] == ["first", "second"]
    assert 0.75 <= waited < 3  # 0.3 s to the first request, then the whole fill window, not 'late'
    payloads, _ = collate_blocking(Loop(), api(batch_timeout=0.0), q, None, idle_wait=5)
    assert [p[1] for p in payloads] == ["late"]


def test_an_idle_queue_returns_an_empty_batch_after_the_idle_wait():
    t0 = time.monotonic()
    assert collate_blocking(Loop(), api(), queue.Queue(), None, idle_wait=0.2) == ([], [])
    assert 0.15 <= time.monotonic() - t0 < 3  # the idle wait, not the request timeout (30 s)


def test_requests_older_than_the_request_timeout_are_reported_not_run():
    q = queue.Queue()
    q.put(request("stale", age=10))
    q.put(request("fresh"))
    payloads, timed_out = collate_blocking(Loop(), api(request_timeout=5), q, None, idle_wait=1)
    assert [p[1] for p in payloads] == ["fresh"] and timed_out == [(0, "stale")]
    q.put(request("old", age=10))
    payloads, timed_out = collate_blocking(Loop(), api(request_timeout=-1), q, None, idle_wait=1)
    assert [p[1] for p in payloads] == ["old"] and timed_out == []  # -1: no timeout


@pytest.mark.parametrize("position", ["first", "later"])
def test_the_shutdown_sentinel_stops_the_loop(position):
    q = queue.Queue()
    if position == "later":
        q.put(request("r0"))
    q.put(_SENTINEL_VALUE)
    with pytest.raises(_StopLoopError):
        collate_blocking(Loop(), api(), q, None, idle_wait=1)


@pytest.mark.slow
def test_the_submitter_reaches_a_real_worker_through_our_route_and_the_blocking_loop():
    import asyncio

    import litserve as ls
    from fastapi.testclient import TestClient
    from litserve.utils import wrap_litserve_start

    from aidetect.testing.echo_api import EchoAPI
    from service.litserve_compat import (
        BlockingBatchedLoop,
        LoopPipeTransport,
        PipeQueueServer,
        drop_routes,
        worker_submitter,
    )

    api = EchoAPI(max_batch_size=4, batch_timeout=0.05, api_path="/v1/echo", loop=BlockingBatchedLoop())
    server = PipeQueueServer(api, accelerator="cpu", workers_per_device=1, timeout=30)
    assert isinstance(server, ls.LitServer)
    drop_routes(server.app, ("/v1/echo",))
    assert all(getattr(r, "path", None) != "/v1/echo" for r in server.app.router.routes)
    submit = worker_submitter(server, api)

    @server.app.post("/v1/echo")
    async def echo(n: int):
        return await asyncio.gather(*(submit({"data": n + i}) for i in range(3)))

    with wrap_litserve_start(server) as s, TestClient(s.app) as client:
        # the queues each request crosses are pipes, not proxies to the Manager's process
        queues = [s._get_request_queue("/v1/echo"), *s._transport._queues]
        assert all(isinstance(q, multiprocessing.queues.Queue) for q in queues), queues
        assert isinstance(s._transport, LoopPipeTransport)  # answers read by the event loop
        r = client.post("/v1/echo", params={"n": 10})
    assert r.status_code == 200
    answers = r.json()
    assert [a["twice"] for a in answers] == [20, 22, 24]  # each request its own answer, in order
    assert max(a["batch"] for a in answers) > 1  # queued together, taken as one batch


def test_a_payload_is_a_dict_whose_repr_does_not_copy_the_image():
    import pickle

    from service.litserve_compat import Payload

    p = Payload({"data": b"x" * 1_000_000, "key_id": "k"})
    assert repr(p) == "<payload: 1000000 bytes>" and f"{p}" == repr(p)  # what LitServe's debug f-string builds
    back = pickle.loads(pickle.dumps(p))  # as it crosses to the worker
    assert back == {"data": b"x" * 1_000_000, "key_id": "k"} and back["data"] == p["data"]


def answer_pipe():
    import multiprocessing as mp

    from service.litserve_compat import LoopPipeTransport, _Pipe

    q = _Pipe(ctx=mp.get_context("spawn"))
    return q, LoopPipeTransport(None, [q])


def test_the_loop_transport_reads_answers_in_order_whole_and_all_at_once():
    import asyncio

    q, transport = answer_pipe()
    big = b"y" * 300_000  # several pipe buffers: read to its end once started

    async def main():
        first = asyncio.create_task(transport.areceive(0))
        await asyncio.sleep(0.05)
        assert not first.done()  # nothing sent yet: it waits on the loop, no thread holds a get()
        q.put(("u0", ("a", "OK", "REGULAR", 0)))
        assert await asyncio.wait_for(first, 5) == ("u0", ("a", "OK", "REGULAR", 0))
        for i in range(1, 4):
            q.put((f"u{i}", (big if i == 2 else i,)))
        got = [await asyncio.wait_for(transport.areceive(0), 5)]
        got += [await transport.areceive(0) for _ in range(2)]  # already there after one wake-up
        return got

    slots = q._sem.get_value()
    got = asyncio.run(main())
    assert [g[0] for g in got] == ["u1", "u2", "u3"] and got[1][1][0] == big
    # every answer read gave back the slot its put took (unbalanced, puts block after 2**31 - 1 answers)
    assert q._sem.get_value() == slots
    q.close()


def test_the_loop_transport_says_none_after_a_quiet_while_and_stops_when_closed():
    import asyncio

    q, transport = answer_pipe()

    async def main():
        t0 = time.monotonic()
        assert await transport.areceive(0) is None  # LitServe's loop asks again
        quiet = time.monotonic() - t0
        with pytest.raises(queue.Empty):
            await transport.areceive(0, timeout=0.1)  # a caller's own timeout is an error, as in LitServe
        transport.close()  # sends the None sentinel too
        with pytest.raises(asyncio.CancelledError):
            await transport.areceive(0)
        return quiet

    assert 0.9 <= asyncio.run(main()) < 3
    q.close()


def test_the_transport_reaches_workers_as_litserve_own_and_restarts_are_refused():
    from litserve.transport.process_transport import MPQueueTransport

    from service.litserve_compat import PipeQueueServer

    q, transport = answer_pipe()
    rebuild, args = transport.__reduce__()  # how it is pickled for a spawned worker, which only sends
    assert rebuild is MPQueueTransport and args == (None, [q])
    with pytest.raises(ValueError, match="restart"):
        PipeQueueServer(None, restart_workers=True)
    q.close()
