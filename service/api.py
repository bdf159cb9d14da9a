"""The fast detector as a LitServe API: bytes in, calibrated score, verdict and provenance out.

LitServe's batched loop fails a whole batch when one request raises, so a bad image is not
raised in decode_request: it travels through the batch as an ImageError, is skipped by
predict, and becomes its own 4xx JSON response in encode_response. One bad upload never
costs its neighbours their answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass

import litserve as ls
import numpy as np
import torch
from starlette.responses import JSONResponse

from aidetect.settings import Settings, get_settings
from model.preprocess import ImageError, decode_image, fit_to_size, to_array
from model.provenance import extract_provenance

log = logging.getLogger(__name__)


@dataclass
class Decoded:
    x: np.ndarray  # model input, CHW float32
    sha256: str
    width: int
    height: int
    provenance: dict
    t0: float  # perf_counter when decoding began


def request_bytes(request) -> bytes:
    """The image bytes of a multipart form (field `image`) or a JSON body ({"image_b64": ...})."""
    if hasattr(request, "getlist") or hasattr(request, "multi_items"):  # starlette FormData
        item = request.get("image")
        if item is None:
            raise ImageError("multipart body has no field 'image'", 400)
        if isinstance(item, str):
            raise ImageError("field 'image' must be a file upload, not text", 400)
        item.file.seek(0)
        return item.file.read()
    if isinstance(request, dict):
        b64 = request.get("image_b64")
        if not isinstance(b64, str):
            raise ImageError("JSON body needs a string field 'image_b64'", 400)
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("'image_b64' is not valid base64", 400) from None
    raise ImageError("send the image as the raw body, multipart field 'image', or JSON image_b64", 400)


def decode(request, settings_pre) -> Decoded | ImageError:
    t0 = time.perf_counter()
    try:
        data = request_bytes(request)
        img = decode_image(data, settings_pre)
        w, h = img.size
        x = to_array(fit_to_size(img, settings_pre), settings_pre)
    except ImageError as e:
        return e
    return Decoded(x, hashlib.sha256(data).hexdigest(), w, h, extract_provenance(data), t0)


class DetectorAPI(ls.LitAPI):
    """One EfficientNet detector loaded from the MLflow registry, batched dynamically."""

    def __init__(self, settings: Settings | None = None, **kw):
        s = settings or get_settings()
        super().__init__(max_batch_size=s.max_batch_size, batch_timeout=s.batch_timeout, api_path="/v1/detect", **kw)
        self.settings = s

    def setup(self, device) -> None:
        from model import registry

        torch.set_grad_enabled(False)
        registry.configure(self.settings)
        self.bundle, self.ref = registry.load_detector(self.settings.resolved_model_uri)
        # The service's byte and pixel limits apply on top of the preprocessing the model was trained with.
        from dataclasses import replace

        self.pre = replace(self.bundle.pre, max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels)
        self.model_info = {"name": self.ref.name, "version": self.ref.version, "uri": self.ref.uri}
        log.info("serving %s", self.ref.uri)

    def decode_request(self, request):
        return decode(request, self.pre)

    def batch(self, inputs):
        return inputs  # stacking happens in predict, around the failed items

    def predict(self, items):
        if not isinstance(items, list):  # max_batch_size=1: LitServe hands one item over
            return self.predict([items])[0]
        ok = [i for i, it in enumerate(items) if isinstance(it, Decoded)]
        scores: list[float | None] = [None] * len(items)
        if ok:
            x = torch.from_numpy(np.stack([items[i].x for i in ok]))
            for i, s in zip(ok, self.bundle.score_tensor(x), strict=True):
                scores[i] = float(s)
        return [(it, s) for it, s in zip(items, scores, strict=True)]

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        item, score = output
        if isinstance(item, ImageError):
            return JSONResponse({"detail": item.message}, status_code=item.status)
        th = self.bundle.thresholds
        return {
            "id": str(uuid.uuid4()),
            "score": round(score, 6),
            "verdict": self.bundle.verdicts(np.array([score]))[0],
            "thresholds": {"low": th["low"], "high": th["high"]},
            "model": self.model_info,
            "stage": "fast",
            "provenance": item.provenance,
            "image": {"sha256": item.sha256, "width": item.width, "height": item.height},
            "latency_ms": round((time.perf_counter() - item.t0) * 1000, 2),
        }
