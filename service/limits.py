"""Request-size limits of the detector, and the memory the largest allowed request can cost.

    BodyLimitMiddleware(app, max_bytes=SMALL_BODY_BYTES, skip=("/v1/detect", "/v1/detect/batch"))
    InflightBytesMiddleware(app, budget=batch_limit, limits={"/v1/detect": one, "/v1/detect/batch": batch_limit})
    budget = memory_budget(max_bytes=8 << 20, max_pixels=16_000_000, images_per_request=8,
                           max_batch_size=4, workers=1, pod_limit_mib=2048)
    budget["fits"]        # worst case <= 70% of the pod's memory limit
    print(budget_markdown(budget))   # the arithmetic docs/api.md shows

Every POST that is not an image upload (feedback, moderator sign-in and labels) is small JSON or a
form, so one limit (SMALL_BODY_BYTES) covers them all; the image routes have their own
(service/body.py). Bodies are counted while they stream in, so an oversized one costs at most one
chunk beyond the limit, whatever Content-Length claims. Across requests, the image bytes in flight are
capped at one worst-case batch (InflightBytesMiddleware), so the memory model below holds however many
clients upload at once.
"""

from __future__ import annotations

import json
import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Feedback: a 36-char id, a label and a note of at most 2000 characters, each up to 6 bytes as a JSON
# \\u escape; sign-in: a 200-char name and a 1000-char password, each up to 12 bytes urlencoded. 16 KiB
# holds both with room for the framing.
SMALL_BODY_BYTES = 16 * 1024

