"""LitServe's batched loop, collecting each batch with blocking queue reads.

LitServe 0.2's `collate_requests` polls the request queue (a multiprocessing Manager queue, so every
poll is a round trip to the manager process) with 1 ms timeouts, and an empty batch sends it straight
back to polling. An idle server therefore burnt about a quarter of a core across the manager and the
workers (measured on 2 cores), and a busy one lost the same to polling between forward passes: on a
2-core machine, part of the gap between the server and the raw model (bench/serve_throughput.py).
Here a worker waits in one blocking read for the first request, then gives the batch `batch_timeout`
seconds from that first arrival to fill, and always takes what is already queued, up to `max_batch_size`.
Everything else (timeouts, START status, the sentinel that stops the loop) is LitServe's own.
"""

from __future__ import annotations

import time
from queue import Empty

from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop
from litserve.utils import LitAPIStatus, LoopResponseType

IDLE_WAIT_S = 1.0  # longest single wait for a first request; the loop then simply waits again


def collate_blocking(loop, lit_api, request_queue, transport, idle_wait: float = IDLE_WAIT_S):
    """(payloads, timed_out_uids) as LitServe's collate_requests returns them."""
    payloads: list = []
    timed_out: list = []
    apply_timeout = lit_api.request_timeout not in (-1, False)

    def take(item) -> None:
        if item == _SENTINEL_VALUE:
            raise _StopLoopError()
        response_queue_id, uid, timestamp, x_enc = item
        loop.put_response(
            transport=transport,
            response_queue_id=response_queue_id,
            uid=uid,
            response_data=(),
            status=LitAPIStatus.START,
            response_type=LoopResponseType.REGULAR,
        )
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
    """The loop a LitAPI of ours runs: this one when it batches, LitServe's choice otherwise."""
    return BlockingBatchedLoop() if max_batch_size > 1 else "auto"
