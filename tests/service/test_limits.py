"""Limits on every route of the real server app, in process over httpx's ASGI transport: body sizes
(feedback, sign-in, batch), sign-in throttling, Secure cookies behind TLS, anonymous feedback.

The app is `build_server`'s own; no inference worker runs, because every request here is answered
before one would be needed.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from aidetect.settings import Settings
from service.auth import hash_key, hash_password, new_key
from service.limits import HTTP_COPIES, IDLE_TREE_MIB, SMALL_BODY_BYTES, budget_markdown, memory_budget
from service.records import Records
from service.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


BUILT = []  # the states of the servers a test built: their background threads end with it


@pytest.fixture(autouse=True)
def stop_background_threads():
    yield
    while BUILT:
        BUILT.pop().stop_background()


def built(settings):
    server = build_server(settings)
    BUILT.append(server.state)
    return server


def make(tmp_path, **overrides):
    """(app, settings, records) of a server whose records live under tmp_path."""
    settings = Settings(home=tmp_path, **overrides)
    records = Records.open(settings)
    return built(settings).app, settings, records


def client(app, base="http://t", ip="127.0.0.1"):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=base)


def add_key(records: Records) -> str:
    key_id, secret = new_key()
    records.add_key(key_id, "platform", hash_key(secret))
    return secret


def a_detection():
    from service.detection import Detection, ImageFacts, ModelRef, Provenance

    return Detection(
        id=str(uuid.uuid4()), score=0.5, verdict="uncertain", model=ModelRef(name="aidetect", version="1"),
        provenance=Provenance(), image=ImageFacts(sha256="ab" * 32, width=8, height=8), kept_for_review=False,
    )  # fmt: skip


def add_detection(records: Records) -> str:
    det = a_detection()
    records.apply_outbox([det])
    return det.id


async def chunks(total: int, size: int = 4096):
    for _ in range(total // size):
        yield b"x" * size


# --- body limits ----------------------------------------------------------------------------


async def test_feedback_body_over_the_limit_is_413_declared_or_streamed(tmp_path):
    app, _, records = make(tmp_path, auth_required=True)
    auth = {"Authorization": f"Bearer {add_key(records)}", "Content-Type": "application/json"}
    async with client(app) as c:
        r = await c.post("/v1/feedback", content=b"{" + b" " * (SMALL_BODY_BYTES + 10) + b"}", headers=auth)
        assert r.status_code == 413 and "16 KiB" in r.json()["detail"]
        r = await c.post("/v1/feedback", content=chunks(SMALL_BODY_BYTES * 4), headers=auth)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        # A normal label still goes through.
        ok = await c.post("/v1/feedback", json={"detection_id": add_detection(records), "label": "ai"}, headers=auth)
        assert ok.status_code == 201


async def test_sign_in_body_over_the_limit_is_413(tmp_path):
    app, _, _ = make(tmp_path)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client(app) as c:
        r = await c.post("/moderate/login", content=b"name=a&password=" + b"p" * SMALL_BODY_BYTES, headers=form)
        assert r.status_code == 413 and "/moderate/login" in r.json()["detail"]
        r = await c.post("/moderate/login", content=chunks(SMALL_BODY_BYTES * 2), headers=form)
        assert r.status_code == 413


async def test_batch_over_the_byte_limit_is_413_even_without_a_length(tmp_path):
    app, _, _ = make(tmp_path, max_bytes=1000, max_images_per_request=2)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    async def body():
        yield head
        for _ in range(10):
            yield b"x" * 1000

    ctype = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with client(app) as c:
        r = await c.post("/v1/detect/batch", content=body(), headers=ctype)
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        # Each image over the byte limit is its own 413, answered before any worker sees it.
        files = [("images", (f"{i}.png", b"x" * 1500, "image/png")) for i in range(2)]
        r = await c.post("/v1/detect/batch", files=files)
        assert r.status_code == 200
        assert [(x["status"], "limit is 0.0 MiB" in x["detail"]) for x in r.json()["results"]] == [(413, True)] * 2
        files = [("images", (f"{i}.png", b"x" * 10, "image/png")) for i in range(3)]
        r = await c.post("/v1/detect/batch", files=files)
        assert r.status_code == 413 and "the limit is 2" in r.json()["detail"]


# --- sign-in throttling ---------------------------------------------------------------------


async def test_sign_in_is_throttled_per_account_with_retry_after(tmp_path):
    app, _, records = make(tmp_path, login_attempts_per_account=3, login_attempts_per_client=100)
    records.set_moderator("alice", hash_password("right"))
    async with client(app) as c:
        codes = [
            (await c.post("/moderate/login", data={"name": "alice", "password": "wrong"})).status_code for _ in range(3)
        ]
        assert codes == [303, 303, 303]
        r = await c.post("/moderate/login", data={"name": "alice", "password": "right"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20
        assert "Too many sign-in attempts for this account" in r.text and "aidetect_session" not in r.headers.get(
            "set-cookie", ""
        )
    # Another address trying the same account is held back too: the account is what is guessed at.
    async with client(app, ip="10.0.0.9") as c:
        assert (await c.post("/moderate/login", data={"name": "alice", "password": "x"})).status_code == 429


async def test_sign_in_is_throttled_per_client_address_across_accounts(tmp_path):
    app, _, _ = make(tmp_path, login_attempts_per_account=100, login_attempts_per_client=4)
    async with client(app, ip="10.0.0.7") as c:
        codes = [
            (await c.post("/moderate/login", data={"name": f"user{i}", "password": "x"})).status_code for i in range(5)
        ]
        assert codes == [303, 303, 303, 303, 429]
    async with client(app, ip="10.0.0.8") as c:  # someone else is not affected
        assert (await c.post("/moderate/login", data={"name": "user9", "password": "x"})).status_code == 303


# --- Secure cookies -------------------------------------------------------------------------


async def sign_in_cookie(app, base="http://t", headers=None, ip="127.0.0.1") -> str:
    async with client(app, base, ip) as c:
        r = await c.post("/moderate/login", data={"name": "alice", "password": "pw"}, headers=headers or {})
    assert r.status_code == 303 and r.headers["location"] == "/moderate"
    return r.headers["set-cookie"]


async def test_session_cookie_is_secure_over_https_or_when_told(tmp_path):
    app, _, records = make(tmp_path / "a")
    records.set_moderator("alice", hash_password("pw"))
    assert "secure" not in (await sign_in_cookie(app)).lower()  # plain http on a laptop
    assert "secure" in (await sign_in_cookie(app, "https://t")).lower()
    told, _, records = make(tmp_path / "b", secure_cookies=True)
    records.set_moderator("alice", hash_password("pw"))
    cookie = await sign_in_cookie(told)
    assert "secure" in cookie.lower() and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()


async def test_forwarded_proto_from_a_trusted_proxy_makes_the_cookie_secure(tmp_path):
    """What uvicorn does with FORWARDED_ALLOW_IPS (the deployment trusts the pod network): TLS ended at
    the ingress, the proxy says so, and the cookie is Secure; an untrusted sender's header is ignored."""
    app, _, records = make(tmp_path)
    records.set_moderator("alice", hash_password("pw"))
    proxied = ProxyHeadersMiddleware(app, trusted_hosts="10.42.0.0/16")
    tls = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
    assert "secure" in (await sign_in_cookie(proxied, headers=tls, ip="10.42.1.7")).lower()
    assert "secure" not in (await sign_in_cookie(proxied, headers=tls, ip="198.51.100.1")).lower()


