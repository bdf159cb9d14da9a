"""Reading image uploads once, counting their bytes as they stream in.

    data = await read_image(request, max_bytes)                     # POST /v1/detect
    blobs = await read_images(request, max_bytes, max_images)       # POST /v1/detect/batch

/v1/detect takes the image as the raw body (`Content-Type: image/jpeg`, `application/octet-stream`, or
anything else that is not a form or JSON), as multipart field `image`, or as JSON {"image_b64": ...}. Each
is read here, once, straight into the bytes the worker gets: no rewrapping as multipart, no second parse.
A body over its limit is refused with 413 from its Content-Length before a byte is read, or as soon as
the bytes streamed so far pass the limit; nothing is buffered beyond one chunk over it. An upload that
stops sending for Settings.upload_idle_timeout seconds, or is not whole after Settings.upload_timeout, is
refused with 408: uvicorn has no timeout of its own while a body streams in, so a stalled or trickling
client would hold its connection, and its share of the in-flight upload budget (service/limits.py), for as
long as it stayed connected. Every refusal is an ImageError (a 4xx with a message), which the routes
answer as JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from model.preprocess import ImageError

FORM_TYPES = ("multipart/form-data",)
# Multipart framing and a base64 JSON body are larger than the image they carry.
ENVELOPE_SLACK = 1.4
# Text fields beside the image are ignored, as the schema allows. The body limit already bounds their
# bytes; this bounds their count (Starlette's own default).
MAX_FIELDS = 1000


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def body_limit(max_bytes: int, content_type: str) -> int:
    """The most body bytes a route whose images may be `max_bytes` accepts for this content type."""
    wrapped = content_type in FORM_TYPES or content_type == "application/json"
    return int(max_bytes * ENVELOPE_SLACK) + 4096 if wrapped else max_bytes


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class UploadTimeouts:
    """How long an upload may take: `idle` seconds without a byte, `total` seconds from the first read to the
    last byte (a client trickling a byte now and then never goes idle). 0 leaves either unbounded."""

    idle: float = 0.0
    total: float = 0.0


NO_TIMEOUTS = UploadTimeouts()


async def limited_stream(
    request: Request, limit: int, max_bytes: int, timeouts: UploadTimeouts = NO_TIMEOUTS
) -> AsyncIterator[bytes]:
    """The body's chunks; ImageError 413 as soon as they (or the declared length) pass `limit`, 408 when an
    upload goes idle or runs past its total time (`timeouts`)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ImageError(f"body is {_mib(int(declared))}; the limit is {_mib(max_bytes)}", 413)
    size = 0
    chunks = aiter(request.stream())
    loop = asyncio.get_running_loop()
    end = loop.time() + timeouts.total if timeouts.total else None
    while True:
        wait, by_total = timeouts.idle or None, False
        if end is not None and (wait is None or end - loop.time() < wait):
            wait, by_total = end - loop.time(), True
        try:
            async with asyncio.timeout(wait):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if by_total:
                raise ImageError(f"the upload took over {timeouts.total:g} s", 408) from None
            raise ImageError(f"the upload stalled: no bytes for {timeouts.idle:g} s", 408) from None
        size += len(chunk)
        if size > limit:
            raise ImageError(f"body is over the limit of {_mib(max_bytes)}", 413)
        yield chunk


async def read_body(
    request: Request, limit: int, max_bytes: int, timeouts: UploadTimeouts = NO_TIMEOUTS
) -> bytes:
    return b"".join([chunk async for chunk in limited_stream(request, limit, max_bytes, timeouts)])


async def read_form(
    request: Request, max_bytes: int, max_files: int, usage: str, timeouts: UploadTimeouts = NO_TIMEOUTS
) -> FormData:
    """A multipart form, parsed as it streams in; `usage` says what a malformed one should have been."""
    parser = MultiPartParser(
        request.headers,
        limited_stream(request, body_limit(max_bytes, FORM_TYPES[0]), max_bytes, timeouts),
        max_files=max_files,
        max_fields=MAX_FIELDS,
    )
    try:
        return await parser.parse()
    except MultiPartException as e:
        raise ImageError(f"{usage} ({e.message})", 400) from None


def image_of_json(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        raise ImageError('body is not valid JSON; send {"image_b64": "..."} or the raw image', 400) from None
    if not isinstance(payload, dict):
        raise ImageError('JSON body must be an object: {"image_b64": "..."}', 400)
    b64 = payload.get("image_b64")
    if "url" in payload and b64 is None:
        raise ImageError("URL input is not offered: the service never fetches URLs; upload the bytes", 400)
    if not isinstance(b64, str):
        raise ImageError("JSON body needs a string field 'image_b64'", 400)
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("'image_b64' is not valid base64", 400) from None


async def read_image(request: Request, max_bytes: int, timeouts: UploadTimeouts = NO_TIMEOUTS) -> bytes:
    """The one image of a /v1/detect request, or ImageError."""
    ctype = media_type(request)
    if ctype in FORM_TYPES:
        usage = "the body is not a valid multipart form; send field 'image'"
        form = await read_form(request, max_bytes, 2, usage, timeouts)
        try:
            item = form.get("image")
            if item is None:
                raise ImageError("multipart body has no field 'image'", 400)
            if not isinstance(item, UploadFile):
                raise ImageError("field 'image' must be a file upload, not text", 400)
            data = await item.read()
        finally:
            await form.close()
    elif ctype == "application/json":
        data = image_of_json(await read_body(request, body_limit(max_bytes, ctype), max_bytes, timeouts))
    else:
        data = await read_body(request, max_bytes, max_bytes, timeouts)
    if len(data) > max_bytes:  # base64 and multipart framing were allowed for; the image itself was not
        raise ImageError(f"image is {_mib(len(data))}; the limit is {_mib(max_bytes)}", 413)
    return data


async def read_images(
    request: Request, max_bytes: int, max_images: int, timeouts: UploadTimeouts = NO_TIMEOUTS
) -> list[bytes]:
    """The images of a /v1/detect/batch request (multipart field `images`, repeated), or ImageError.
    An image over `max_bytes` is returned as read: the route answers it alone, its neighbours still count."""
    usage = f"send a multipart form with up to {max_images} files in field 'images'"
    if media_type(request) not in FORM_TYPES:
        raise ImageError(usage, 400)
    form = await read_form(request, max_bytes * max_images, max_images + 1, usage, timeouts)
    try:
        files = [f for name in ("images", "image[]") for f in form.getlist(name)]
        if not files:
            raise ImageError("multipart body has no files in field 'images'", 400)
        if len(files) > max_images:
            raise ImageError(f"{len(files)} images in one request; the limit is {max_images}", 413)
        if any(not isinstance(f, UploadFile) for f in files):
            raise ImageError("field 'images' must hold file uploads, not text", 400)
        return [await f.read() for f in files]
    finally:
        await form.close()
