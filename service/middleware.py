"""ASGI middleware of the detector: API keys and rate limits on /v1/, request metrics everywhere.

Auth policy (Settings.auth_required):
- True: every /v1/ request needs a valid, unrevoked key (Authorization: Bearer KEY or X-API-Key: KEY).
- False (the embedded local default): requests without a key are served, rate-limited per client
  address; a key that is sent must still be valid, so a revoked key is refused either way.
"""

from __future__ import annotations

import asyncio
import math
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from service.limits import send_json

PROTECTED = "/v1/"
# Bounded label values: the routes we serve, everything else is "other".
ENDPOINTS = {
    "/v1/detect": "detect",
    "/v1/detect/batch": "detect_batch",
    "/v1/feedback": "feedback",
    "/health": "health",
    "/livez": "livez",
    "/metrics": "metrics",
}




def presented_key(headers: dict[bytes, bytes]) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


class AuthMiddleware:
    def __init__(self, app: ASGIApp, state=None):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            return await self.app(scope, receive, send)
        st, settings = self.state, self.state.settings
        secret = presented_key(dict(scope["headers"]))
        key_id, rate = None, settings.rate_limit_per_minute
        if secret is not None:
            row = st.keys.check(secret)
            if row is None:
                return await send_json(send, 401, {"detail": "API key is invalid or revoked"})
            key_id, rate = row.id, row.rate_per_minute or rate
            who = f"key:{row.id}"
        elif settings.auth_required:
            return await send_json(
                send,
                401,
                {"detail": "this endpoint needs an API key: send 'Authorization: Bearer KEY' "
                 "(an operator makes one with `aidetect keys create NAME`)"},
                [(b"www-authenticate", b"Bearer")],
            )
        else:
            who = f"client:{(scope.get('client') or ('?',))[0]}"
        take = st.limiter.take
        # The shared limiter asks the database; the event loop must not wait on it.
        wait = await asyncio.to_thread(take, who, rate) if getattr(st.limiter, "blocking", False) else take(who, rate)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            return await send_json(
                send,
                429,
                {"detail": f"rate limit of {rate} requests a minute reached; retry in {retry} s"},
                [(b"retry-after", retry.encode())],
            )
        scope.setdefault("state", {})["key_id"] = key_id
        scope["state"]["who"] = who
        await self.app(scope, receive, send)


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
