"""The fast detector as a LitServe API: bytes in, calibrated score, verdict and provenance out.

LitServe's batched loop fails a whole batch when one request raises, so a bad image is not
raised in decode_request: it travels through the batch as an ImageError, is skipped by
predict, and becomes its own 4xx JSON response in encode_response. One bad upload never
costs its neighbours their answer.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field

import litserve as ls
import numpy as np
import torch
from starlette.responses import JSONResponse

from aidetect.settings import Settings, get_settings
from model.preprocess import ImageError, decode_image, fit_to_size, to_array
from model.provenance import extract_provenance
from service.litserve_compat import default_loop

log = logging.getLogger(__name__)


@dataclass
class Decoded:
    x: np.ndarray  # model input, CHW float32
    sha256: str
    width: int
    height: int
    provenance: dict
    t0: float  # perf_counter when decoding began
    data: bytes = field(default=b"", repr=False)  # kept for review when the verdict is uncertain
    key_id: str | None = None


def request_bytes(request) -> bytes:
    """The image bytes of a multipart form (field `image`), a JSON body ({"image_b64": ...}) or the
    service's own payload ({"data": bytes}, made by routes.py; JSON cannot carry bytes, so no client can)."""
    if isinstance(request, dict) and isinstance(request.get("data"), bytes):
        return request["data"]
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
        if "url" in request and b64 is None:
            raise ImageError("URL input is not offered: the service never fetches URLs; upload the bytes", 400)
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
    key_id = request.get("key_id") if isinstance(request, dict) else None
    return Decoded(x, hashlib.sha256(data).hexdigest(), w, h, extract_provenance(data), t0, data, key_id)


def detection_record(item: Decoded, score: float, verdict: str, model: dict, kept: bool) -> dict:
    """What is stored about one answered image (see service.records.Detection); a kept (uncertain) image
    travels with its bytes, which the flusher puts in the object store."""
    rec = {
        "id": str(uuid.uuid4()),
        "sha256": item.sha256,
        "score": score,
        "verdict": verdict,
        "stage": "fast",
        "model_name": model["name"],
        "model_version": model["version"],
        "api_key_id": item.key_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "width": item.width,
        "height": item.height,
        "size_bytes": len(item.data),
        "provenance": item.provenance,
        "kept": kept,
    }
    if kept:
        rec["image_b64"] = base64.b64encode(item.data).decode()
    return rec


class DetectorAPI(ls.LitAPI):
    """One EfficientNet detector loaded from the MLflow registry, batched dynamically."""

    def __init__(self, settings: Settings | None = None, torch_threads: int = 0, **kw):
        s = settings or get_settings()
        kw.setdefault("loop", default_loop(s.max_batch_size))
        super().__init__(max_batch_size=s.max_batch_size, batch_timeout=s.batch_timeout, api_path="/v1/detect", **kw)
        self.settings = s
        self.torch_threads = torch_threads  # 0: torch's own default

    def setup(self, device) -> None:
        from model import registry

        torch.set_grad_enabled(False)
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        registry.configure(self.settings)
        self.bundle, self.ref = registry.load_detector(self.settings.resolved_model_uri)
        self.bundle.use_runtime(self.settings.runtime, self.torch_threads)
        scorer = self.bundle.scorer  # built now, so the first request does not pay for the session
        if self.bundle.onnx is None and self.settings.runtime == "auto":
            log.warning(
                "%s has no ONNX export: serving with eager torch; `aidetect models export %s` adds one",
                self.ref.uri,
                self.ref.version,
            )
        # The service's byte and pixel limits apply on top of the preprocessing the model was trained with.
        from dataclasses import replace

        self.pre = replace(self.bundle.pre, max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels)
        self.model_info = {"name": self.ref.name, "version": self.ref.version, "uri": self.ref.uri}
        log.info(
            "serving %s on %s %s, %s thread(s)",
            self.ref.uri,
            scorer.runtime,
            scorer.precision,
            self.torch_threads or "default",
        )
        self._setup_records()

    def _setup_records(self) -> None:
        """Records go to a local outbox that the HTTP process drains into the store (service.state): this
        process only decodes and scores, so nothing here waits on a database or an object store."""
        from service.metrics import metrics
        from service.outbox import Outbox

        self.metrics = metrics()
        self.metrics.model_info.labels(self.ref.name, self.ref.version).set(1)
        self.outbox = Outbox(outbox_path(self.settings))

    def decode_request(self, request):
        return decode(request, self.pre)

    def batch(self, inputs):
        return inputs  # stacking happens in predict, around the failed items

    def predict(self, items):
        if not isinstance(items, list):  # max_batch_size=1: LitServe hands one item over
            return self.predict([items])[0]
        ok = [i for i, it in enumerate(items) if isinstance(it, Decoded)]
        records: list[dict | None] = [None] * len(items)
        if ok:
            scores = self.bundle.score_tensor(np.stack([items[i].x for i in ok]))
            verdicts = self.bundle.verdicts(scores)
            for i, s, v in zip(ok, scores, verdicts, strict=True):
                records[i] = detection_record(items[i], float(s), v, self.model_info, kept=v == "uncertain")
            self._record([r for r in records if r is not None])
        return [(it, r) for it, r in zip(items, records, strict=True)]

    def _record(self, records: list[dict]) -> None:
        if not hasattr(self, "outbox"):
            return
        m = self.metrics
        m.batch.observe(len(records))
        for r in records:
            m.verdicts.labels(r["verdict"]).inc()
            m.score.observe(r["score"])
        try:
            self.outbox.append(records)
        except Exception as e:  # the answer still goes out; the log says what was lost
            log.error("could not queue %d detection records: %s", len(records), e)

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        item, rec = output
        if isinstance(item, ImageError):
            return JSONResponse({"detail": item.message}, status_code=item.status)
        th = self.bundle.thresholds
        return {
            "id": rec["id"],
            "score": round(rec["score"], 6),
            "verdict": rec["verdict"],
            "thresholds": {"low": th["low"], "high": th["high"]},
            "model": self.model_info,
            "stage": "fast",
            "provenance": item.provenance,
            "image": {"sha256": item.sha256, "width": item.width, "height": item.height},
            "kept_for_review": rec["kept"],
            "latency_ms": round((time.perf_counter() - item.t0) * 1000, 2),
        }


def outbox_path(settings: Settings):
    return settings.home / "outbox.db"


PRUNE_EVERY_S = 3600.0


def prune_forever(records: LazyRecords, settings: Settings) -> None:
    """Apply the review retention hourly, so even a laptop's `aidetect up` forgets stale kept images."""
    while True:
        try:
            out = records.get().prune(settings.review_retention_days)
            if out["detections_expired"]:
                log.info("retention: %s", out)
        except Exception as e:  # database down: next hour
            log.warning("retention pass skipped: %s", e)
            records._records = None
        time.sleep(PRUNE_EVERY_S)


class LazyRecords:
    """Records opened on first use and reopened after a failure, so a database that is down when the
    worker starts (or goes away later) only delays the flush."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._records = None

    def get(self):
        if self._records is None:
            from service.records import Records

            self._records = Records.open(self.settings)
        return self._records

    def apply_outbox(self, rows: list[dict]) -> int:
        try:
            return self.get().apply_outbox(rows)
        except Exception:
            if self._records is not None:
                self._records.close()
            self._records = None
            raise
