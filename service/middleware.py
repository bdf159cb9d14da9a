"""ASGI middleware of the detector: request metrics on every route, and the background work they start.

(API keys and rate limits are a FastAPI dependency of the /v1/ routes: service/security.py.)
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Receive, Scope, Send

# Bounded label values: the routes we serve, everything else is "other".
ENDPOINTS = {
    "/v1/detect": "detect",
    "/v1/detect/batch": "detect_batch",
    "/v1/feedback": "feedback",
    "/health": "health",
    "/livez": "livez",
    "/metrics": "metrics",
}


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, state=None):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.state is not None:
            self.state.ensure_background()
        from service.metrics import metrics

        endpoint = ENDPOINTS.get(scope["path"], "other")
        status = 500  # what the client sees when the app dies before starting a response
        t0 = time.perf_counter()

        async def wrapped(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            m = metrics()
            m.requests.labels(endpoint, str(status)).inc()
            m.latency.labels(endpoint).observe(time.perf_counter() - t0)
