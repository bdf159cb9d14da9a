"""Reading image uploads once (service/body.py), in process through httpx's ASGI transport."""

import asyncio
import base64
import io

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from model.preprocess import ImageError
from service.body import NO_TIMEOUTS, UploadTimeouts, read_image, read_images

pytestmark = pytest.mark.anyio

FORM = "multipart/form-data"
DATA = b"\xff\xd8\xff\xe0" + b"x" * 100


async def one(request: Request):
    try:
        data = await read_image(request, request.app.state.max_bytes, request.app.state.timeouts)
    except ImageError as e:
        return JSONResponse({"detail": e.message}, status_code=e.status)
    return JSONResponse({"n": len(data), "head": data[:4].hex()})


async def many(request: Request):
    try:
        blobs = await read_images(request, request.app.state.max_bytes, 3, request.app.state.timeouts)
    except ImageError as e:
        return JSONResponse({"detail": e.message}, status_code=e.status)
    return JSONResponse({"sizes": [len(b) for b in blobs]})


def client(max_bytes=1000, timeouts=NO_TIMEOUTS):
    app = Starlette(routes=[Route("/one", one, methods=["POST"]), Route("/many", many, methods=["POST"])])
    app.state.max_bytes = max_bytes
    app.state.timeouts = timeouts
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("ctype", ["image/jpeg", "application/octet-stream", "application/x-www-form-urlencoded", None])
async def test_a_raw_body_is_the_image(ctype):
    headers = {"content-type": ctype} if ctype else {}
    async with client() as c:
        r = await c.post("/one", content=DATA, headers=headers)
    assert r.status_code == 200 and r.json() == {"n": 104, "head": "ffd8ffe0"}


async def test_multipart_and_json_give_the_same_bytes():
    async with client() as c:
        r = await c.post("/one", files={"image": ("a.jpg", io.BytesIO(DATA), "image/jpeg")})
        assert r.json() == {"n": 104, "head": "ffd8ffe0"}
        r = await c.post("/one", json={"image_b64": base64.b64encode(DATA).decode()})
        assert r.json() == {"n": 104, "head": "ffd8ffe0"}


@pytest.mark.parametrize(
    "kwargs,status,words",
    [
        ({"files": {"other": ("a", b"x")}}, 400, "no field 'image'"),
        ({"data": {"image": "text"}, "files": {"x": ("a", b"y")}}, 400, "file upload"),
        ({"json": {"image": "x"}}, 400, "image_b64"),
        ({"json": {"url": "http://x"}}, 400, "never fetches URLs"),
        ({"json": {"image_b64": "***"}}, 400, "base64"),
        ({"json": ["list"]}, 400, "object"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": f"{FORM}; boundary=x"}}, 400, "multipart"),
    ],
)
async def test_malformed_bodies_are_4xx_with_a_message(kwargs, status, words):
    async with client() as c:
        r = await c.post("/one", **kwargs)
    assert r.status_code == status and words in r.json()["detail"]


async def test_oversized_bodies_are_413_declared_or_streamed():
    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with client(max_bytes=1000) as c:
        r = await c.post("/one", content=b"x" * 5000, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "the limit is" in r.json()["detail"]
        r = await c.post("/one", content=chunks(), headers={"content-type": "image/png"})  # no Content-Length
        assert r.status_code == 413 and "over the limit" in r.json()["detail"]
        r = await c.post("/one", files={"image": ("a", b"x" * 5000)})
        assert r.status_code == 413
        # base64 is allowed its envelope, the image inside it is not
        r = await c.post("/one", json={"image_b64": base64.b64encode(b"x" * 1100).decode()})
        assert r.status_code == 413 and "image is" in r.json()["detail"]


@pytest.mark.parametrize(
    "path,ctype,first",
    [
        ("/one", "image/jpeg", DATA[:50]),
        ("/one", "application/json", b'{"image_b64": "'),
        ("/one", f"{FORM}; boundary=x", b'--x\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n'),
        ("/many", f"{FORM}; boundary=x", b'--x\r\nContent-Disposition: form-data; name="images"; filename="a"\r\n\r\n'),
    ],
)
async def test_an_upload_that_stops_sending_is_408_after_the_idle_timeout(path, ctype, first):
    sent = []

    async def stalls():
        yield first
        sent.append("first")
        await asyncio.sleep(30)  # a client that went quiet with its body half sent
        yield b"never"

    async with client(timeouts=UploadTimeouts(idle=0.2)) as c:
        r = await asyncio.wait_for(c.post(path, content=stalls(), headers={"content-type": ctype}), 10)
    assert sent == ["first"]
    assert r.status_code == 408 and "stalled: no bytes for 0.2 s" in r.json()["detail"]


async def test_an_upload_that_trickles_is_408_after_its_total_time_though_it_never_goes_idle():
    async def trickles():
        for _ in range(1000):
            yield b"\xff"  # a byte every 50 ms: never idle for the 0.5 s idle bound
            await asyncio.sleep(0.05)

    async with client(max_bytes=10_000, timeouts=UploadTimeouts(idle=0.5, total=0.4)) as c:
        r = await asyncio.wait_for(c.post("/one", content=trickles(), headers={"content-type": "image/jpeg"}), 10)
    assert r.status_code == 408 and "took over 0.4 s" in r.json()["detail"]


async def test_without_an_idle_timeout_a_slow_upload_is_read_whole():
    async def slow():
        for i in range(0, len(DATA), 26):
            await asyncio.sleep(0.05)
            yield DATA[i : i + 26]

    async with client() as c:
        r = await c.post("/one", content=slow(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json() == {"n": 104, "head": "ffd8ffe0"}
    async with client(timeouts=UploadTimeouts(idle=0.5, total=5)) as c:  # within both bounds: read whole too
        r = await c.post("/one", content=slow(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["n"] == 104


async def test_a_batch_reads_every_file_of_field_images():
    async with client(max_bytes=1000) as c:
        files = [("images", (f"{i}.png", b"x" * (10 + i))) for i in range(3)]
        assert (await c.post("/many", files=files)).json() == {"sizes": [10, 11, 12]}
        r = await c.post("/many", files=[("other", ("a", b"x"))])
        assert r.status_code == 400 and "field 'images'" in r.json()["detail"]
        r = await c.post("/many", files=[("images", (f"{i}", b"x")) for i in range(4)])
        assert r.status_code == 413 and "the limit is 3" in r.json()["detail"]
        r = await c.post("/many", json={"images": []})
        assert r.status_code == 400 and "multipart" in r.json()["detail"]


@pytest.fixture
def anyio_backend():
    return "asyncio"
