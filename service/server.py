"""Build and run the LitServe server for the detector.

aidetect serve --port 8000
curl -s -X POST --data-binary @cat.jpg -H 'Content-Type: image/jpeg' localhost:8000/v1/detect
"""

from __future__ import annotations

import litserve as ls

from aidetect.settings import Settings
from service.api import DetectorAPI
from service.body import ImageBodyMiddleware


def build_server(settings: Settings) -> ls.LitServer:
    api = DetectorAPI(settings)
    return ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=settings.workers_per_device,
        middlewares=[(ImageBodyMiddleware, {"paths": ("/v1/detect",), "max_bytes": settings.max_bytes})],
        model_metadata={"service": "aidetect", "model_uri": settings.resolved_model_uri},
        timeout=60,
    )


def preflight(settings: Settings) -> None:
    """Fail fast, in the parent, with one clear line, when the model cannot be found."""
    from model import registry

    registry.configure(settings)
    registry.resolve(settings.resolved_model_uri)


def run_server(settings: Settings) -> None:
    preflight(settings)
    server = build_server(settings)
    server.run(host=settings.host, port=settings.port, generate_client_file=False, log_level="warning")
