"""ASGI middleware that lets POST /v1/detect take a raw image body as well as multipart.

LitServe parses only JSON and form bodies, so a raw upload (`Content-Type: image/jpeg`,
`application/octet-stream`, or none) is rewrapped here as multipart with one field, `image`.
It also answers, before anything reaches the inference worker:
- 413 when the body is over the byte limit (from Content-Length, or while streaming it in),
- 400 for a JSON body that does not parse (LitServe would answer 500).
A multipart body is not buffered here: it streams through to the form parser, counted on the way
(service/limits.py): buffering and joining it here held two more copies of every batch.
"""

from __future__ import annotations

import json
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

from service.limits import stream_limited

# Only multipart carries files; an urlencoded "form" is what `curl --data-binary` labels a raw upload.
FORM_TYPES = ("multipart/form-data",)
# Multipart framing and a base64 JSON body are larger than the image they carry.
ENVELOPE_SLACK = 1.4


async def _json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def multipart_wrap(data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "aidetect" + secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="upload"\r\n'
        f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def body_limit(max_bytes: int, content_type: str) -> int:
    """The most body bytes a route whose images may be `max_bytes` accepts for this content type."""
    wrapped = content_type in FORM_TYPES or content_type == "application/json"
    return int(max_bytes * ENVELOPE_SLACK) + 4096 if wrapped else max_bytes


class ImageBodyMiddleware:
    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = ("/v1/detect",), max_bytes: int = 20 * 2**20):
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        is_form = ctype in FORM_TYPES
        limit = body_limit(self.max_bytes, ctype)
        if is_form:
            message = f"body is over the limit of {self.max_bytes / 2**20:.1f} MiB"
            return await stream_limited(self.app, scope, receive, send, limit, message)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _json_error(
                send, 413, f"body is {int(declared) / 2**20:.1f} MiB; the limit is {self.max_bytes / 2**20:.1f} MiB"
            )
        # Read the body ourselves, stopping as soon as it passes the limit.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _json_error(send, 413, f"body is over the limit of {self.max_bytes / 2**20:.1f} MiB")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if ctype == "application/json":
            try:
                json.loads(body)
            except ValueError:
                return await _json_error(
                    send, 400, 'body is not valid JSON; send {"image_b64": "..."} or the raw image'
                )
        else:
            body, new_type = multipart_wrap(body, ctype)
            hdrs = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
            hdrs += [(b"content-type", new_type.encode()), (b"content-length", str(len(body)).encode())]
            scope = dict(scope, headers=hdrs)

        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
