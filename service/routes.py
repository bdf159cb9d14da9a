"""The versioned HTTP API around LitServe's batching: detect (one and many), feedback, probes, metrics.

Every image, whether it arrives alone or in a batch, is scored through LitServe's queue to the
inference worker (submit()), so there is one scoring path with dynamic batching. The routes here
only read bodies and talk to the records database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from model.etl.store import StoreError
from model.preprocess import ImageError
from service.api import request_bytes
from service.metrics import StateCollector, render
from service.records import NotFound, stage_update

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    detail: str


class Provenance(BaseModel):
    c2pa: dict | None = None
    iptc_digital_source_type: str | None = None
    generator: str | None = None
    software: str | None = None
    ai_hint: bool = False
    evidence: list[str] = []


class ModelOut(BaseModel):
    name: str
    version: str
    uri: str


class ImageOut(BaseModel):
    sha256: str
    width: int
    height: int


class DetectionOut(BaseModel):
    id: str = Field(description="detection id; send it back with POST /v1/feedback")
    score: float = Field(ge=0, le=1, description="calibrated probability that the image is AI-generated")
    verdict: str = Field(description="ai_generated | real | uncertain (between the thresholds)")
    thresholds: dict[str, float]
    model: ModelOut
    stage: str
    provenance: Provenance = Field(description="metadata hints, reported beside the score, never replacing it")
    image: ImageOut
    kept_for_review: bool
    latency_ms: float
    # Cascade (AIDETECT_QWEN_URL): set when the uncertain band went to the Qwen stage, or could not.
    explanation: str | None = Field(default=None, description="the Qwen stage's reasons, when it decided")
    fast: dict | None = Field(default=None, description="the fast stage's score and verdict, when Qwen decided")
    second_model: dict | None = Field(default=None, description="the Qwen model that decided")
    review: bool | None = Field(
        default=None,
        description="uncertain and no second opinion, or uncertain for the Qwen stage too: waits for a moderator",
    )


class BatchItem(BaseModel):
    index: int
    status: int
    result: DetectionOut | None = None
    detail: str | None = None


class BatchOut(BaseModel):
    results: list[BatchItem]


class FeedbackIn(BaseModel):
    detection_id: str = Field(min_length=1, max_length=36)
    label: Literal["ai", "real"]
    note: str | None = Field(default=None, max_length=2000)


class FeedbackOut(BaseModel):
    id: int
    detection_id: str
    label: str
    given_by: str
    held_back: bool
    to_training: bool


ERRORS = {
    code: {"model": ErrorOut, "description": why}
    for code, why in {
        400: "malformed request",
        401: "missing, invalid or revoked API key",
        413: "too many bytes, pixels or images",
        415: "not an image",
        422: "an image that does not decode",
        429: "rate limit; see Retry-After",
    }.items()
}


def _one_field(name: str, schema: dict) -> dict:
    """An OpenAPI body schema: an object with one required field."""
    return {"schema": {"type": "object", "properties": {name: schema}, "required": [name]}}


def _binary() -> dict:
    return {"type": "string", "format": "binary"}  # fresh each time: FastAPI merges these into its document


IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": _one_field("image", _binary()),
            "application/json": _one_field("image_b64", {"type": "string", "description": "base64 image bytes"}),
            "application/octet-stream": {"schema": _binary()},
        },
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": _one_field("images", {"type": "array", "items": _binary()})},
    }
}


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors as one readable line."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def fix_openapi(app) -> None:
    """LitServe's probes answer text; say so, so the document matches what the server does."""
    base = app.openapi

    def openapi():
        if app.openapi_schema:
            return app.openapi_schema
        doc = base()
        text = {"content": {"text/plain": {"schema": {"type": "string"}}}}
        if "/health" in doc["paths"]:
            doc["paths"]["/health"]["get"]["summary"] = "Readiness: 200 once the model is loaded, else 503"
            doc["paths"]["/health"]["get"]["responses"] = {
                "200": {"description": "ready", **text},
                "503": {"description": "still loading", **text},
            }
        for op in doc["paths"].values():
            for spec in op.values():
                if "422" in spec.get("responses", {}):
                    spec["responses"]["422"] = {
                        "description": "invalid request or undecodable image",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
                    }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _unavailable(e: Exception) -> JSONResponse:
    log.warning("records database unavailable: %s", e)
    return _error(503, "the records database is unavailable; nothing was stored, retry later", {"Retry-After": "5"})