# --- anonymous feedback ---------------------------------------------------------------------


async def test_feedback_without_a_key_is_refused_when_auth_is_required(tmp_path):
    app, _, records = make(tmp_path, auth_required=True)
    detection = add_detection(records)
    async with client(app) as c:
        r = await c.post("/v1/feedback", json={"detection_id": detection, "label": "ai"})
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        r = await c.post(
            "/v1/feedback",
            json={"detection_id": detection, "label": "ai"},
            headers={"Authorization": f"Bearer {add_key(records)}"},
        )
        assert r.status_code == 201 and r.json()["given_by"].startswith("key:")
    assert [f["given_by"][:4] for f in records.feedback_for(detection)] == ["key:"]


# --- the memory arithmetic ------------------------------------------------------------------


def test_memory_budget_adds_up_and_says_when_it_does_not_fit():
    b = memory_budget(
        max_bytes=8 << 20, max_pixels=16_000_000, images_per_request=8, max_batch_size=4, workers=1, pod_limit_mib=2048
    )
    assert b["terms_mib"]["batch images queued outside the workers"] == 8 * 8 * HTTP_COPIES
    assert b["total_mib"] >= sum(b["terms_mib"].values()) - len(b["terms_mib"])
    assert b["allowed_mib"] == int(2048 * 0.7)
    assert "| **worst case** |" in budget_markdown(b)
    huge = memory_budget(
        max_bytes=20 << 20,
        max_pixels=40_000_000,
        images_per_request=16,
        max_batch_size=4,
        workers=1,
        pod_limit_mib=1536,
    )
    assert not huge["fits"]


