"""The LitAPI's pure parts: reading request payloads and decoding, without a server."""

import base64
import io

import numpy as np
import pytest
from PIL import Image
from starlette.datastructures import FormData, Headers, UploadFile

from aidetect.testing.pictures import solid
from model.preprocess import ImageError, PreprocessConfig
from service.api import Decoded, decode, request_bytes


def form(data: bytes, field="image"):
    up = UploadFile(io.BytesIO(data), filename="x.png", headers=Headers({"content-type": "image/png"}))
    return FormData([(field, up)])


def test_request_bytes_from_form_and_json():
    data = solid()
    assert request_bytes(form(data)) == data
    assert request_bytes({"image_b64": base64.b64encode(data).decode()}) == data


@pytest.mark.parametrize(
    "payload,words",
    [
        (FormData([("other", "x")]), "no field 'image'"),
        (FormData([("image", "text")]), "file upload"),
        ({"image": "x"}, "image_b64"),
        ({"image_b64": "***"}, "base64"),
        (["list"], "raw body"),
    ],
)
def test_request_bytes_errors(payload, words):
    with pytest.raises(ImageError) as e:
        request_bytes(payload)
    assert e.value.status == 400 and words in e.value.message


def test_decode_returns_errors_instead_of_raising():
    cfg = PreprocessConfig(max_pixels=1000)
    err = decode(form(solid((100, 100))), cfg)
    assert isinstance(err, ImageError) and err.status == 413
    ok = decode(form(solid((20, 20))), cfg)
    assert isinstance(ok, Decoded) and ok.x.shape == (3, 256, 256) and (ok.width, ok.height) == (20, 20)
    assert ok.sha256 == __import__("hashlib").sha256(solid((20, 20))).hexdigest()
    assert ok.provenance["ai_hint"] is False and np.isfinite(ok.x).all()


def test_decode_reports_generator_metadata():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat, Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd15")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG", pnginfo=info)
    out = decode(form(buf.getvalue()), PreprocessConfig())
    assert out.provenance["ai_hint"] is True and out.provenance["generator"]
