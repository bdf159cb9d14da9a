"""API keys and rate limits of the /v1/ routes, as one FastAPI dependency, so the OpenAPI document declares
both ways to send a key (securitySchemes) and the 401, 429 and 503 answers.

    router.post("/v1/detect", dependencies=[Depends(caller(state))])
    request.state.key_id, request.state.who          # what the route then knows about its caller

Policy (Settings.auth_required):
- True: every /v1/ request needs a valid, unrevoked key (Authorization: Bearer KEY or X-API-Key: KEY).
- False (the embedded local default): requests without a key are served, rate-limited per client
  address; a key that is sent must still be valid, so a revoked key is refused either way.
It runs before the route reads the body, so a refused caller's upload is never read. A key this process
has not seen while the database is unreadable is answered 503 with Retry-After, not 401: it may be valid.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.ratelimit import take_async
from service.state import KeysUnavailable

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer aid_...`")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key, the other way to send it")
MAKE_ONE = "(an operator makes one with `aidetect keys create NAME`)"
KEYS_RETRY_AFTER_S = 5


def caller(state):
    """The dependency: who is calling (key or client address), checked against the keys and the rate limit."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        header_key: Annotated[str | None, Security(api_key)],
    ) -> str:
        settings = state.settings
        secret = (credentials.credentials.strip() if credentials else "") or (header_key or "").strip() or None
        key_id, rate = None, settings.rate_limit_per_minute
        if secret is not None:
            keys = state.keys
            try:
                decided, row = keys.from_memory(secret)
                if not decided:
                    row = await keys.check(secret)
            except KeysUnavailable:
                raise HTTPException(
                    503,
                    "cannot check this API key: the records database is unavailable; retry shortly",
                    {"Retry-After": str(KEYS_RETRY_AFTER_S)},
                ) from None
            if row is None:
                raise HTTPException(401, "API key is invalid or revoked", {"WWW-Authenticate": "Bearer"})
            key_id, rate = row.id, row.rate_per_minute or rate
            who = f"key:{row.id}"
        elif settings.auth_required:
            raise HTTPException(
                401,
                f"this endpoint needs an API key: send 'Authorization: Bearer KEY' {MAKE_ONE}",
                {"WWW-Authenticate": "Bearer"},
            )
        else:
            who = f"client:{request.client.host if request.client else '?'}"
        wait = await take_async(state.limiter, who, rate)  # the shared limiter's database: in a thread, bounded
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            raise HTTPException(
                429, f"rate limit of {rate} requests a minute reached; retry in {retry} s", {"Retry-After": retry}
            )
        request.state.key_id, request.state.who = key_id, who
        return who

    return check
