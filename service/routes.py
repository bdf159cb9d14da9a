"""The versioned HTTP API around LitServe's batching: detect (one and many), feedback, probes, metrics.

Every image, whether it arrives alone or in a batch, is read once here (service/body.py) and scored through
LitServe's queue to the inference worker (submit()), so there is one scoring path with dynamic batching.
Callers are checked by one dependency (service/security.py) before any body is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from model.etl.store import StoreError
from model.preprocess import ALLOWED_FORMATS, ImageError
from service.backpressure import OutboxRoom
from service.body import UploadTimeouts, read_image, read_images
from service.detection import Detection
from service.idempotency import REPLAYED, IdempotencyKey, KeyReused, check_key
from service.metrics import StateCollector, render
from service.records import NotFound
from service.security import caller

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    detail: str


class BatchItem(BaseModel):
    index: int
    status: int
    result: Detection | None = None
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
        415: f"not an image in a format read: {', '.join(f for f in ALLOWED_FORMATS if f != 'MPO')}",
        422: "an image that does not decode",
        429: "rate limit; see Retry-After",
    }.items()
}
DETECT_ERRORS = {
    **ERRORS,
    408: {
        "model": ErrorOut,
        "description": "the upload stalled (AIDETECT_UPLOAD_IDLE_TIMEOUT) or took too long (AIDETECT_UPLOAD_TIMEOUT)",
    },
    503: {
        "model": ErrorOut,
        "description": "busy: uploads in flight fill the memory budget, the records database is down (a key not "
        "seen before cannot be checked, or the outbox is full); see Retry-After",
    },
}


def _one_field(name: str, schema: dict) -> dict:
    """An OpenAPI body schema: an object with one required field."""
    return {"schema": {"type": "object", "properties": {name: schema}, "required": [name]}}


def _binary() -> dict:
    # fresh each time: FastAPI merges these into its document. An empty file is no image: say so.
    return {"type": "string", "format": "binary", "minLength": 1}


# Standard base64 (RFC 4648, padded), as base64.b64decode(validate=True) reads it: what the schema promises
# the route accepts. At least one byte, so never empty.
BASE64 = {
    "type": "string",
    "minLength": 4,
    "pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$",
    "contentEncoding": "base64",
    "description": "the image file's bytes, base64 (standard alphabet, padded)",
}


def image_body() -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": _one_field("image", _binary()),
                "application/json": _one_field("image_b64", dict(BASE64)),
                "application/octet-stream": {"schema": _binary()},
            },
        }
    }


def batch_body(max_images: int) -> dict:
    # An empty file is not refused here: like any other bad image it is answered on its own in `results`.
    item = {"type": "string", "format": "binary"}
    images = {"type": "array", "items": item, "minItems": 1, "maxItems": max_images}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": _one_field("images", images)}}}


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors as one readable line."""
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def fix_openapi(app, auth_required: bool = True) -> None:
    """LitServe's probes answer text; say so, so the document matches what the server does. Where keys are
    optional (auth_required false), say that too: an empty requirement beside the two key schemes."""
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
                if spec.get("security") and not auth_required:
                    spec["security"].append({})
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


def answer(out) -> Response:
    """A detection as its JSON answer, written once. Returned as a model, FastAPI would dump it, validate the
    dump into a new Detection and dump that again (response_model stays, for the OpenAPI document); the
    fields are the same: those set (exclude_unset), never the private ones. A worker's error passes as is."""
    if isinstance(out, Detection):
        return Response(out.model_dump_json(exclude_unset=True), media_type="application/json")
    return out


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

        if not self.url or not isinstance(fast, Detection) or not needs_second_stage(fast):
            return fast
        if self._stage is None:
            self._stage = SecondStage(self.url, timeout=self.timeout)
        # The client is synchronous and bounded by its timeout; a thread keeps the event loop free.
        second = await asyncio.to_thread(self._stage.score, data)
        out = combine(fast, second)
        if out.stage != fast.stage and self.outbox is not None:
            try:  # the same detection, decided: the records replace the fast verdict with it
                await asyncio.to_thread(self.outbox.append, [out])
            except Exception as e:  # the answer still goes out; the log says what the record misses
                log.error("could not queue the cascade verdict of %s: %s", out.id, e)
        return out


