"""Every use of LitServe's private internals, in one place, for LitServe 0.2.19 (PINNED).

    loop = default_loop(max_batch_size)       # what a LitAPI of ours runs in its worker
    submit = worker_submitter(server, api)    # await submit({"data": b"...", "key_id": None}) -> the answer
    drop_routes(server.app, ("/v1/detect", "/"))

LitServe's public API (LitAPI, LitServer) covers a server whose routes LitServe owns. Ours reads the body
itself (service/body.py) and hands the worker bytes, and its workers wait on the queue instead of polling
it, so it reaches past that API: the request handler, the batched loop and their status values. Those
names carry no stability promise, so they live here alone, and tests/service/test_litserve_compat.py pins
the version and exercises each one: an upgrade fails there, loudly, before it fails in a request.

The blocking batch collector: LitServe 0.2's `collate_requests` polls the request queue (a
multiprocessing Manager queue, so every poll is a round trip to the manager process) with 1 ms timeouts,
and an empty batch sends it straight back to polling. An idle server therefore burnt about a quarter of a
core across the manager and the workers (measured on 2 cores), and a busy one lost the same to polling
between forward passes. Here a worker waits in one blocking read for the first request, then gives the
batch `batch_timeout` seconds from that first arrival to fill, and always takes what is already queued,
up to `max_batch_size`. Everything else (timeouts, the stop sentinel) is LitServe's own.

The pipe queues: LitServe 0.2 makes its request and response queues `Manager().Queue()` proxies, so every
image crosses four socket round trips through the manager process (HTTP put, worker get, worker put, HTTP
get), each pickled twice, and the HTTP process's put blocks its event loop for one. Plain
multiprocessing queues (a pipe each, written by a feeder thread) carry the same tuples with one pickle and
no third process. The Manager still holds LitServe's shared state (worker status, shutdown event), which
is not touched per request.

The answers, read by the event loop: LitServe's transport reads each answer with `asyncio.to_thread(get)`,
so every image cost the HTTP process a thread-pool hand-off both ways (a quarter of its CPU under load).
`LoopPipeTransport` watches the answer pipe's descriptor with the loop's own `add_reader` and takes every
answer already there in one wake-up. And the collector sends no START status: LitServe reads it only to
note which worker holds a request, for `restart_workers`, which this service leaves off (a dead worker
stops the server, and its orchestrator restarts the pod); each one was an extra pickle and pipe message
both ways per image.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing as mp
import multiprocessing.queues
import os
import signal
import time
from multiprocessing.reduction import ForkingPickler
from queue import Empty

import litserve
from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop
from litserve.server import LitServer, RegularRequestHandler
from litserve.transport.process_transport import MPQueueTransport

log = logging.getLogger(__name__)

PINNED = "0.2.19"  # the LitServe whose internals this module was written against and is tested on
IDLE_WAIT_S = 1.0  # longest single wait for a first request; the loop then simply waits again

__all__ = [
    "PINNED",
    "BlockingBatchedLoop",
    "LoopPipeTransport",
    "Payload",
    "PipeQueueServer",
    "collate_blocking",
    "default_loop",
    "drop_routes",
    "stop_children_on_sigterm",
    "worker_submitter",
]

if litserve.__version__ != PINNED:  # serve anyway (the tests are the gate), but say what is untested
    log.warning("LitServe %s is installed; service/litserve_compat.py is written for %s", litserve.__version__, PINNED)


def collate_blocking(loop, lit_api, request_queue, transport, idle_wait: float = IDLE_WAIT_S):
    """(payloads, timed_out_uids) as LitServe's collate_requests returns them."""
    payloads: list = []
    timed_out: list = []
    apply_timeout = lit_api.request_timeout not in (-1, False)

    def take(item) -> None:
        if item == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, x_enc = item
        # (no START status: see the module docstring)
        if apply_timeout and time.monotonic() - timestamp > lit_api.request_timeout:
            timed_out.append((response_queue_id, uid))
        else:
            payloads.append((response_queue_id, uid, x_enc))

    try:
        take(request_queue.get(timeout=idle_wait))
    except Empty:
        return payloads, timed_out
    fill_until = time.monotonic() + lit_api.batch_timeout
    while len(payloads) + len(timed_out) < lit_api.max_batch_size:
        remaining = fill_until - time.monotonic()
        try:
            item = request_queue.get(timeout=remaining) if remaining > 0 else request_queue.get_nowait()
        except Empty:
            break
        take(item)
    return payloads, timed_out


class BlockingBatchedLoop(BatchedLoop):
    def get_batch_requests(self, lit_api, request_queue, transport):
        return collate_blocking(self, lit_api, request_queue, transport)


def default_loop(max_batch_size: int):
    """The loop a LitAPI of ours runs: the blocking one when it batches, LitServe's choice otherwise."""
    return BlockingBatchedLoop() if max_batch_size > 1 else "auto"


class Payload(dict):
    """A worker payload whose repr is short. RegularRequestHandler.handle_request formats every request
    into a debug message with an f-string, so the repr is built even with debug logging off: for a dict
    holding the image bytes that was 0.17 ms of the HTTP process's CPU for a 20 KB image, and grows with the
    upload (tens of ms for a large photo). It pickles as a dict subclass; the worker reads it as a dict."""

    def __repr__(self) -> str:
        data = self.get("data")
        size = f"{len(data)} bytes" if isinstance(data, bytes | bytearray) else type(data).__name__
        return f"<payload: {size}>"


