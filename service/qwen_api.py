"""The Qwen2-VL detector as its own LitServe server: the second stage of the cascade.

    aidetect qwen serve --model-uri models:/aidetect-qwen/1 --port 8001
    curl -s localhost:8001/v1/qwen -H 'Content-Type: application/json' \
         -d "{\"image_b64\": \"$(base64 -w0 cat.jpg)\", \"explain\": true}"
    -> {"score": 0.93, "verdict": "ai_generated", "explanation": "...", "stage": "qwen", "model": {...}}

Verdicts use the thresholds fitted for this version on the fast stage's uncertain band
(`aidetect qwen fit-thresholds`, model.qwen.stage_fit) when it has them: real / uncertain / ai_generated,
and `model.thresholds` says which. An unfitted version decides at its config threshold (real / ai_generated).

Also accepts multipart (field `image`, optional field `explain`). Requests are batched: scoring is
one forward pass over the batch; only the requests that ask for it pay for generation. As in the
fast API, a bad image travels through the batch as an ImageError and becomes its own 4xx answer.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import litserve as ls
from PIL import Image
from starlette.responses import JSONResponse

from aidetect.settings import Settings, get_settings
from model.preprocess import ImageError, PreprocessConfig, decode_image
from service.listen import ensure_port_free
from service.litserve_compat import default_loop, stop_children_on_sigterm

log = logging.getLogger(__name__)

API_PATH = "/v1/qwen"


@dataclass
class QwenItem:
    image: Image.Image
    explain: bool
    t0: float


def _truthy(v) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"))


def parse_request(request) -> tuple[bytes, bool]:
    """(image bytes, explain?) from JSON {"image_b64", "explain"} or multipart fields image, explain."""
    if isinstance(request, dict):
        b64 = request.get("image_b64")
        if not isinstance(b64, str):
            raise ImageError("JSON body needs a string field 'image_b64' (base64 of the image file)", 400)
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("'image_b64' is not valid base64", 400) from None
        return data, _truthy(request.get("explain", False))
    if hasattr(request, "getlist"):  # starlette FormData
        item = request.get("image")
        if item is None or isinstance(item, str):
            raise ImageError("multipart body needs a file field 'image'", 400)
        item.file.seek(0)
        return item.file.read(), _truthy(request.get("explain", "false"))
    raise ImageError("send JSON {'image_b64': ..., 'explain': bool} or multipart field 'image'", 400)


def decode(request, pre: PreprocessConfig) -> QwenItem | ImageError:
    t0 = time.perf_counter()
    try:
        data, explain = parse_request(request)
        return QwenItem(decode_image(data, pre), explain, t0)
    except ImageError as e:
        return e


def load(model_uri: str, device: str | None):
    """(QwenDetector, model info) from a registry URI or, for local runs, a bundle folder."""
    from model.qwen.detector import QwenDetector

    if Path(model_uri).is_dir():
        return QwenDetector.from_bundle(model_uri, device), {"uri": str(Path(model_uri).resolve())}
    from model.qwen.tracking import load_detector

    det, ref = load_detector(model_uri, device)
    return det, {"name": ref.name, "version": ref.version, "uri": ref.uri}


class QwenAPI(ls.LitAPI):
    """One Qwen2-VL detector (LoRA adapter over its base), loaded from the MLflow registry."""

    def __init__(
        self,
        model_uri: str,
        settings: Settings | None = None,
        max_batch_size: int = 8,
        batch_timeout: float = 0.02,
        **kw,
    ):
        kw.setdefault("loop", default_loop(max_batch_size))
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=API_PATH, **kw)
        self.model_uri = model_uri
        self.settings = settings or get_settings()
        self.detector = None

    def setup(self, device) -> None:
        import torch

        from model import registry

        torch.set_grad_enabled(False)
        registry.configure(self.settings)
        dev = "cuda" if str(device).startswith("cuda") else "cpu"
        self.detector, self.model_info = load(self.model_uri, dev)
        if self.detector.stage_fit is not None:  # which band decided travels with every answer and record
            fit = self.detector.stage_fit
            th = fit["thresholds"]
            self.model_info["thresholds"] = {"high": th["high"], "low": th["low"], "fitted_on": fit["fitted_on"]}
        self.pre = PreprocessConfig(max_bytes=self.settings.max_bytes, max_pixels=self.settings.max_pixels)
        log.info("serving Qwen detector %s on %s", self.model_info["uri"], dev)

    def decode_request(self, request):
        return decode(request, self.pre)

    def batch(self, inputs):
        return inputs  # the detector batches PIL images itself, around the failed items

    def predict(self, items):
        if not isinstance(items, list):  # max_batch_size=1: LitServe hands one item over
            return self.predict([items])[0]
        ok = [i for i, it in enumerate(items) if isinstance(it, QwenItem)]
        results: list = list(items)
        if ok:
            rows = self.detector.predict([items[i].image for i in ok], explain=[items[i].explain for i in ok])
            for i, row in zip(ok, rows, strict=True):
                results[i] = (items[i], row)
        return results

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        if isinstance(output, ImageError):
            return JSONResponse({"detail": output.message}, status_code=output.status)
        item, row = output
        return {
            "score": round(row["score"], 6),
            "verdict": row["verdict"],
            **({"explanation": row["explanation"]} if "explanation" in row else {}),
            "stage": "qwen",
            "model": self.model_info,
            "latency_ms": round((time.perf_counter() - item.t0) * 1000, 2),
        }


def build_server(
    model_uri: str,
    settings: Settings | None = None,
    max_batch_size: int = 8,
    batch_timeout: float = 0.02,
    timeout: float = 60.0,
) -> ls.LitServer:
    api = QwenAPI(model_uri, settings, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    return ls.LitServer(
        api,
        accelerator="auto",
        workers_per_device=1,
        timeout=timeout,
        model_metadata={"service": "aidetect-qwen", "model_uri": model_uri},
    )


def preflight(model_uri: str, settings: Settings, host: str, port: int) -> None:
    """Fail fast, in the parent, with one clear line, when the port is taken or the model cannot be found."""
    ensure_port_free(host, port)
    if Path(model_uri).is_dir():
        from model.qwen.bundle import read_bundle

        read_bundle(model_uri)
        return
    from model import registry

    registry.configure(settings)
    registry.resolve(model_uri)


def run_server(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 8001,
    max_batch_size: int = 8,
    batch_timeout: float = 0.02,
    timeout: float = 60.0,
    settings: Settings | None = None,
) -> None:
    settings = settings or get_settings()
    preflight(model_uri, settings, host, port)
    server = build_server(model_uri, settings, max_batch_size, batch_timeout, timeout)
    stop_children_on_sigterm()
    server.run(host=host, port=port, generate_client_file=False, log_level="warning")
