"""The fast detector as a LitServe API: bytes in, calibrated score, verdict and provenance out.

LitServe's batched loop fails a whole batch when one request raises, so a bad image is not
raised in decode_request: it travels through the batch as an ImageError, is skipped by
predict, and becomes its own 4xx JSON response in encode_response. One bad upload never
costs its neighbours their answer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

import litserve as ls
import numpy as np
import torch
from PIL import Image
from starlette.responses import JSONResponse

from aidetect.settings import Settings, get_settings
from model.etl.hashing import phash_hex, sha256_hex
from model.preprocess import ImageError, decode_image, fit_to_size, to_array
from model.provenance import extract_provenance
from service.detection import Detection, ImageFacts, ModelRef, Provenance, Thresholds
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
    # What a kept image's perceptual hash is computed from, the same hash ingest computes from the full image:
    # the decoded image itself when small, else what imagehash.phash reduces it to first (grey, 32x32 LANCZOS).
    thumb: Image.Image | None = field(default=None, repr=False)


PHASH_SIDE = 32
# Up to this many pixels the decoded image waits for the verdict (3 MB at most, per image in a batch), and
# only a kept one is reduced and hashed: reducing every image cost a fifth of the worker's CPU per image
# besides the model. A larger image is reduced while decoding, so it is not held past that.
HOLD_PIXELS = 1_000_000


def decode(payload: dict, settings_pre) -> Decoded | ImageError:
    """The worker's half of a request: the bytes the HTTP process read (service/body.py), decoded once."""
    t0 = time.perf_counter()
    data = payload["data"]
    try:
        img = decode_image(data, settings_pre)
        w, h = img.size
        thumb = img
        if w * h > HOLD_PIXELS:
            thumb = img.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS)
        x = to_array(fit_to_size(img, settings_pre), settings_pre)
    except ImageError as e:
        return e
    return Decoded(
        x, sha256_hex(data), w, h, extract_provenance(data), t0, data, payload.get("key_id"), thumb
    )


def detection_of(item: Decoded, score: float, verdict: str, model: ModelRef, thresholds: Thresholds) -> Detection:
    """The typed detection of one answered image; an uncertain one is kept for review, with its hash."""
    kept = verdict == "uncertain"
    return Detection(
        id=str(uuid.uuid4()),
        score=round(score, 6),
        verdict=verdict,
        thresholds=thresholds,
        model=model,
        stage="fast",
        provenance=Provenance(**item.provenance),
        image=ImageFacts(sha256=item.sha256, width=item.width, height=item.height),
        kept_for_review=kept,
        api_key_id=item.key_id,
        size_bytes=len(item.data),
        phash=phash_hex(item.thumb) if kept and item.thumb is not None else None,
    )


