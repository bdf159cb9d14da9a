"""A stop signal ends the detector promptly even with requests in flight (service/litserve_compat.py's
pipe queues and grace period): the signal reaches the whole process group, so the workers are gone at once
and nothing will answer what is still queued; the HTTP process must not wait on it."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from aidetect.testing.pictures import solid

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 12  # LitServe's own grace is 30 s; ours (PipeQueueServer's grace_s) is 3


def big_jpeg() -> bytes:
    # about 3.6 MP of smooth gradient: small on the wire, yet tens of ms to decode and fit, so a burst
    # of them keeps one worker busy for seconds
    h, w = 1800, 2000
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    buf = io.BytesIO()
    Image.fromarray(ramp.astype(np.uint8)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_a_stop_signal_with_requests_in_flight_ends_every_process(detector_with):
    url = detector_with(AIDETECT_WORKERS_PER_DEVICE="1", AIDETECT_RATE_LIMIT_PER_MINUTE="100000")
    proc = detector_with.procs[-1]
    body = big_jpeg()
    first = threading.Event()
    outcomes: list[object] = []

    def client() -> None:
        with httpx.Client(timeout=60) as c:
            for _ in range(4):
                try:
                    r = c.post(f"{url}/v1/detect", content=body, headers={"Content-Type": "image/jpeg"})
                    outcomes.append(r.status_code)
                    first.set()
                except httpx.HTTPError as e:  # the server went away mid-request: expected after the signal
                    outcomes.append(type(e).__name__)
                    return

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    assert first.wait(60), "no answer before the signal"
    assert len(outcomes) < 48, "every request was answered before the signal: nothing was in flight"
    os.killpg(proc.pid, signal.SIGTERM)
    # the main process dies at once (no handler); the rest of the group (HTTP process, workers, LitServe's
    # manager) must follow within the bound
    deadline = time.monotonic() + STOP_WITHIN_S
    while (left := group_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.wait(5)
    assert not left, f"still running {STOP_WITHIN_S} s after SIGTERM with requests in flight:\n{left}"
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client still waits on a server that is gone"
    assert 200 in outcomes


def test_sigterm_to_the_main_process_alone_stops_the_http_process_and_the_workers(detector_with):
    """What `kill PID`, or a supervisor that signals only its child, sends. The main process used to die alone,
    leaving the HTTP process, the workers and LitServe's manager running, the port still taken."""
    url = detector_with(AIDETECT_WORKERS_PER_DEVICE="2")
    proc = detector_with.procs[-1]
    assert httpx.get(f"{url}/health", timeout=10).text == "ok"
    before = group_of(proc.pid)
    assert len(before.splitlines()) >= 4, before  # main, manager, HTTP process, two workers
    os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN_S
    while (left := group_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still running {STOP_WITHIN_S} s after SIGTERM to the main process alone:\n{left}"
    assert proc.wait(5) == 0  # a requested stop, done: not a crash
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))  # the port is free for the next start


def test_every_answer_given_before_a_stop_is_in_the_records_when_the_process_ends(detector_with, tiny_model, tmp_path):
    """The flusher takes the outbox every half second and dies with its process; in the deployment the outbox
    is on the pod's emptyDir, so what it had not taken went with the pod. The main process now drains it once
    everything else has stopped."""
    from aidetect.settings import Settings
    from service.api import outbox_path
    from service.outbox import Outbox
    from service.records import Records

    settings = tiny_model[0]
    home = tmp_path / "own-home"  # its own outbox and records: no other server of the session flushes them
    url = detector_with(AIDETECT_HOME=str(home), AIDETECT_TRACKING_URI=settings.resolved_tracking_uri)
    proc = detector_with.procs[-1]
    body = solid((64, 64), (120, 120, 120), fmt="JPEG")
    with httpx.Client(timeout=60) as c:
        ids = [c.post(f"{url}/v1/detect", content=body, headers={"Content-Type": "image/jpeg"}).json()["id"]
               for _ in range(12)]  # fmt: skip
    os.kill(proc.pid, signal.SIGTERM)  # at once: the last answers are younger than the flusher's interval
    assert proc.wait(60) == 0
    served = Settings(home=home)
    assert len(Outbox(outbox_path(served))) == 0
    db = Records.open(served)
    try:
        assert all(db.get_detection(i) is not None for i in ids)
    finally:
        db.close()



def test_answers_a_server_could_not_record_before_stopping_are_parked_and_another_server_records_them(
    detector_with, tiny_model, tmp_path
):
    """A pod that stops while the database is down would lose its emptyDir outbox; the main process parks
    what it could not flush in the review images' object store, and the next server to start adopts it."""
    from aidetect.settings import Settings
    from service.outbox_spill import PREFIX
    from service.records import Records

    settings = tiny_model[0]
    objects = tmp_path / "objects"  # shared by both servers, as the deployment's S3 bucket is
    shared = {"AIDETECT_OBJECT_STORE": str(objects), "AIDETECT_TRACKING_URI": settings.resolved_tracking_uri}
    down = "postgresql://aidetect:secret@127.0.0.1:9/aidetect"  # the discard port: refused at once
    url = detector_with(AIDETECT_HOME=str(tmp_path / "stopping"), AIDETECT_STORE_URL=down, **shared)
    body = solid((64, 64), (90, 90, 90), fmt="JPEG")
    with httpx.Client(timeout=60) as c:
        ids = [c.post(f"{url}/v1/detect", content=body, headers={"Content-Type": "image/jpeg"}).json()["id"]
               for _ in range(5)]  # fmt: skip
    proc = detector_with.procs[-1]
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 0
    assert len(list((objects / PREFIX).iterdir())) == 1, "nothing was parked"

    home = tmp_path / "running"  # its own SQLite records: the database that is up
    running = detector_with(AIDETECT_HOME=str(home), **shared)
    db = Records.open(Settings(home=home, object_store=str(objects)))
    try:
        deadline = time.monotonic() + 60
        while not all(db.get_detection(i) for i in ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(db.get_detection(i) is not None for i in ids)
    finally:
        db.close()
    assert not list((objects / PREFIX).iterdir())  # adopted once, and gone from the store
    scraped = httpx.get(f"{running}/metrics", timeout=30).text  # its first scrape: the store is listed now
    assert "aidetect_outbox_adopted_records_total 5.0" in scraped and "aidetect_outbox_parked_objects 0.0" in scraped

def group_of(pgid: int) -> str:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if line.strip() and "<defunct>" not in line)
