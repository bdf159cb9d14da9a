"""Build and run the detector server: LitServe's batching plus the versioned API, auth, metrics and the
moderator page, in one process tree.

aidetect serve --port 8000
curl -s -X POST --data-binary @cat.jpg -H 'Content-Type: image/jpeg' localhost:8000/v1/detect
"""

from __future__ import annotations

import logging
import secrets
import sys

import litserve as ls
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse

from aidetect.settings import Settings
from service.api import DetectorAPI
from service.body import FORM_TYPES, body_limit
from service.limits import SMALL_BODY_BYTES, BodyLimitMiddleware, InflightBytesMiddleware
from service.listen import ensure_port_free
from service.litserve_compat import PipeQueueServer, drop_routes, stop_children_on_sigterm
from service.middleware import MetricsMiddleware
from service.routes import validation_message
from service.workers import available_cpus, inference_layout

log = logging.getLogger(__name__)


def build_server(settings: Settings) -> ls.LitServer:
    from service.moderate import build_moderator_router
    from service.routes import build_router, fix_openapi
    from service.state import ServiceState

    cpus = available_cpus()
    workers, threads = inference_layout(settings.workers_per_device, settings.torch_threads, cpus)
    log.info("%d inference worker(s), %d thread(s) each (all %d when scoring alone)", workers, threads, cpus)
    api = DetectorAPI(settings, torch_threads=threads, workers=workers, cpus=cpus)
    state = ServiceState(settings)
    batch_bytes = settings.max_bytes * settings.max_images_per_request
    # Listed innermost first: LitServe adds them in order, and each added one wraps the ones before.
    # Image bodies are read, and their byte limits checked as they stream in, by the routes (service/body.py);
    # keys and rate limits are the routes' dependency (service/security.py).
    middlewares = [
        # Everything else that takes a body (feedback, sign-in, labels) is small: refuse more, unread.
        (BodyLimitMiddleware, {"max_bytes": SMALL_BODY_BYTES, "skip": ("/v1/detect", "/v1/detect/batch")}),
        # All image uploads together: at most one worst-case batch in flight (the memory model in docs/api.md).
        (
            InflightBytesMiddleware,
            {
                "budget": body_limit(batch_bytes, FORM_TYPES[0]),
                "limits": {
                    "/v1/detect": body_limit(settings.max_bytes, FORM_TYPES[0]),
                    "/v1/detect/batch": body_limit(batch_bytes, FORM_TYPES[0]),
                },
            },
        ),
        (
            CORSMiddleware,
            {
                "allow_origins": list(settings.cors_origins),
                "allow_methods": ["GET", "POST"],
                "allow_headers": ["Authorization", "X-API-Key", "Content-Type"],
            },
        ),
        (MetricsMiddleware, {"state": state}),
    ]
    server = PipeQueueServer(
        api,
        accelerator="cpu",
        workers_per_device=workers,
        middlewares=middlewares,
        model_metadata={"service": "aidetect", "model_uri": settings.resolved_model_uri},
        timeout=60,
    )
    app = server.app
    app.title, app.version = "aidetect", "1"
    app.description = "Tell whether an image was made by AI. Auth, limits and errors: docs/api.md."
    # Our /v1/detect (routes.py) reads the body and hands LitServe's queue the bytes and the caller's key id.
    drop_routes(app, ("/v1/detect", "/"))
    _text_health(app)
    app.include_router(build_router(server, api, state))
    app.include_router(build_moderator_router(state))
    app.add_exception_handler(Exception, _no_traceback)
    app.add_exception_handler(RequestValidationError, _invalid)
    fix_openapi(app, settings.auth_required)
    server.state = state
    return server


def _text_health(app) -> None:
    """LitServe's readiness probe, answering with a Content-Type (text/plain) like every other route."""
    original = next(r.endpoint for r in app.router.routes if getattr(r, "path", None) == "/health")

    async def health(request: Request) -> PlainTextResponse:
        resp = await original(request)
        return PlainTextResponse(resp.body.decode(), status_code=resp.status_code)

    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/health"]
    app.add_api_route("/health", health, methods=["GET"], response_class=PlainTextResponse)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_message(exc.errors())}, status_code=422)


async def _no_traceback(request: Request, exc: Exception) -> JSONResponse:
    ref = secrets.token_hex(4)
    log.error("unhandled error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": f"internal error {ref}; the server log has the details"}, status_code=500)


def preflight(settings: Settings) -> None:
    """Fail fast, in the parent, with one clear line, when the port is taken or the model cannot be found."""
    from model import registry

    ensure_port_free(settings.host, settings.port)

    registry.configure(settings)
    registry.resolve(settings.resolved_model_uri)


def first_run_moderator(settings: Settings) -> str | None:
    """On a local first run with no moderator account, make `admin` with a random password, shown once."""
    from model.etl.store import default_urls
    from service.auth import hash_password
    from service.records import Records, embedded

    # A shared database is a deployment: its replicas would race to make `admin`, each printing a password
    # into pod logs; operators make accounts there with `aidetect moderators add`.
    if settings.moderator_header or settings.host != "127.0.0.1" or not embedded(default_urls(settings)[0]):
        return None
    try:
        db = Records.open(settings)
    except Exception as e:  # the page is optional; detection must start without the database
        log.warning("records database unavailable at start: %s", e)
        return None
    try:
        if db.moderators():
            return None
        password = secrets.token_urlsafe(12)
        db.set_moderator("admin", hash_password(password))
        return password
    finally:
        db.close()


def run_server(settings: Settings) -> None:
    from service.metrics import use_multiprocess

    preflight(settings)
    use_multiprocess(settings.home / "prometheus" / str(settings.port))
    password = first_run_moderator(settings)
    server = build_server(settings)
    page = f"http://{settings.host}:{settings.port}/moderate"
    if password:
        print(f"moderator page: {page}  (user admin, password {password}; shown once)", file=sys.stderr, flush=True)
    else:
        print(f"moderator page: {page}", file=sys.stderr, flush=True)
    stop_children_on_sigterm()
    # One HTTP process whatever the worker count (LitServe starts one per worker by default): the rate
    # limiter and the key cache live in its memory, and one process answers far faster than the workers score.
    try:
        server.run(
            host=settings.host, port=settings.port, generate_client_file=False, log_level="warning", num_api_servers=1
        )
    finally:  # every answer given is recorded before the process goes (service/outbox.py)
        from service.api import LazyRecords, outbox_path
        from service.outbox import Outbox, flush_before_exit
        from service.review_store import review_objects

        # the store is opened only if something is left to park, inside the flush's own guard
        flush_before_exit(
            Outbox(outbox_path(settings)), LazyRecords(settings).apply_outbox, parking=lambda: review_objects(settings)
        )