def test_memory_model_covers_what_the_benchmark_measured():
    """bench/serve_memory.py runs the real server and loads it with worst-case batches: the model above
    must not promise less memory than that run used."""
    import json
    from pathlib import Path

    result = json.loads((Path(__file__).resolve().parents[2] / "bench/results/serve_memory.json").read_text())
    run = result["server"]
    b = memory_budget(
        max_bytes=run["image_bytes"],
        max_pixels=run["image_pixels"],
        images_per_request=run["images_per_request"],
        max_batch_size=4,
        workers=run["workers"],
        pod_limit_mib=10_000,
    )
    assert run["statuses"] == [200], "the benchmark's batches must have been scored, or it measured nothing"
    assert run["idle_mib"] <= IDLE_TREE_MIB
    assert run["peak_mib"] <= b["total_mib"], (run, b)


# --- image bytes in flight, over all requests -----------------------------------------------


async def test_image_uploads_in_flight_are_capped_at_one_worst_case_batch(tmp_path):
    """A client streaming a big upload holds its reservation; another upload that would pass the budget
    meanwhile gets 503 with Retry-After, not memory. Small ones still fit, and all do once it is done."""
    import asyncio

    app, _, _ = make(tmp_path, max_bytes=1000, max_images_per_request=2)
    release = asyncio.Event()
    boundary = "b0undary"

    async def slow_batch():
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
               "Content-Type: image/png\r\n\r\n").encode()
        await release.wait()
        yield b"x" * 1500 + f"\r\n--{boundary}--\r\n".encode()

    async with client(app) as c:
        # No Content-Length: it reserves its route's whole limit, the budget.
        holder = asyncio.create_task(c.post("/v1/detect/batch", content=slow_batch(),
                                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        await asyncio.sleep(0.2)
        refused = await c.post("/v1/detect/batch", files=[("images", ("b.png", b"x" * 1500, "image/png"))])
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["detail"]
        release.set()
        held = await holder
        # (Every image here is over the 1000-byte limit, so each is answered without an inference worker.)
        assert held.status_code == 200 and held.json()["results"][0]["status"] == 413
        files = [("images", ("c.png", b"y" * 1500, "image/png")), ("images", ("d.png", b"z" * 1500, "image/png"))]
        again = await c.post("/v1/detect/batch", files=files)  # the reservation was given back
        assert again.status_code == 200 and [r["status"] for r in again.json()["results"]] == [413, 413]


async def test_a_full_outbox_refuses_new_images_until_the_database_takes_them(tmp_path, monkeypatch, caplog):
    """While the records database is down, detections wait in the outbox; past its limit the detect routes
    answer 503 with Retry-After instead of growing it until the disk is full, and take images again once
    it drains."""
    import logging

    from service import backpressure
    from service.api import outbox_path
    from service.outbox import Outbox

    monkeypatch.setattr(backpressure, "RECHECK_S", 0.0)  # each request reads the backlog
    app, _, records = make(tmp_path, outbox_max_records=3)
    box = Outbox(outbox_path(Settings(home=tmp_path)))
    ids = []

    def waiting(n: int) -> None:
        for _ in range(n):
            det = a_detection()
            box.append([det])
            ids.append(det.id)

    waiting(3)
    async with client(app) as c:
        with caplog.at_level(logging.ERROR, logger="service.backpressure"):
            r = await c.post("/v1/detect", content=b"\xff\xd8 not read", headers={"Content-Type": "image/jpeg"})
            batch = await c.post("/v1/detect/batch", files=[("images", ("a.png", b"x", "image/png"))])
        assert r.status_code == 503 and r.headers["retry-after"] == str(backpressure.RETRY_AFTER_S)
        assert "3 detection records are waiting" in r.json()["detail"] and "limit 3" in r.json()["detail"]
        assert batch.status_code == 503
        assert sum("refusing new images" in m.message for m in caplog.records) == 1  # said once, not per request
        assert (await c.get("/openapi.json")).json()["paths"]["/v1/detect"]["post"]["responses"]["503"]
        box.drain(records.apply_outbox)  # the database took them: nothing was lost
        assert box.backlog() == 0 and all(records.get_detection(i) for i in ids)
        # Past the check: the JSON without an image is refused by the route itself, not by the outbox.
        r = await c.post("/v1/detect", json={})
        assert r.status_code in (400, 422) and "waiting" not in r.json()["detail"]



async def test_an_outbox_whose_backlog_cannot_be_read_refuses_nothing(tmp_path, monkeypatch, caplog):
    import logging
    import sqlite3

    from service import backpressure
    from service.outbox import Outbox

    def unreadable(self):
        raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(backpressure, "RECHECK_S", 0.0)
    monkeypatch.setattr(Outbox, "backlog", unreadable)
    app, _, _ = make(tmp_path, outbox_max_records=1)
    async with client(app) as c:
        with caplog.at_level(logging.WARNING, logger="service.backpressure"):
            r = await c.post("/v1/detect", json={})
    assert r.status_code in (400, 422)  # the route's own answer: the check let it through, and did not fail
    assert any("cannot read the outbox backlog" in m.message for m in caplog.records)


class SilentDatabase:
    """A TCP port that accepts connections and never says a word, as a database behind a partition or
    a hung server does (a stopped one refuses at once, which is the easy case)."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


async def test_a_database_that_never_answers_holds_up_only_the_request_that_reads_it(tmp_path, monkeypatch):
    """A key check that must read the database waits in a thread, bounded by the connect timeout, and says
    503; meanwhile the process answers everything else."""
    import asyncio

    from model.etl import db

    monkeypatch.setitem(db.PARTITION_BOUNDS, "connect_timeout", 2)
    silent = SilentDatabase()
    try:
        settings = Settings(
            home=tmp_path, auth_required=True, store_url=f"postgresql://u:p@127.0.0.1:{silent.port}/aidetect"
        )
        app = built(settings).app
        async with client(app) as c:
            keyed = asyncio.create_task(c.post("/v1/detect", content=b"x", headers={"X-API-Key": new_key()[1]}))
            await asyncio.sleep(0.3)  # the key check is now waiting on the silent database
            assert (await c.get("/livez")).status_code == 200
            assert not keyed.done()  # /livez was answered while the check waited, not after it
            r = await asyncio.wait_for(keyed, 60)  # libpq alone would wait for TCP, minutes
        assert r.status_code == 503 and "unavailable" in r.json()["detail"] and r.headers["retry-after"]
        assert silent.held  # it did try the database
    finally:
        silent.close()


async def test_an_app_built_in_process_ends_its_background_threads(tmp_path):
    import threading

    app, _, _ = make(tmp_path)
    async with client(app) as c:
        assert (await c.get("/livez")).status_code == 200  # any request starts them
    started = [t for t in threading.enumerate() if t.name in ("outbox-flusher", "api-keys", "pruner")]
    assert len(started) >= 3
    BUILT.pop().stop_background()
    for t in started:
        t.join(5)
    assert not [t.name for t in started if t.is_alive()]
