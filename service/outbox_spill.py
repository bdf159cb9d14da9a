"""Records a stopping server could not flush, parked in the object store until a running server adopts them.

    spill(box, objects)     # at exit, the database down: the box's rows as one JSON-lines object, then forgotten
    adopt(box, objects)     # a running server, now and then: every parked object back into its own outbox
    parked(objects)         # how many are waiting (GET /metrics: aidetect_outbox_parked_objects)

In the deployment the outbox lives on the pod's emptyDir, which goes with the pod: a pod that stops while
PostgreSQL is down (a rollout during a database upgrade) would lose the answers it had not flushed. The object
store that keeps review images is a second, independent place to park them. Rows leave the box only once
their object is written, and a parked object is deleted only once its rows are in the adopter's outbox, so
a crash at any point repeats records rather than losing them; the records handler skips ids it already
stored, so a repeat is harmless (the same holds when two servers adopt the same object at once).
"""

from __future__ import annotations

import logging
import os
import socket
import time

from service.outbox import Outbox, load_record

log = logging.getLogger(__name__)

PREFIX = "outbox-spill/"


def spill(box: Outbox, objects) -> tuple[int, str | None]:
    """Park every row of `box` in `objects` as one object: (rows parked, its key). Raises what the store
    raises, the rows kept in the box."""
    key = f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
    n = box.hand_over(lambda payloads: objects.put_at(key, "\n".join(payloads).encode()))
    return n, key if n else None


def adopt(box: Outbox, objects) -> int:
    """Move every parked object's records into `box`, which this server's flusher drains; returns the count."""
    moved = 0
    for key in objects.keys(PREFIX):
        text = objects.get(key).decode()
        records = [d for line in text.splitlines() if line and (d := load_record(line)) is not None]
        box.append(records)
        objects.delete(key)
        moved += len(records)
        log.warning("adopted %d detection records another server parked in %s/%s", len(records), objects.url, key)
    return moved


def parked(objects) -> int:
    """Parked objects waiting for a server to adopt them: one per server that stopped with records left."""
    return len(objects.keys(PREFIX))