def build_router(server, lit_api, state) -> APIRouter:
    from service.litserve_compat import worker_submitter
    from service.outbox_spill import parked

    to_worker = worker_submitter(server, lit_api)
    settings = state.settings
    collector = StateCollector(
        queue_size=lambda: state.records.get().queue_size(),
        drift_file=state.drift_file,
        outbox_size=state.outbox.backlog,
        drift_stored=lambda: state.records.get().latest_drift_report(),
        parked=lambda: parked(state.parking()),
    )
    router = APIRouter()

    cascade = Cascade(settings, state.outbox)
    guard = Depends(caller(state))
    patience = UploadTimeouts(settings.upload_idle_timeout, settings.upload_timeout)
    room = Depends(OutboxRoom(state.outbox, settings.outbox_max_records))

    async def submit(data: bytes, key_id: str | None):
        fast = await to_worker({"data": data, "key_id": key_id})
        return await cascade(fast, data)

    @router.post(
        "/v1/detect",
        response_model=Detection,
        response_model_exclude_unset=True,  # cascade fields appear only when the cascade ran
        responses=DETECT_ERRORS,
        openapi_extra=image_body(),
        dependencies=[guard, room],
        summary="Score one image: raw body, multipart field `image`, or JSON image_b64",
    )
    async def detect(request: Request):
        try:
            data = await read_image(request, settings.max_bytes, patience)
        except ImageError as e:
            return _error(e.status, e.message)
        return answer(await submit(data, request.state.key_id))

    @router.post(
        "/v1/detect/batch",
        response_model=BatchOut,
        response_model_exclude_unset=True,
        responses=DETECT_ERRORS,
        openapi_extra=batch_body(settings.max_images_per_request),
        dependencies=[guard, room],
        summary=f"Score up to {settings.max_images_per_request} images (multipart field `images`, repeated)",
    )
    async def detect_batch(request: Request):
        cap = settings.max_bytes
        try:
            blobs = await read_images(request, cap, settings.max_images_per_request, patience)
        except ImageError as e:
            return _error(e.status, e.message)
        key_id = request.state.key_id

        async def one(data: bytes):
            # An image over the byte limit is answered here, never shipped to the worker and copied there.
            if len(data) > cap:
                return ImageError(f"image is {len(data) / 2**20:.1f} MiB; the limit is {cap / 2**20:.1f} MiB", 413)
            return await submit(data, key_id)

        answers = await asyncio.gather(*(one(b) for b in blobs))
        results = []
        for i, a in enumerate(answers):
            if isinstance(a, Detection):
                results.append({"index": i, "status": 200, "result": a})
            elif isinstance(a, ImageError):
                results.append({"index": i, "status": a.status, "detail": a.message})
            else:  # the worker's 4xx for this image
                results.append({"index": i, "status": a.status_code, "detail": json.loads(a.body)["detail"]})
        return {"results": results}

    @router.post(
        "/v1/feedback",
        status_code=201,
        response_model=FeedbackOut,
        responses={
            **ERRORS,
            404: {"model": ErrorOut, "description": "no such detection"},
            409: {"model": ErrorOut, "description": "this Idempotency-Key was used for another request"},
            503: {"model": ErrorOut, "description": "the records database is unavailable; nothing was stored"},
        },
        dependencies=[guard],
        summary="Label an earlier detection (ai | real); stored before the answer, once per Idempotency-Key",
    )
    async def feedback(body: FeedbackIn, request: Request, response: Response, idempotency_key: IdempotencyKey = None):
        who = request.state.who
        if settings.auth_required and not who.startswith("key:"):
            # Labels become training data: where keys are required, nobody without one may give them.
            return _error(401, "feedback needs an API key: send 'Authorization: Bearer KEY'")
        try:
            key = check_key(idempotency_key)
            db = await asyncio.to_thread(state.db)
            out = await asyncio.to_thread(db.add_feedback, body.detection_id, body.label, who, body.note, key)
            if out.pop("replayed"):
                response.headers[REPLAYED] = "true"
            return out
        except KeyReused as e:
            return _error(409, str(e))
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
