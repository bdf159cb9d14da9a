"""The raw-body middleware, in process through httpx's ASGI transport."""

import io
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.body import ImageBodyMiddleware


async def echo(request: Request):
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        f = form["image"]
        data = await f.read()
        return JSONResponse({"kind": "form", "n": len(data), "type": f.content_type, "head": data[:4].hex()})
    return JSONResponse({"kind": "json", "body": await request.json()})


def client(max_bytes=1000):
    app = Starlette(routes=[Route("/v1/detect", echo, methods=["POST"]), Route("/other", echo, methods=["POST"])])
    wrapped = ImageBodyMiddleware(app, paths=("/v1/detect",), max_bytes=max_bytes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t")


@pytest.mark.anyio
@pytest.mark.parametrize("ctype", ["image/jpeg", "application/octet-stream", "application/x-www-form-urlencoded", None])
async def test_raw_body_becomes_multipart_image(ctype):
    headers = {"content-type": ctype} if ctype else {}
    async with client() as c:
        r = await c.post("/v1/detect", content=b"\xff\xd8\xff\xe0" + b"x" * 100, headers=headers)
    assert r.status_code == 200
    assert r.json()["kind"] == "form" and r.json()["n"] == 104 and r.json()["head"] == "ffd8ffe0"


@pytest.mark.anyio
async def test_multipart_and_json_pass_through():
    async with client() as c:
        r = await c.post("/v1/detect", files={"image": ("a.png", io.BytesIO(b"PNGDATA"), "image/png")})
        assert r.json() == {"kind": "form", "n": 7, "type": "image/png", "head": b"PNGD".hex()}
        r = await c.post("/v1/detect", json={"image_b64": "AAAA"})
        assert r.json() == {"kind": "json", "body": {"image_b64": "AAAA"}}


@pytest.mark.anyio
async def test_oversized_body_is_413_with_message():
    async with client(max_bytes=1000) as c:
        r = await c.post("/v1/detect", content=b"x" * 5000, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


@pytest.mark.anyio
async def test_oversized_stream_without_length_is_413():
    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with client(max_bytes=1000) as c:
        r = await c.post("/v1/detect", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413


@pytest.mark.anyio
async def test_invalid_json_is_400_not_500():
    async with client() as c:
        r = await c.post("/v1/detect", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


@pytest.mark.anyio
async def test_other_paths_untouched():
    async with client() as c:
        r = await c.post("/other", content=json.dumps({"a": 1}), headers={"content-type": "application/json"})
    assert r.json() == {"kind": "json", "body": {"a": 1}}


@pytest.fixture
def anyio_backend():
    return "asyncio"
