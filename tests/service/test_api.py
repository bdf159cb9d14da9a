"""The LitAPI's pure parts: decoding the bytes the HTTP process read, and the typed detection, without a server."""

import io

import numpy as np
from PIL import Image

from aidetect.testing.pictures import solid
from model.etl.hashing import phash_hex
from model.preprocess import ImageError, PreprocessConfig, decode_image
from service.api import Decoded, decode, detection_of
from service.detection import ModelRef, Thresholds


def payload(data: bytes) -> dict:
    return {"data": data, "key_id": "k1"}  # what the HTTP process queues for the worker (service/routes.py)


def test_decode_returns_errors_instead_of_raising():
    cfg = PreprocessConfig(max_pixels=1000)
    err = decode(payload(solid((100, 100))), cfg)
    assert isinstance(err, ImageError) and err.status == 413
    ok = decode(payload(solid((20, 20))), cfg)
    assert isinstance(ok, Decoded) and ok.x.shape == (3, 256, 256) and (ok.width, ok.height) == (20, 20)
    assert ok.sha256 == __import__("hashlib").sha256(solid((20, 20))).hexdigest()
    assert ok.provenance["ai_hint"] is False and np.isfinite(ok.x).all()


def test_decode_reports_generator_metadata():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat, Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd15")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG", pnginfo=info)
    out = decode(payload(buf.getvalue()), PreprocessConfig())
    assert out.provenance["ai_hint"] is True and out.provenance["generator"]


def test_a_kept_detection_carries_the_perceptual_hash_ingest_would_compute():
    from aidetect.testing.pictures import noise

    data = noise(seed=3, size=(300, 200), block=8)
    item = decode(payload(data), PreprocessConfig())
    model, th = ModelRef(name="aidetect", version="2"), Thresholds(low=0.2, high=0.8)
    kept = detection_of(item, 0.5, "uncertain", model, th)
    assert kept.kept_for_review and kept.phash == phash_hex(decode_image(data))  # hashed in the worker
    assert (kept.api_key_id, kept.size_bytes, kept.sha256) == ("k1", len(data), item.sha256)
    answered = detection_of(item, 0.95, "ai_generated", model, th)
    assert not answered.kept_for_review and answered.phash is None  # only kept images are hashed
    # the answer leaves out what is stored beside it
    assert set(answered.model_dump()) & {"api_key_id", "created_at", "size_bytes", "phash"} == set()


def test_a_large_kept_image_is_hashed_from_its_reduction_the_same_as_from_the_whole():
    # Small images wait whole for the verdict; a large one is reduced at decoding. The hash must not care.
    from aidetect.testing.pictures import noise
    from service.api import HOLD_PIXELS

    data = noise(seed=5, size=(1200, 900), block=16)
    assert 1200 * 900 > HOLD_PIXELS
    item = decode(payload(data), PreprocessConfig())
    assert item.thumb.size == (32, 32)
    kept = detection_of(item, 0.5, "uncertain", ModelRef(name="aidetect", version="2"), Thresholds(low=0.2, high=0.8))
    assert kept.phash == phash_hex(decode_image(data))