def worker_submitter(server, lit_api):
    """An async function that puts one payload on `lit_api`'s worker queue and returns the worker's answer
    (what encode_response made), as LitServe's own route would, without LitServe reading the body."""
    handler = RegularRequestHandler(lit_api, server)

    async def submit(payload: dict):
        return await handler.handle_request(Payload(payload), dict)

    return submit


def drop_routes(app, paths: tuple[str, ...]) -> None:
    """Remove the routes LitServe registered at these paths, so ours (added later) answer there."""
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) not in paths]


class _Pipe(multiprocessing.queues.Queue):
    """A multiprocessing queue whose feeder thread is never joined at exit. A process stopped with items
    still unsent (a worker whose HTTP reader is gone, an HTTP process whose workers are gone) would otherwise
    block in that join until a second signal; what it drops there had nobody left to read it."""

    def _reset(self, after_fork=False):
        super()._reset(after_fork=after_fork)
        self._joincancelled = True


class LoopPipeTransport(MPQueueTransport):
    """LitServe's queue transport, its answers read by the event loop (module docstring). The workers
    unpickle it as the plain MPQueueTransport (its __reduce__): they only send."""

    def __init__(self, manager, queues: list[_Pipe]):
        super().__init__(manager, queues)
        self._inbox: dict[int, collections.deque] = {}
        self._waiter: dict[int, asyncio.Future] = {}
        self._watched: dict[int, asyncio.AbstractEventLoop] = {}

    async def areceive(self, consumer_id: int, timeout: float | None = None, block: bool = True):
        """The next answer for this HTTP process; None after a quiet second (LitServe's loop asks again)."""
        if self._closed:
            raise asyncio.CancelledError("Transport closed")
        inbox = self._inbox.setdefault(consumer_id, collections.deque())
        if not inbox:
            await self._readable(consumer_id, 1.0 if timeout is None else min(timeout, 1.0))
            if self._closed:
                raise asyncio.CancelledError("Transport closed")
            if not inbox:
                if timeout is not None and timeout <= 1.0:
                    raise Empty
                return None
        return inbox.popleft()

    async def _readable(self, consumer_id: int, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if self._watched.get(consumer_id) is not loop:  # first wait in this process's loop
            pipe = self._queues[consumer_id]
            loop.add_reader(pipe._reader.fileno(), self._drain, consumer_id, pipe)
            self._watched[consumer_id] = loop
        waiter = self._waiter[consumer_id] = loop.create_future()
        timer = loop.call_later(seconds, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter.pop(consumer_id, None)

    def _drain(self, consumer_id: int, pipe: _Pipe) -> None:
        """The loop's callback when the pipe has data: every whole answer there, as Queue.get unpickles it.
        A message is written whole by one feeder thread, so a started one is read to its end at once. Each
        one read gives back the slot its put() took, as Queue.get does: the count is a bounded semaphore, and
        left alone it would stop the workers' puts after 2**31 - 1 answers (about 6 months at 140 images/s)."""
        inbox = self._inbox.setdefault(consumer_id, collections.deque())
        reader = pipe._reader
        try:
            while reader.poll():
                inbox.append(ForkingPickler.loads(reader.recv_bytes()))
                pipe._sem.release()
        except (EOFError, OSError) as e:  # every writer gone: the server is stopping
            log.debug("answer pipe %d closed: %s", consumer_id, e)
            self._watched.pop(consumer_id, None)
            asyncio.get_running_loop().remove_reader(reader.fileno())
        _settle(self._waiter.get(consumer_id))


def _settle(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class PipeQueueServer(LitServer):
    """LitServer whose per-request queues are multiprocessing queues, not Manager proxies (module docstring).

    `grace_s`: how long uvicorn waits for in-flight requests after a stop signal. The signal reaches the
    whole process group, so the workers die at once, and a request still waiting on one would otherwise
    hold the HTTP process open for LitServe's 30 s (with Manager queues it failed as the Manager died)."""

    def __init__(self, *args, grace_s: float = 3.0, **kwargs):
        if kwargs.get("restart_workers"):  # it needs the START statuses the collector no longer sends
            raise ValueError("PipeQueueServer does not restart workers: a dead worker stops the server")
        super().__init__(*args, **kwargs)
        self.uvicorn_graceful_timeout = grace_s

    def _init_manager(self, num_api_servers: int):
        manager = super()._init_manager(num_api_servers)
        if isinstance(self._transport, MPQueueTransport):  # (a ZMQ transport, fast_queue=True, is left alone)
            # Spawn's context: the inference workers are spawned, and a queue made in another context
            # cannot be handed to them. The HTTP processes are forked afterwards and inherit theirs.
            ctx = mp.get_context("spawn")
            for path in self.litapi_request_queues:
                self.litapi_request_queues[path] = _Pipe(ctx=ctx)
            self._transport = LoopPipeTransport(manager, [_Pipe(ctx=ctx) for _ in range(num_api_servers)])
        return manager


def stop_children_on_sigterm() -> None:
    """SIGTERM to the main process alone (`kill PID`, a supervisor that signals only its child) stops the
    server as Ctrl-C does: LitServe's run() shuts down on KeyboardInterrupt, draining the HTTP process, then
    ending the workers and its manager. By default the main process died at once and left them running,
    holding the port and a model each; and as a container's PID 1 it ignored SIGTERM altogether (the kernel
    drops what PID 1 has no handler for), so a pod's end waited out its grace period and was killed.
    Children forked later inherit this handler; in them it does what SIGTERM did before."""
    main = os.getpid()

    def on_term(signum, frame):
        if os.getpid() != main:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.warning("SIGTERM: stopping the HTTP process and the workers")
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
