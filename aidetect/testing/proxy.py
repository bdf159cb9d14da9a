"""A small round-robin HTTP proxy on loopback, standing in for the Ingress and Service in front of replicas.

    python -m aidetect.testing.proxy --port 9000 http://127.0.0.1:8001 http://127.0.0.1:8002
    python -m aidetect.testing.proxy --port 9000 --retry-from rendered.yaml URL1 URL2   # the Ingress's retries

Each request goes to the next replica in turn; the answer carries `x-upstream` (which replica answered)
so a test can tell the replicas' traffic apart. A replica that refuses the connection is skipped for
DOWN_S seconds and the request goes to the next one, as the endpoints stop listing a pod that fails its
readiness probe: a request that was never delivered is safe to send elsewhere. A request that reached a
replica which then died gets 502, as the KEDA interceptor answers then; whether that 502 goes to the
client or the request is replayed on the next replica is the Ingress's retry middleware, read from the
rendered overlay given by --retry-from (aidetect.testing.overlay.ingress_retry), never decided here. A
replayed answer carries `x-retried-from` (the replica that failed it).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import httpx
import yaml

from aidetect.testing.overlay import RetryPolicy, ingress_retry

DOWN_S = 5.0
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection", "host"}


def build_app(upstreams: list[str], retry: RetryPolicy | None = None):
    retry = retry or RetryPolicy()
    turn = itertools.cycle(range(len(upstreams)))
    down_until = [0.0] * len(upstreams)
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=2.0), limits=httpx.Limits(max_connections=64))

    async def send_plain(send, status: int, text: str, upstream: str = "") -> None:
        body = text.encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        if upstream:
            headers.append((b"x-upstream", upstream.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await client.aclose()
            return await send({"type": "lifespan.shutdown.complete"})
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP | {"content-length"}]
        path = scope.get("raw_path", scope["path"].encode()).decode() or scope["path"]
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode()
        tries, failed = 0, []
        for _ in range(len(upstreams)):
            i = next(turn)
            if down_until[i] > time.monotonic():
                continue
            upstream = upstreams[i]
            request = client.build_request(scope["method"], upstream + path, headers=headers, content=body)
            try:
                status, out, content = await forward(request, upstream)
            except httpx.ConnectError:
                down_until[i] = time.monotonic() + DOWN_S  # never delivered: the next replica gets it
                continue
            except httpx.HTTPError as e:  # delivered, then the connection broke: the interceptor's 502
                status, out, content = 502, None, f"upstream {upstream} failed: {e!r}"
            tries += 1
            if retry.retries(scope["method"], status, tries):
                failed.append(upstream)
                continue
            if out is None:
                return await send_plain(send, status, content, upstream)
            out += [(b"x-retried-from", u.encode()) for u in failed]
            await send({"type": "http.response.start", "status": status, "headers": out})
            return await send({"type": "http.response.body", "body": content})
        await send_plain(send, 503, "no replica is reachable" + (f" (tried {', '.join(failed)})" if failed else ""))

    async def forward(request: httpx.Request, upstream: str) -> tuple[int, list, bytes]:
        """The whole answer, read before anything goes to the client, so a broken one can still be replayed."""
        response = await client.send(request, stream=True)
        try:
            out = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.multi_items()
                if k.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}
            ]
            content = await response.aread()  # decoded, hence no content-encoding above
        finally:
            await response.aclose()
        out += [(b"content-length", str(len(content)).encode()), (b"x-upstream", upstream.encode())]
        return response.status_code, out, content

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--retry-from", type=Path, help="rendered overlay (YAML): obey its Ingress retry middleware")
    p.add_argument("--ingress", default="detector", help="the Ingress of --retry-from to read")
    p.add_argument("upstreams", nargs="+")
    args = p.parse_args(argv)
    retry = None
    if args.retry_from is not None:
        objs = [d for d in yaml.safe_load_all(args.retry_from.read_text()) if d]
        retry = ingress_retry(objs, args.ingress)
    app = build_app([u.rstrip("/") for u in args.upstreams], retry)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