class DetectorAPI(ls.LitAPI):
    """One EfficientNet detector loaded from the MLflow registry, batched dynamically."""

    def __init__(self, settings: Settings | None = None, torch_threads: int = 0, workers: int = 1, cpus: int = 0, **kw):
        s = settings or get_settings()
        kw.setdefault("loop", default_loop(s.max_batch_size))
        super().__init__(max_batch_size=s.max_batch_size, batch_timeout=s.batch_timeout, api_path="/v1/detect", **kw)
        self.settings = s
        self.torch_threads = torch_threads  # 0: torch's own default
        # With several single-core workers, a worker that scores alone may use every core (service/cores.py).
        self.workers, self.cpus = workers, cpus

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
        self.model_info = ModelRef(name=self.ref.name, version=self.ref.version, uri=self.ref.uri)
        th = self.bundle.thresholds
        self.thresholds = Thresholds(low=th["low"], high=th["high"])
        self._setup_wide(scorer)
        log.info(
            "serving %s on %s %s, %s thread(s)",
            self.ref.uri,
            scorer.runtime,
            scorer.precision,
            self.torch_threads or "default",
        )
        self._setup_records()

    def _setup_wide(self, narrow) -> None:
        """A second ONNX session with a thread per core, for batches no sibling worker competes with."""
        from model.runtime import OnnxScorer
        from service.cores import CoreShare

        self.wide, self.cores = None, None
        explicit = self.settings.torch_threads  # an operator's thread count always wins
        if explicit or narrow.runtime != "onnxruntime" or self.workers < 2 or self.cpus <= (self.torch_threads or 1):
            return
        # Its pool threads must not spin between batches: the cores are the other workers' too.
        # (Measured here on the loaded shared VM, spinning threads doubled a lone request's latency.)
        self.wide = OnnxScorer(self.bundle.onnx, self.cpus, narrow.precision, spin=False)
        self.cores = CoreShare(self.settings.home / f"cores-{self.settings.port}.lock", self.workers)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Calibrated scores of a batch: on every core for a lone image while no other worker is scoring, else
        on our share. A batch means load: the sibling that is between batches now starts its own a moment later,
        and a wide pass then runs three threads on two cores (measured: 0.5-1 CPU-ms more per image at 8
        clients, bench/serve_latency.py)."""
        if self.cores is None:
            return self.bundle.score_tensor(x)
        with self.cores.busy():
            if len(x) == 1 and self.cores.alone():
                return self.bundle.calibrate(self.wide.logits(x))
            return self.bundle.score_tensor(x)

    def _setup_records(self) -> None:
        """Records go to a local outbox that the HTTP process drains into the database (service.state), and
        kept images straight to the object store: this process never waits on the database."""
        from service.metrics import metrics
        from service.outbox import Outbox
        from service.review_store import ReviewStore, review_objects

        self.metrics = metrics()
        self.metrics.model_info.labels(self.ref.name, self.ref.version).set(1)
        self.outbox = Outbox(outbox_path(self.settings))
        self.keeper = ReviewStore(review_objects(self.settings), self.metrics)
        self.keeper.warm()

    def decode_request(self, request):
        return decode(request, self.pre)

    def batch(self, inputs):
        return inputs  # stacking happens in predict, around the failed items

    def predict(self, items):
        if not isinstance(items, list):  # max_batch_size=1: LitServe hands one item over
            return self.predict([items])[0]
        ok = [i for i, it in enumerate(items) if isinstance(it, Decoded)]
        answers: list[Detection | None] = [None] * len(items)
        if ok:
            scores = self.score(np.stack([items[i].x for i in ok]))
            verdicts = self.bundle.verdicts(scores)
            for i, s, v in zip(ok, scores, verdicts, strict=True):
                answers[i] = detection_of(items[i], float(s), v, self.model_info, self.thresholds)
            self._record([(items[i], answers[i]) for i in ok])
        return [(it, d) for it, d in zip(items, answers, strict=True)]

    def _record(self, answered: list[tuple[Decoded, Detection]]) -> None:
        if not hasattr(self, "outbox"):
            return
        m = self.metrics
        m.batch.observe(len(answered))
        for item, d in answered:
            m.verdicts.labels(d.verdict).inc()
            m.score.observe(d.score)
            if d.kept_for_review:  # bytes first: a record never points at an object that is not there
                self.keeper.keep(d, item.data)  # retried briefly; on failure d says it was not kept
        try:
            self.outbox.append([d for _, d in answered])
        except Exception as e:  # the answer still goes out; the log says what was lost
            log.error("could not queue %d detection records: %s", len(answered), e)

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        item, det = output
        if isinstance(item, ImageError):
            return JSONResponse({"detail": item.message}, status_code=item.status)
        det.latency_ms = round((time.perf_counter() - item.t0) * 1000, 2)
        return det


def outbox_path(settings: Settings):
    return settings.home / "outbox.db"


PRUNE_EVERY_S = 3600.0


def prune_forever(records: LazyRecords, settings: Settings, stop: threading.Event | None = None) -> None:
    """Apply the review retention hourly, so even a laptop's `aidetect up` forgets stale kept images."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            out = records.get().prune(settings.review_retention_days)
            if out["detections_expired"]:
                log.info("retention: %s", out)
        except Exception as e:  # database down: next hour
            log.warning("retention pass skipped: %s", e)
            records._records = None
        stop.wait(PRUNE_EVERY_S)


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

    def apply_outbox(self, rows: list[Detection]) -> int:
        try:
            return self.get().apply_outbox(rows)
        except Exception:
            if self._records is not None:
                self._records.close()
            self._records = None
            raise
