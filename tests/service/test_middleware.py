"""Auth and rate limits (the routes' dependency, service/security.py) and request metrics (middleware),
in-process over httpx's ASGI transport."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from aidetect.settings import Settings
from service.auth import RateLimiter, hash_key, new_key
from service.middleware import MetricsMiddleware
from service.records import KeyRow
from service.security import caller
from service.state import KeyCache

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class FakeState:
    def __init__(self, settings, keys):
        self.settings = settings
        self.keys = KeyCache(keys if callable(keys) else lambda: keys, ttl=0)
        self.limiter = RateLimiter()


def make_app(settings: Settings, keys):
    """`keys`: the rows the database holds, or a function that reads them (and may raise, as a database down)."""
    app = FastAPI()
    guard = Depends(caller(FakeState(settings, keys)))

    @app.post("/v1/detect", dependencies=[guard])
    async def echo(request: Request):
        return {"key_id": request.state.key_id, "who": request.state.who}

    @app.get("/other")
    async def other():
        return {}

    @app.get("/v1/boom", dependencies=[guard])
    async def boom():
        raise RuntimeError("secret internals")

    app.add_middleware(MetricsMiddleware)
    return app


@pytest.fixture
def key():
    key_id, secret = new_key()
    return secret, KeyRow(key_id, "bot", hash_key(secret), 3, False)


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


async def test_required_auth_refuses_missing_wrong_and_revoked_keys(key, tmp_path):
    secret, row = key
    revoked_id, revoked_secret = new_key()
    rows = [row, KeyRow(revoked_id, "old", hash_key(revoked_secret), None, True)]
    app = make_app(Settings(home=tmp_path, auth_required=True), rows)
    async with client(app) as c:
        r = await c.post("/v1/detect")
        assert r.status_code == 401 and "API key" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
        assert (await c.post("/v1/detect", headers={"Authorization": "Bearer aid_nope"})).status_code == 401
        assert (await c.post("/v1/detect", headers={"X-API-Key": revoked_secret})).status_code == 401
        ok = await c.post("/v1/detect", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json() == {"key_id": row.id, "who": f"key:{row.id}"}
        assert (await c.get("/other")).status_code != 401  # probes and the page are not /v1/


async def test_a_key_that_cannot_be_checked_while_the_database_is_down_is_503_not_401(key, tmp_path):
    secret, row = key
    revoked_id, revoked_secret = new_key()
    db = {"up": True, "rows": [row, KeyRow(revoked_id, "old", hash_key(revoked_secret), None, True)]}

    def read():
        if not db["up"]:
            raise ConnectionError("connection refused")
        return db["rows"]

    app = make_app(Settings(home=tmp_path, auth_required=True, rate_limit_per_minute=1000), read)
    unseen_id, unseen_secret = new_key()
    async with client(app) as c:
        assert (await c.post("/v1/detect", headers={"X-API-Key": secret})).status_code == 200
        db["up"] = False
        # The last copy still decides for the keys it holds: valid, revoked, or the wrong secret.
        assert (await c.post("/v1/detect", headers={"X-API-Key": secret})).status_code == 200
        assert (await c.post("/v1/detect", headers={"X-API-Key": revoked_secret})).status_code == 401
        assert (await c.post("/v1/detect", headers={"X-API-Key": secret[:-2] + "zz"})).status_code == 401
        assert (await c.post("/v1/detect")).status_code == 401  # no key at all is never a database question
        # A key it has never seen may be one made just before the outage: retry, not "invalid".
        r = await c.post("/v1/detect", headers={"X-API-Key": unseen_secret})
        assert r.status_code == 503 and "unavailable" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
        db["up"] = True
        assert (await c.post("/v1/detect", headers={"X-API-Key": unseen_secret})).status_code == 401
        db["rows"] = [*db["rows"], KeyRow(unseen_id, "new", hash_key(unseen_secret), None, False)]
        assert (await c.post("/v1/detect", headers={"X-API-Key": unseen_secret})).status_code == 200


async def test_open_mode_serves_without_key_but_still_checks_a_sent_one(key, tmp_path):
    app = make_app(Settings(home=tmp_path, auth_required=False), [key[1]])
    async with client(app) as c:
        r = await c.post("/v1/detect")
        assert r.status_code == 200 and r.json()["key_id"] is None and r.json()["who"].startswith("client:")
        assert (await c.post("/v1/detect", headers={"X-API-Key": "aid_000000000000_x"})).status_code == 401


async def test_per_key_rate_limit_answers_429_with_retry_after(key, tmp_path):
    secret, row = key  # 3 a minute
    app = make_app(Settings(home=tmp_path, auth_required=True, rate_limit_per_minute=1000), [row])
    async with client(app) as c:
        codes = [(await c.post("/v1/detect", headers={"X-API-Key": secret})).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = await c.post("/v1/detect", headers={"X-API-Key": secret})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20 and "rate limit" in r.json()["detail"]


async def test_metrics_count_requests_by_endpoint_and_status(key, tmp_path):
    from service.metrics import metrics

    m = metrics()
    before = m.requests.labels("detect", "401")._value.get()
    app = make_app(Settings(home=tmp_path, auth_required=True), [key[1]])
    async with client(app) as c:
        await c.post("/v1/detect")
        await c.get("/v1/boom", headers={"X-API-Key": key[0]})
    assert m.requests.labels("detect", "401")._value.get() == before + 1
    assert m.requests.labels("other", "500")._value.get() >= 1


def test_the_openapi_document_declares_both_key_schemes_and_the_refusals(tmp_path):
    doc = make_app(Settings(home=tmp_path), []).openapi()
    schemes = doc["components"]["securitySchemes"]
    assert (schemes["HTTPBearer"]["type"], schemes["HTTPBearer"]["scheme"]) == ("http", "bearer")
    assert schemes["APIKeyHeader"]["in"] == "header" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    assert doc["paths"]["/v1/detect"]["post"]["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert "security" not in doc["paths"]["/other"]["get"]
