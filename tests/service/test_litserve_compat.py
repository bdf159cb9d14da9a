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
from litserve.utils import LitAPIStatus

from service.litserve_compat import PINNED, collate_blocking


def test_litserve_is_the_pinned_version():
    # service/litserve_compat.py reaches into LitServe's private names; a new version may have moved them.
    assert litserve.__version__ == PINNED, (
        f"LitServe {litserve.__version__} is installed but service/litserve_compat.py is written for {PINNED}: "
        "read LitServe's loops/base.py, loops/simple_loops.py and server.py RegularRequestHandler, adapt the "
        "module, run these tests, then move PINNED (and pyproject's pin) together"
    )


class Loop:
    """Records the START statuses the collector sends, as LitServe's loop would forward them."""

    def __init__(self):
        self.started = []

    def put_response(self, transport, response_queue_id, uid, response_data, status, response_type):
        assert status == LitAPIStatus.START
        self.started.append(uid)


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
    assert time.monotonic() - t0 < 1  # nothing waited for
    assert [p[1] for p in payloads] == ["r0", "r1", "r2", "r3"] and timed_out == []
    assert loop.started == ["r0", "r1", "r2", "r3"] and q.qsize() == 2  # the rest wait for the next batch


def test_blocks_for_the_first_request_then_gives_the_batch_its_timeout_to_fill():
    q = queue.Queue()

    def producer():
        time.sleep(0.3)
        q.put(request("first"))
        time.sleep(0.05)
        q.put(request("second"))  # inside the 0.5 s fill window
        time.sleep(1.0)
        q.put(request("late"))  # after it: the next batch's

    threading.Thread(target=producer, daemon=True).start()
    t0 = time.monotonic()
    payloads, _ = collate_blocking(Loop(), api(batch_timeout=0.5), q, None, idle_wait=5)
    waited = time.monotonic() - t0
    assert [p[1] for p in payloads] == ["first", "second"]
    assert 0.75 <= waited < 1.3  # 0.3 s to the first request, then the whole fill window
    payloads, _ = collate_blocking(Loop(), api(batch_timeout=0.0), q, None, idle_wait=5)
    assert [p[1] for p in payloads] == ["late"]


def test_an_idle_queue_returns_an_empty_batch_after_the_idle_wait():
    t0 = time.monotonic()
    assert collate_blocking(Loop(), api(), queue.Queue(), None, idle_wait=0.2) == ([], [])
    assert 0.15 <= time.monotonic() - t0 < 1


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
    from service.litserve_compat import BlockingBatchedLoop, PipeQueueServer, drop_routes, worker_submitter

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
