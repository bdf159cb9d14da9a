"""The Qwen LitServe API as a real server process, and the cascade client in front of it."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from aidetect.testing.pictures import noise as jpeg

pytest.importorskip("peft")

from model.preprocess import ImageError  # noqa: E402
from service.cascade import SecondStage, combine, needs_second_stage, parse_second  # noqa: E402
from service.detection import Detection, ImageFacts, ModelRef, Provenance, Thresholds  # noqa: E402
from service.qwen_api import parse_request  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

def fast(score: float, verdict: str) -> Detection:
    return Detection(
        id="d1", score=score, verdict=verdict, thresholds=Thresholds(low=0.1, high=0.9),
        model=ModelRef(name="aidetect", version="1"), provenance=Provenance(),
        image=ImageFacts(sha256="ab" * 32, width=8, height=8), kept_for_review=verdict == "uncertain",
        api_key_id="k1", size_bytes=99,
    )  # fmt: skip


FAST_UNCERTAIN = fast(0.55, "uncertain")
FAST_CONFIDENT = fast(0.02, "real")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- pure pieces


def test_request_parsing():
    data, explain = parse_request({"image_b64": base64.b64encode(b"abc").decode(), "explain": True})
    assert data == b"abc" and explain is True
    assert parse_request({"image_b64": base64.b64encode(b"x").decode()})[1] is False
    with pytest.raises(ImageError, match="image_b64") as e:
        parse_request({"image": "nope"})
    assert e.value.status == 400
    with pytest.raises(ImageError, match="not valid base64"):
        parse_request({"image_b64": "***"})


def test_combine_keeps_the_fast_verdict_without_a_second_opinion():
    assert not needs_second_stage(FAST_CONFIDENT) and needs_second_stage(FAST_UNCERTAIN)
    out = combine(FAST_CONFIDENT, None)
    assert out.stage == "fast" and out.verdict == "real" and "review" not in out.model_dump(exclude_unset=True)
    out = combine(FAST_UNCERTAIN, None)
    assert out.stage == "fast" and out.verdict == "uncertain" and out.review is True
    assert FAST_UNCERTAIN.review is None  # input not mutated


def test_combine_takes_the_qwen_verdict_and_explanation():
    second = {"score": 0.91, "verdict": "ai_generated", "explanation": "Waxy skin.", "model": {"version": "3"}}
    out = combine(FAST_UNCERTAIN, second)
    assert out.stage == "qwen" and out.verdict == "ai_generated" and out.score == 0.91
    assert out.explanation == "Waxy skin." and out.fast.model_dump() == {"score": 0.55, "verdict": "uncertain"}
    assert out.model.name == "aidetect" and out.second_model == {"version": "3"}
    # what is stored beside the answer survives the cascade: the key, the size, the id
    assert (out.id, out.api_key_id, out.size_bytes) == ("d1", "k1", 99)
    assert parse_second({"score": "high"}) is None
    assert parse_second({"score": 0.5, "verdict": "maybe"}) is None  # not a verdict the records know


def test_an_uncertain_qwen_verdict_inside_its_own_band_goes_to_review():
    second = {"score": 0.6, "verdict": "uncertain", "explanation": None, "model": {"version": "3"}}
    out = combine(FAST_UNCERTAIN, second)
    assert out.stage == "qwen" and out.verdict == "uncertain" and out.review is True
    assert "review" not in combine(FAST_UNCERTAIN, {**second, "verdict": "real"}).model_dump(exclude_unset=True)


def test_second_stage_treats_5xx_as_down_and_4xx_as_this_image():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503 if len(calls) == 1 else 415, json={"detail": "x"})

    stage = SecondStage("http://qwen", timeout=1, cooldown=0.2, transport=httpx.MockTransport(handler))
    assert stage.score(b"img") is None and not stage.available()  # 503: cooling down
    assert stage.score(b"img") is None and len(calls) == 1  # not even tried during the cooldown
    time.sleep(0.25)
    assert stage.score(b"img") is None and stage.available()  # 415: the server is fine
    assert stage.last_error == "HTTP 415" and len(calls) == 2


class SlowServer:
    """Accepts the connection, then answers too late: a Qwen stage that times out."""

    def __init__(self, delay: float):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # close() must not wait for the sleeping handler
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_slow_or_absent_second_stage_answers_none_within_its_timeout():
    slow = SlowServer(delay=10.0)
    try:
        t0 = time.monotonic()
        assert SecondStage(slow.url, timeout=0.5).score(jpeg()) is None
        assert time.monotonic() - t0 < 5.0  # its timeout, not the server's 10 s
    finally:
        slow.close()
    t0 = time.monotonic()
    absent = SecondStage(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    assert absent.score(jpeg()) is None and time.monotonic() - t0 < 5.0
    assert combine(FAST_UNCERTAIN, None).stage == "fast"


# --------------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A tiny Qwen detector trained a few steps and registered in a sqlite MLflow: (uri, env)."""
    import torch

    from aidetect.settings import get_settings
    from model.qwen.config import load_config
    from model.qwen.synthetic import write_synthetic_manifest
    from model.qwen.tracking import log_and_register
    from model.qwen.train import train

    tmp = tmp_path_factory.mktemp("qwen-svc")
    manifest = write_synthetic_manifest(tmp / "data", n_per_class=4)
    cfg = load_config(
        REPO / "configs" / "qwen2vl_tiny.yaml",
        {"manifest": str(manifest), "train_sources": ["synthetic"], "max_steps": 3, "batch_size": 4, "log_every": 0},
    )
    threads = torch.get_num_threads()
    result = train(cfg, tmp / "bundle")
    torch.set_num_threads(threads)
    env = {"AIDETECT_HOME": str(tmp / "home"), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ref = log_and_register(result, get_settings(), name="qwen-svc")
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return ref.uri, env


@pytest.fixture(scope="module")
def qwen_server(registered):
    uri, env = registered
    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from aidetect.cli import app; app()",
        "qwen",
        "serve",
        "--model-uri",
        uri,
        "--port",
        str(port),
        "--max-batch-size",
        "4",
        "--batch-timeout",
        "0.05",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {proc.stdout.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("Qwen server did not become healthy in 120 s")
            time.sleep(0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
def test_the_server_scores_explains_and_refuses_bad_images(qwen_server):
    url, _ = qwen_server
    body = {"image_b64": base64.b64encode(jpeg(1)).decode()}
    r = httpx.post(f"{url}/v1/qwen", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert 0 <= out["score"] <= 1 and out["verdict"] in ("real", "ai_generated") and out["stage"] == "qwen"
    assert "explanation" not in out and out["model"]["uri"] == "models:/qwen-svc/1"

    r = httpx.post(f"{url}/v1/qwen", json={**body, "explain": True}, timeout=60)
    assert r.status_code == 200 and isinstance(r.json()["explanation"], str)
    assert r.json()["score"] == pytest.approx(out["score"], abs=1e-5)

    r = httpx.post(f"{url}/v1/qwen", json={"image_b64": base64.b64encode(b"not an image").decode()}, timeout=30)
    assert r.status_code == 415 and "not an image" in r.json()["detail"]
    files = {"image": ("x.jpg", jpeg(1), "image/jpeg")}
    r = httpx.post(f"{url}/v1/qwen", files=files, timeout=30)
    assert r.status_code == 200 and r.json()["score"] == pytest.approx(out["score"], abs=1e-5)


@pytest.mark.slow
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(qwen_server):
    url, _ = qwen_server
    images = [jpeg(10 + i) for i in range(6)] + [b"garbage"]

    def post(data):
        return httpx.post(f"{url}/v1/qwen", json={"image_b64": base64.b64encode(data).decode()}, timeout=60)

    with ThreadPoolExecutor(7) as pool:
        replies = list(pool.map(post, images))
    assert [r.status_code for r in replies] == [200] * 6 + [415]  # one bad image costs only itself
    alone = post(images[3]).json()["score"]
    assert replies[3].json()["score"] == pytest.approx(alone, abs=1e-5)


@pytest.mark.slow
def test_detect_endpoint_sends_only_the_uncertain_band_to_qwen(qwen_server, detector_with, manifest, tiny_model):
    """The cascade as deployed: the fast detector's /v1/detect with AIDETECT_QWEN_URL set."""
    from model.manifest import read_manifest, subsample

    url, _ = qwen_server
    tiny_settings = tiny_model[0]
    images = [s.path.read_bytes() for s in subsample(read_manifest(manifest, split="val"), 2)]
    detector = detector_with(AIDETECT_QWEN_URL=url, AIDETECT_QWEN_TIMEOUT="60")
    down = detector_with(AIDETECT_QWEN_URL=f"http://127.0.0.1:{free_port()}", AIDETECT_QWEN_TIMEOUT="2")
    stages, answers = [], []
    for data in images:
        out = httpx.post(f"{detector}/v1/detect", content=data, timeout=120).json()
        answers.append(out)
        if out["stage"] == "qwen":
            assert out["fast"]["verdict"] == "uncertain" and isinstance(out["explanation"], str)
            assert out["second_model"]["uri"] == "models:/qwen-svc/1" and out["verdict"] != "uncertain"
        else:  # confident cases never reach the second stage
            assert out["verdict"] != "uncertain" and "fast" not in out
        stages.append(out["stage"])
        # With the Qwen stage unreachable the same image answers from the fast stage, at once.
        t0 = time.monotonic()
        alone = httpx.post(f"{down}/v1/detect", content=data, timeout=60).json()
        assert alone["stage"] == "fast" and time.monotonic() - t0 < 10
        if out["stage"] == "qwen":
            assert alone["verdict"] == "uncertain" and alone["review"] is True and alone["kept_for_review"]
    assert "qwen" in stages  # the tiny fast model is unsure of most images
    # The stored detections end as the callers saw them: the Qwen verdict where it decided.
    from service.records import Records

    db = Records.open(tiny_settings)
    try:
        deadline = time.monotonic() + 20
        while True:
            stored = [db.get_detection(a["id"]) for a in answers]
            done = all(s is not None and s.stage == a["stage"] for s, a in zip(stored, answers, strict=True))
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        db.close()
    for s, a in zip(stored, answers, strict=True):
        assert s is not None, f"detection {a['id']} was never recorded"
        assert (s.stage, s.verdict, s.score) == (a["stage"], a["verdict"], pytest.approx(a["score"], abs=1e-6))
        if a["stage"] == "qwen":
            assert s.model.name == "qwen-svc" and s.model.version == "1"


@pytest.mark.slow
def test_cascade_uses_the_qwen_stage_then_falls_back_when_it_goes_away(qwen_server):
    url, proc = qwen_server
    stage = SecondStage(url, timeout=30, explain=True)
    second = stage.score(jpeg(2))
    assert second is not None and isinstance(second["explanation"], str)
    out = combine(FAST_UNCERTAIN, second)
    assert out.stage == "qwen" and out.explanation == second["explanation"]
    assert out.second_model["uri"] == "models:/qwen-svc/1"

    # the stage is scaled to zero: the whole process group stops, the cascade answers from the fast stage
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=15)
    t0 = time.monotonic()
    assert stage.score(jpeg(2)) is None
    assert time.monotonic() - t0 < 5
    out = combine(FAST_UNCERTAIN, stage.score(jpeg(2)))
    assert out.stage == "fast" and out.verdict == "uncertain" and out.review is True
