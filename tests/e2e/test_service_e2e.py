"""The production shape end to end: real `aidetect serve` processes on loopback, records in PostgreSQL,
API keys, limits, metrics, concurrency, a database outage, a SIGKILL mid-load, and the OpenAPI document."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from aidetect.testing.pictures import solid
from model.manifest import read_manifest, subsample
from service.client import ClientError, DetectorClient
from service.tables import DetectionRow as Detection
from service.tables import Feedback

pytestmark = pytest.mark.slow

AGREED_METRICS = (
    "aidetect_requests_total",
    "aidetect_request_latency_seconds_bucket",
    "aidetect_verdicts_total",
    "aidetect_score_bucket",
    "aidetect_review_queue_size",
    "aidetect_model_info",
    "aidetect_batch_size_bucket",
)


@pytest.fixture(scope="module")
def images(manifest):
    return [s.path.read_bytes() for s in subsample(read_manifest(manifest, split="val"), 1)]


def auth(svc, name="main") -> dict:
    return {"Authorization": f"Bearer {svc.keys[name]['key']}"}


def count(svc, model, **where) -> int:
    db = svc.records()
    try:
        with db.session("count") as s:
            q = select(func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k).in_(v) if isinstance(v, list | set) else getattr(model, k) == v)
            return s.scalar(q)
    finally:
        db.close()


def wait_count(svc, want: int, model, timeout: float = 30, **where) -> int:
    deadline = time.monotonic() + timeout
    while (n := count(svc, model, **where)) < want and time.monotonic() < deadline:
        time.sleep(0.3)
    return n


def test_probes_cors_openapi_and_metrics(secure_server, images):
    url = secure_server.url
    assert httpx.get(f"{url}/livez").json() == {"status": "alive"}
    r = httpx.get(f"{url}/health")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    doc = httpx.get(f"{url}/openapi.json").json()
    assert {"/v1/detect", "/v1/detect/batch", "/v1/feedback", "/health", "/livez", "/metrics"} <= set(doc["paths"])
    assert httpx.post(f"{url}/v1/detect", content=images[0], headers=auth(secure_server)).status_code == 200
    pre = {"Origin": "https://moderate.example", "Access-Control-Request-Method": "POST"}
    assert httpx.options(f"{url}/v1/detect", headers=pre).headers["access-control-allow-origin"] == pre["Origin"]
    evil = httpx.options(f"{url}/v1/detect", headers={**pre, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    text = httpx.get(f"{url}/metrics").text
    for name in AGREED_METRICS:
        assert name in text, name
    assert 'aidetect_requests_total{endpoint="detect",status="200"}' in text


def test_keys_are_required_checked_and_revocable(secure_server, images):
    url, data = secure_server.url, images[0]
    r = httpx.post(f"{url}/v1/detect", content=data)
    assert r.status_code == 401 and "aidetect keys create" in r.json()["detail"]
    key = secure_server.new_key("short-lived")
    ok = httpx.post(f"{url}/v1/detect", content=data, headers={"X-API-Key": key["key"]})
    assert ok.status_code == 200
    listed = secure_server.cli("keys", "list").stdout
    assert key["id"] in listed and key["key"] not in listed  # only hashes are stored
    assert secure_server.cli("keys", "revoke", key["id"]).returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.post(f"{url}/v1/detect", content=data, headers={"X-API-Key": key["key"]}).status_code == 401:
            break
        time.sleep(0.5)
    else:
        pytest.fail("a revoked key still works after 10 s")
    # The detection made with the key records which key it was (once the outbox has flushed it).
    assert wait_count(secure_server, 1, Detection, api_key_id=key["id"], id=ok.json()["id"]) == 1


def test_rate_limit_answers_429_with_retry_after(secure_server, images):
    secure_server.keys["slow"] = secure_server.new_key("slow", rate=3)
    codes, last = [], None
    for _ in range(5):
        last = httpx.post(f"{secure_server.url}/v1/detect", content=images[0], headers=auth(secure_server, "slow"))
        codes.append(last.status_code)
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert int(last.headers["retry-after"]) >= 1 and "rate limit" in last.json()["detail"]


def test_an_upload_that_stalls_is_answered_408_and_frees_its_share_of_the_upload_budget(secure_server, images):
    """uvicorn waits forever for a body that stops coming; the server's own idle timeout (the env the
    deployment sets) ends it, and the bytes it reserved are free again for the next upload."""
    idle = float(secure_server.env["AIDETECT_UPLOAD_IDLE_TIMEOUT"])
    host, port = secure_server.url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/detect HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\nContent-Length: 4096\r\n"
        f"Authorization: Bearer {secure_server.keys['main']['key']}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=idle * 6) as s:
        s.sendall(head.encode() + images[0][:100])  # and then nothing
        t0 = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - t0
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "stalled" in json.loads(rest.partition(b"\r\n\r\n")[2])["detail"]
    assert waited >= idle * 0.9  # the server's timeout ended it, not anything sooner
    ok = httpx.post(f"{secure_server.url}/v1/detect", content=images[0], headers=auth(secure_server), timeout=60)
    assert ok.status_code == 200


def test_batch_detect_answers_each_image_and_enforces_the_count(secure_server, images):
    with DetectorClient(secure_server.url, secure_server.keys["main"]["key"]) as c:
        results = c.detect_batch([images[0], b"not an image", images[1]])
        assert [r["status"] for r in results] == [200, 415, 200]
        single = c.detect(images[1])
        assert results[2]["result"]["score"] == pytest.approx(single["score"], abs=1e-6)  # one scoring path
        with pytest.raises(ClientError) as e:
            c.detect_batch([images[0]] * 5)
        assert e.value.status == 413 and "limit is 4" in e.value.detail


def test_predict_command(secure_server, manifest, tmp_path):
    sample = subsample(read_manifest(manifest, split="val"), 1)[0]
    res = secure_server.cli("predict", str(sample.path), "--url", secure_server.url, "--api-key",
                            secure_server.keys["main"]["key"])
    assert res.returncode == 0, res.stderr
    line = json.loads(res.stdout.strip())
    assert line["file"] == str(sample.path) and 0 <= line["score"] <= 1 and "provenance" in line
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"nope")
    res = secure_server.cli("predict", str(bad), "--url", secure_server.url, "--api-key",
                            secure_server.keys["main"]["key"])
    assert res.returncode == 1 and res.stderr.startswith("aidetect: error:") and "Traceback" not in res.stderr


def test_a_replayed_feedback_with_its_idempotency_key_is_stored_once(secure_server, images):
    url, headers = secure_server.url, auth(secure_server)
    did = httpx.post(f"{url}/v1/detect", content=images[0], headers=headers, timeout=60).json()["id"]
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    first = httpx.post(f"{url}/v1/feedback", json={"detection_id": did, "label": "ai"}, headers=keyed)
    assert first.status_code == 201, first.text
    again = httpx.post(f"{url}/v1/feedback", json={"detection_id": did, "label": "ai"}, headers=keyed)
    assert (again.status_code, again.json()) == (201, first.json()) and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = httpx.post(f"{url}/v1/feedback", json={"detection_id": did, "label": "real"}, headers=keyed)
    assert other.status_code == 409 and "was used for another request" in other.json()["detail"], other.text
    for bad in ("has a space", "x" * 256):
        r = httpx.post(f"{url}/v1/feedback", json={"detection_id": did, "label": "ai"},
                       headers={**headers, "Idempotency-Key": bad})  # fmt: skip
        assert r.status_code == 422 and "Idempotency-Key must be 1 to 255" in r.json()["detail"], r.text
    # Replicas racing on one key (here: one server's threads): one row, one id for every answer.
    raced = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(f"{url}/v1/feedback", json={"detection_id": did, "label": "real"}, headers=raced),
                range(8),
            )
        )
    assert {r.status_code for r in answers} == {201} and len({r.json()["id"] for r in answers}) == 1
    # The platform client makes a key per call and keeps it for its own retries.
    with DetectorClient(url, secure_server.keys["main"]["key"]) as c:
        k = str(uuid.uuid4())
        assert c.feedback(did, "ai", idempotency_key=k)["id"] == c.feedback(did, "ai", idempotency_key=k)["id"]
        c.feedback(did, "ai")
    assert count(secure_server, Feedback, detection_id=did) == 4  # first, raced, the client's keyed one and its last


def test_a_replayed_moderator_label_is_stored_once(secure_server, images):
    made = secure_server.cli("moderators", "add", "mod-idem", "--password-stdin", stdin="correct horse battery\n")
    assert made.returncode == 0, made.stderr
    did = httpx.post(f"{secure_server.url}/v1/detect", content=images[1], headers=auth(secure_server), timeout=60)
    with httpx.Client(base_url=secure_server.url, timeout=30) as c:
        login = c.post("/moderate/login", data={"name": "mod-idem", "password": "correct horse battery"})
        assert login.status_code == 303 and login.headers["location"] == "/moderate", login.text
        key = {"Idempotency-Key": str(uuid.uuid4())}
        body = {"detection_id": did.json()["id"], "label": "real"}
        first, again = (c.post("/moderate/api/label", json=body, headers=key) for _ in range(2))
        assert first.status_code == again.status_code == 201 and first.json() == again.json(), again.text
        assert again.headers["idempotent-replayed"] == "true"
        other = c.post("/moderate/api/label", json={**body, "label": "ai"}, headers=key)
        assert other.status_code == 409 and "send a new key" in other.json()["detail"]
    assert count(secure_server, Feedback, detection_id=body["detection_id"], given_by="moderator:mod-idem") == 1


def test_many_concurrent_clients_get_no_5xx_and_every_feedback_is_stored(secure_server, images):
    url, headers = secure_server.url, auth(secure_server)
    stored = []

    def client(i: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for j in range(4):
                r = c.post("/v1/detect", content=images[(i + j) % len(images)])
                codes.append(r.status_code)
                if r.status_code == 200:
                    f = c.post("/v1/feedback", json={"detection_id": r.json()["id"], "label": ("ai", "real")[j % 2]})
                    codes.append(f.status_code)
                    if f.status_code == 201:
                        stored.append(f.json()["id"])
        return codes

    with ThreadPoolExecutor(24) as pool:
        codes = [c for cs in pool.map(client, range(24)) for c in cs]
    assert all(c < 500 for c in codes) and codes.count(200) == 96 and codes.count(201) == 96
    assert count(secure_server, Feedback, id=set(stored)) == 96


def _png(seed: int) -> bytes:
    return solid((40 + seed % 7, 30), (seed * 37 % 256, seed * 11 % 256, 90))  # a distinct image per seed


def test_database_down_detection_continues_into_the_outbox_and_feedback_is_503(secure_server, images):
    url, headers = secure_server.url, auth(secure_server)
    # The key is read once while the database is up: its last copy is what lets detection go on without it
    # (a key never read answers 503, tests/service/test_middleware.py).
    assert httpx.post(f"{url}/v1/detect", content=_png(99), headers=headers, timeout=60).status_code == 200
    secure_server.pg_ctl("stop")
    try:
        ids = []
        for i in range(3):
            r = httpx.post(f"{url}/v1/detect", content=_png(i), headers=headers, timeout=60)
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
        f = httpx.post(f"{url}/v1/feedback", json={"detection_id": ids[0], "label": "ai"}, headers=headers)
        assert f.status_code == 503 and "unavailable" in f.json()["detail"] and f.headers["retry-after"]
        metrics = httpx.get(f"{url}/metrics").text
        pending = [ln for ln in metrics.splitlines() if ln.startswith("aidetect_outbox_pending ")]
        assert pending and float(pending[0].split()[1]) >= 3
    finally:
        secure_server.pg_ctl("start")
    assert wait_count(secure_server, 3, Detection, timeout=60, id=ids) == 3  # flushed once the database returned
    f = httpx.post(f"{url}/v1/feedback", json={"detection_id": ids[0], "label": "ai"}, headers=headers, timeout=30)
    assert f.status_code == 201


def test_sigkill_mid_load_loses_no_committed_feedback(secure_server, images):
    url, headers = secure_server.url, auth(secure_server)
    acknowledged, stop = [], threading.Event()

    def load():
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/detect", content=images[len(acknowledged) % len(images)])
                    if r.status_code == 200:
                        f = c.post("/v1/feedback", json={"detection_id": r.json()["id"], "label": "real"})
                        if f.status_code == 201:
                            acknowledged.append(f.json()["id"])
                except httpx.HTTPError:
                    pass  # the server is being killed under us

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    import os
    import signal

    os.killpg(secure_server.proc.pid, signal.SIGKILL)  # mid-load, no shutdown hooks
    secure_server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    assert len(acknowledged) >= 12
    secure_server.start()
    assert count(secure_server, Feedback, id=set(acknowledged)) == len(set(acknowledged))
    assert httpx.post(f"{url}/v1/detect", content=images[0], headers=headers, timeout=60).status_code == 200


def test_monitor_drift_exports_psi_as_a_metric(secure_server, images):
    headers = auth(secure_server)
    with httpx.Client(base_url=secure_server.url, headers=headers, timeout=60) as c:
        for i in range(24):  # enough recent traffic for every feature
            assert c.post("/v1/detect", content=images[i % len(images)]).status_code == 200
    assert wait_count(secure_server, 24, Detection) >= 24
    res = secure_server.cli("monitor", "drift", "--hours", "1", "--per-group", "4")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["features"]["score"]["psi"] is not None and report["features"]["score"]["n_cur"] >= 24
    assert 0 <= report["features"]["score"]["p_value"] <= 1
    text = httpx.get(f"{secure_server.url}/metrics").text
    assert 'aidetect_drift_psi{feature="score"}' in text