# --- memory: measured by bench/serve_memory.py (bench/results/serve_memory.json), rounded up ---
# The whole process tree of `aidetect serve` with one inference worker (parent, HTTP process, LitServe's
# queue manager, the worker), idle after a warm-up: PSS, so shared pages count once, as the cgroup does.
# Measured 790, 902, 839, 847 and 812 MiB (idle VM, 2026-12-06) in five runs; allocator state after the first
# requests makes it vary.
IDLE_TREE_MIB = 950
# What each further inference worker adds (a fresh process: torch, MLflow, the model).
WORKER_MIB = 560
# Peak growth while decoding one image, per pixel: an RGBA PNG is decoded (4 B/px), transposed per
# EXIF (a copy) and flattened onto white (RGB + alpha): measured 8.2 B/px. A 12 MP HEIC, which libheif
# decodes and turns itself before Pillow copies it, measured 8.6 B/px; a JPEG of it 8.2.
DECODE_BYTES_PER_PX = 9
# Copies of each image of a batch request alive at once outside the worker: the bytes read from the
# form (HTTP process); the request queue's pickle, held by its feeder thread until the pipe takes it (it
# was a Manager process holding the pickle and the object it unpickled, two, before the pipe queues of
# service/litserve_compat.py; the count is kept); one more in flight (uploaded to the Qwen stage).
HTTP_COPIES = 4
# Copies in the inference worker, per image of a forward batch: the pickled message and the bytes it
# unpickles to, base64 for the outbox (4/3), the outbox row's JSON (4/3) and SQLite's copy of it (4/3),
# plus allocator slack: with HTTP_COPIES, what makes this model cover the peak bench/serve_memory.py
# measured (596 MiB of growth for 8 images of 7.8 MiB and 16 MP). Kept bytes now go from the worker to the
# object store and the outbox carries records only, so the three outbox copies are gone: reruns on
# 2026-12-06 measured 565 MiB of growth (1404 MiB peak), then 479 and 474 MiB (1326, 1286) with the pipe queues, so
# this bound is conservative.
WORKER_COPIES = 7
HEADROOM = 0.30  # the worst case may use at most 70% of the pod's memory limit


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def json_error(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send_json(send, status, {"detail": message}, headers)


def declared_length(scope: Scope) -> int | None:
    for k, v in scope["headers"]:
        if k == b"content-length":
            return int(v) if v.isdigit() else None
    return None


async def stream_limited(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int, too_big: str) -> None:
    """Run `app` with its body counted as it streams in: past `limit` bytes the app sees a disconnect,
    whatever it answers is dropped, and the client gets 413 with `too_big`. Nothing is buffered here."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        return await json_error(send, 413, too_big)
    size, over, started = 0, False, False

    async def counted() -> Message:
        nonlocal size, over
        if over:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                over = True
                return {"type": "http.disconnect"}
        return message

    async def guarded(message: Message) -> None:
        nonlocal started
        if over and not started:
            return  # the app's answer to a cut-off body; ours follows
        started = True
        await send(message)

    try:
        await app(scope, counted, guarded)
    except Exception:
        if not over:
            raise
    if over and not started:
        await json_error(send, 413, too_big)


class BodyLimitMiddleware:
    """413 for any request body over `max_bytes`, except on the `skip` paths (the image routes)."""

    def __init__(self, app: ASGIApp, max_bytes: int = SMALL_BODY_BYTES, skip: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.skip = app, max_bytes, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"] in self.skip:
            return await self.app(scope, receive, send)
        message = f"body is over the limit of {self.max_bytes // 1024} KiB for {scope['path']}"
        await stream_limited(self.app, scope, receive, send, self.max_bytes, message)


class InflightBytesMiddleware:
    """At most `budget` bytes of image uploads in the HTTP process at once, over all image routes: what
    makes the memory model hold under concurrency, not only for one request. Each request reserves its
    Content-Length (its route's whole limit when it sends none) until its answer is sent; one that would
    pass the budget while others are in flight gets 503 with Retry-After. A request alone is never
    refused here (its own route limit bounds it)."""

    def __init__(self, app: ASGIApp, budget: int, limits: dict[str, int]):
        self.app, self.budget, self.limits = app, budget, limits
        self.inflight = 0  # one HTTP process, one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.limits:
            return await self.app(scope, receive, send)
        declared = declared_length(scope)
        need = min(declared, self.limits[scope["path"]]) if declared is not None else self.limits[scope["path"]]
        if self.inflight and self.inflight + need > self.budget:
            return await json_error(
                send, 503, "the server is busy with other large uploads; retry in a second", [(b"retry-after", b"1")]
            )
        self.inflight += need
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= need


def memory_budget(
    *,
    max_bytes: int,
    max_pixels: int,
    images_per_request: int,
    max_batch_size: int,
    workers: int,
    pod_limit_mib: float,
) -> dict:
    """The worst case of one batch request at the limits, term by term, against the pod's memory limit."""
    mib = 2**20
    terms = {
        "idle": IDLE_TREE_MIB + (workers - 1) * WORKER_MIB,
        "batch images queued outside the workers": images_per_request * max_bytes * HTTP_COPIES / mib,
        "forward batches in the workers": workers
        * min(max_batch_size, images_per_request)
        * max_bytes
        * WORKER_COPIES
        / mib,
        "decoding, one image per worker": workers * max_pixels * DECODE_BYTES_PER_PX / mib,
    }
    total = sum(terms.values())
    allowed = pod_limit_mib * (1 - HEADROOM)
    return {
        "inputs": {
            "max_bytes": max_bytes,
            "max_pixels": max_pixels,
            "images_per_request": images_per_request,
            "max_batch_size": max_batch_size,
            "workers": workers,
            "pod_limit_mib": pod_limit_mib,
        },
        "terms_mib": {k: math.ceil(v) for k, v in terms.items()},
        "total_mib": math.ceil(total),
        "allowed_mib": math.floor(allowed),
        "fits": total <= allowed,
    }


def budget_markdown(b: dict) -> str:
    """The arithmetic as docs/api.md shows it (tests/gitops checks the two agree)."""
    i = b["inputs"]
    mb, px = i["max_bytes"] / 2**20, i["max_pixels"] / 1e6
    per_worker = min(i["max_batch_size"], i["images_per_request"])
    n, w = i["images_per_request"], i["workers"]
    formulas = {
        "idle": f"{IDLE_TREE_MIB} + ({w} - 1) x {WORKER_MIB}",
        "batch images queued outside the workers": f"{n} images x {mb:g} MiB x {HTTP_COPIES} copies",
        "forward batches in the workers": f"{w} x {per_worker} images x {mb:g} MiB x {WORKER_COPIES} copies",
        "decoding, one image per worker": f"{w} x {px:g} MP x {DECODE_BYTES_PER_PX} B/px",
    }
    rows = ["| term | arithmetic | MiB |", "|---|---|---:|"]
    rows += [f"| {k} | {formulas[k]} | {v} |" for k, v in b["terms_mib"].items()]
    rows.append(f"| **worst case** | | **{b['total_mib']}** |")
    rows.append(
        f"| **allowed** | {1 - HEADROOM:.0%} of the pod's {i['pod_limit_mib']:g} MiB limit | **{b['allowed_mib']}** |"
    )
    return "\n".join(rows)