class Cascade:
    """The second stage for the uncertain band, when AIDETECT_QWEN_URL names one. Its client is made on
    first use, in the HTTP process that uses it (LitServe forks that process after build time).

    The worker recorded the fast answer before replying; when the second stage decides, its answer is
    queued in the same outbox behind that record, so the stored detection ends as the caller saw it."""

    def __init__(self, settings, outbox=None):
        self.url, self.timeout = settings.qwen_url, settings.qwen_timeout
        self.outbox = outbox
        self._stage = None

    async def __call__(self, fast, data: bytes):
        from service.cascade import SecondStage, combine, needs_second_stage

        if not self.url or not isinstance(fast, dict) or not needs_second_stage(fast):
            return fast
        if self._stage is None:
            self._stage = SecondStage(self.url, timeout=self.timeout)
        # The client is synchronous and bounded by its timeout; a thread keeps the event loop free.
        second = await asyncio.to_thread(self._stage.score, data)
        out = combine(fast, second)
        if out["stage"] != fast.get("stage") and self.outbox is not None:
            try:
                await asyncio.to_thread(self.outbox.append, [stage_update(out)])
            except Exception as e:  # the answer still goes out; the log says what the record misses
                log.error("could not queue the cascade verdict of %s: %s", out.get("id"), e)
        return out


def build_router(server, lit_api, state) -> APIRouter:
    from service.litserve_compat import worker_submitter

    to_worker = worker_submitter(server, lit_api)
    settings = state.settings
    collector = StateCollector(
        queue_size=lambda: state.records.get().queue_size(),
        drift_file=state.drift_file,
        outbox_size=state.outbox.__len__,
        drift_stored=lambda: state.records.get().latest_drift_report(),
    )
    router = APIRouter()

    cascade = Cascade(settings, state.outbox)

    async def submit(data: bytes, key_id: str | None):
        fast = await to_worker({"data": data, "key_id": key_id})
        return await cascade(fast, data)

    @router.post(
        "/v1/detect",
        response_model=DetectionOut,
        response_model_exclude_unset=True,  # cascade fields appear only when the cascade ran
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
        summary="Score one image: raw body, multipart field `image`, or JSON image_b64",
    )
    async def detect(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if ctype == "application/json":
                payload = await request.json()
            else:  # the body middleware turned raw uploads into multipart
                payload = await request.form(max_files=2, max_fields=10)
            data = request_bytes(payload)
        except ImageError as e:
            return _error(e.status, e.message)
        except Exception:  # a form the multipart parser refuses
            return _error(400, "the body is not a valid multipart form; send the image as field 'image'")
        finally:
            if ctype != "application/json" and "payload" in locals():
                await payload.close()
        return await submit(data, getattr(request.state, "key_id", None))

    @router.post(
        "/v1/detect/batch",
        response_model=BatchOut,
        response_model_exclude_unset=True,
        responses=ERRORS,
        openapi_extra=BATCH_BODY,
        summary=f"Score up to {settings.max_images_per_request} images (multipart field `images`, repeated)",
    )
    async def detect_batch(request: Request):
        limit = settings.max_images_per_request
        try:
            form = await request.form(max_files=limit + 1, max_fields=limit + 1)
        except Exception:
            return _error(400, f"send a multipart form with up to {limit} files in field 'images'")
        try:
            files = [f for name in ("images", "image[]") for f in form.getlist(name)]
            if not files:
                return _error(400, "multipart body has no files in field 'images'")
            if len(files) > limit:
                return _error(413, f"{len(files)} images in one request; the limit is {limit}")
            if any(isinstance(f, str) for f in files):
                return _error(400, "field 'images' must hold file uploads, not text")
            blobs = [await f.read() for f in files]
        finally:
            await form.close()
        key_id = getattr(request.state, "key_id", None)
        cap = settings.max_bytes

        async def one(data: bytes):
            # An image over the byte limit is answered here, never shipped to the worker and copied there.
            if len(data) > cap:
                return _error(413, f"image is {len(data) / 2**20:.1f} MiB; the limit is {cap / 2**20:.1f} MiB")
            return await submit(data, key_id)

        answers = await asyncio.gather(*(one(b) for b in blobs))
        results = []
        for i, a in enumerate(answers):
            if isinstance(a, Response):  # an ImageError: a 4xx of its own, here or in the worker
                results.append({"index": i, "status": a.status_code, "detail": json.loads(a.body)["detail"]})
            else:
                results.append({"index": i, "status": 200, "result": a})
        return {"results": results}

    @router.post(
        "/v1/feedback",
        status_code=201,
        response_model=FeedbackOut,
        responses={**ERRORS, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
        summary="Label an earlier detection (ai | real); stored before the answer",
    )
    async def feedback(body: FeedbackIn, request: Request):
        who = getattr(request.state, "who", None)
        if who is None or (settings.auth_required and not who.startswith("key:")):
            # Labels become training data: where keys are required, nobody without one may give them.
            return _error(401, "feedback needs an API key: send 'Authorization: Bearer KEY'")
        try:
            db = await asyncio.to_thread(state.db)
            return await asyncio.to_thread(db.add_feedback, body.detection_id, body.label, who, body.note)
        except NotFound as e:
            return _error(404, str(e))
        except ValueError as e:
            return _error(422, str(e))
        except (StoreError, OSError) as e:
            return _unavailable(e)
        except Exception as e:  # a driver error outside the store's translation: still the database's fault
            return _unavailable(e)

    @router.get("/livez", summary="Liveness: the HTTP process answers (GET /health is readiness)")
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics():
        body, ctype = await asyncio.to_thread(render, collector)
        return Response(body, media_type=ctype)

    return router
