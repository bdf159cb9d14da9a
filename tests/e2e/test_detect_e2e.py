"""End to end over HTTP: a tiny model trained on the shared data, registered in a real MLflow
store, served by `aidetect serve` as a real process on a loopback port."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from aidetect.testing.pictures import solid
from model.manifest import read_manifest, subsample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(manifest):
    """One val image per source and label, as raw file bytes."""
    return [(s, s.path.read_bytes()) for s in subsample(read_manifest(manifest, split="val"), 1)]


def check_answer(body: dict, version: str) -> None:
    assert 0.0 <= body["score"] <= 1.0
    th = body["thresholds"]
    expected = (
        "ai_generated"
        if body["score"] >= th["high"]
        else "real"
        if body["score"] < th["low"] or th["low"] > th["high"]
        else "uncertain"
    )
    assert body["verdict"] == expected
    assert body["model"]["name"] == "aidetect" and body["model"]["version"] == version
    assert body["latency_ms"] > 0 and body["stage"] == "fast"
    assert set(body["provenance"]) >= {"c2pa", "iptc_digital_source_type", "generator", "software"}


def test_health_and_detect_raw_multipart_json(detector_server, tiny_model, images):
    _, ref, _ = tiny_model
    assert httpx.get(f"{detector_server}/health").status_code == 200
    scores = {}
    for sample, data in images:
        raw = httpx.post(f"{detector_server}/v1/detect", content=data, headers={"content-type": "image/jpeg"})
        assert raw.status_code == 200, raw.text
        check_answer(raw.json(), ref.version)
        multi = httpx.post(f"{detector_server}/v1/detect", files={"image": ("x.jpg", data, "image/jpeg")})
        js = httpx.post(f"{detector_server}/v1/detect", json={"image_b64": base64.b64encode(data).decode()})
        # The same bytes give the same score, whichever way they arrive.
        assert multi.json()["score"] == pytest.approx(raw.json()["score"], abs=1e-6)
        assert js.json()["score"] == pytest.approx(raw.json()["score"], abs=1e-6)
        assert raw.json()["image"]["width"] == 256
        scores[(sample.source, sample.label)] = raw.json()["score"]
    assert len(set(scores.values())) > 1  # the model looks at the image


def test_served_score_equals_offline_score(detector_server, tiny_model, images):
    """Serving and offline evaluation share one preprocessing path: same bytes, same score."""
    from model import registry

    settings, ref, _ = tiny_model
    registry.configure(settings)
    bundle, _ = registry.load_detector(ref.uri)
    from model.preprocess import decode_image

    for _, data in images[:3]:
        offline = float(bundle.score_images([decode_image(data)])[0])
        served = httpx.post(f"{detector_server}/v1/detect", content=data).json()["score"]
        assert served == pytest.approx(offline, abs=1e-4)


def _png(w, h) -> bytes:
    return solid((w, h), color=0, mode="L", optimize=True)  # many pixels in few bytes


BAD_INPUTS = {
    "not_an_image": (b"this is plain text, not pixels", "text/plain", 415, "not an image"),
    "empty": (b"", "image/jpeg", 400, "empty"),
    "too_many_pixels": (_png(2100, 2000), "image/png", 413, "MP"),
    "decompression_bomb": (_png(12000, 12000), "image/png", 413, "limit"),
    "too_many_bytes": (b"\xff\xd8" + bytes(3 * 2**20), "image/jpeg", 413, "limit"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_get_4xx_with_message(detector_server, name):
    data, ctype, status, words = BAD_INPUTS[name]
    r = httpx.post(f"{detector_server}/v1/detect", content=data, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert "Traceback" not in r.text


def test_truncated_image_is_422(detector_server, images):
    data = images[0][1]
    r = httpx.post(f"{detector_server}/v1/detect", content=data[: len(data) // 3])
    assert r.status_code == 422 and "truncated" in r.json()["detail"]


def test_bad_neighbours_do_not_fail_a_batch(detector_server, images):
    """Concurrent good and bad uploads land in the same dynamic batches; each gets its own answer."""
    good = [d for _, d in images]
    bad = [b"garbage" * 10, good[0][:200]]
    payloads = [(d, 200) for d in good * 3] + [(b, None) for b in bad * 3]
    rng = np.random.default_rng(0)
    rng.shuffle(payloads)

    def post(p):
        return httpx.post(f"{detector_server}/v1/detect", content=p[0], timeout=60).status_code, p[1]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, payloads))
    for got, want in results:
        if want == 200:
            assert got == 200
        else:
            assert 400 <= got < 500
    assert httpx.get(f"{detector_server}/health").status_code == 200
