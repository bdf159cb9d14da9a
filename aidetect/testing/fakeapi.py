"""A loopback server that answers like X, Instagram, Mastodon, Bluesky and Reddit (tests and the benchmark).

    with FakeSocial(media=[jpeg_bytes, ...], page_size=10) as fake:      # binds 127.0.0.1:<free port>
        env = fake.env()               # X_API_BASE_URL=..., MASTODON_BASE_URL=..., tokens
        fake.faults.append(Fault("/timelines/", 429, times=1, headers={"Retry-After": "1"}))
        fake.add_posts([more_bytes])   # new posts appear on every platform, newest first

This module is the world (posts, media, injected faults) and the server; the JSON each platform answers
with, after its API reference, is in aidetect/testing/fakeapi_platforms.py. Media are served from
/media/<n>. Every platform sees the same posts: post i carries media i, and every fifth post carries a
second image (the next blob) so multi-image posts are exercised.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlparse

from aidetect.testing import fakeapi_platforms as platforms
from aidetect.testing.fakeapi_platforms import BSKY_HANDLE, BSKY_PASSWORD, IG_TOKEN, IG_USER, X_TOKEN, Post


@dataclass
class Fault:
    """Answer requests whose path (with query string) contains `path` with `status` and `body`, `times` times."""

    path: str
    status: int
    times: int = 1
    headers: dict = field(default_factory=dict)
    body: bytes = b'{"error": "injected"}'


class FakeSocial:
    def __init__(self, media: list[bytes] | None = None, page_size: int = 10, media_delay: float = 0.0):
        self.media: list[bytes] = []
        self.posts: list[Post] = []
        self.page_size = page_size
        self.media_delay = media_delay
        self.faults: list[Fault] = []
        self.broken: set[int] = set()  # posts (by n) rendered with a nonsense media field
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.add_posts(media or [])
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    # --- world ---

    def add_posts(self, blobs: list[bytes]) -> None:
        with self.lock:
            start = len(self.media)
            self.media.extend(blobs)
            for i in range(start, len(self.media)):
                n = len(self.posts)
                extra = [i + 1] if n % 5 == 4 and i + 1 < len(self.media) else []
                self.posts.append(Post(n=n, media=[i, *extra], author=f"user{n % 7}", video=n % 6 == 5))

    def newest_first(self) -> list[Post]:
        with self.lock:
            return list(reversed(self.posts))

    # --- server ---

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        return {
            "X_API_BASE_URL": f"{self.url}/x",
            "X_BEARER_TOKEN": X_TOKEN,
            "INSTAGRAM_API_BASE_URL": f"{self.url}/ig/v21.0",
            "INSTAGRAM_ACCESS_TOKEN": IG_TOKEN,
            "INSTAGRAM_USER_ID": IG_USER,
            "MASTODON_BASE_URL": f"{self.url}/mastodon",
            "BLUESKY_BASE_URL": f"{self.url}/bsky",
            "BLUESKY_HANDLE": BSKY_HANDLE,
            "BLUESKY_APP_PASSWORD": BSKY_PASSWORD,
            "REDDIT_BASE_URL": f"{self.url}/reddit",
            "REDDIT_USER_AGENT": "linux:aidetect-tests:0.1 (by /u/aidetect)",
        }

    def start(self) -> FakeSocial:
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSocial:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def media_url(self, i: int) -> str:
        return f"{self.url}/media/{i}"


def _handler(fake: FakeSocial):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._route(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._route(self.rfile.read(length) if length else b"")

        def _route(self, body: bytes) -> None:
            url = urlparse(self.path)
            path = url.path
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            with fake.lock:
                fake.requests.append(path)
                fault = next((f for f in fake.faults if f.times > 0 and f.path in self.path), None)
                if fault:
                    fault.times -= 1
            if fault:
                return self._send(fault.status, fault.headers, fault.body, "application/json")
            if path.startswith("/media/"):
                return self._media(path.removeprefix("/media/"))
            if path.startswith("/x/2/tweets/search/recent"):
                status, headers, out = platforms.x_search(fake, q, self.headers)
            elif path.startswith("/ig/v21.0/"):
                status, headers, out = platforms.ig(fake, path, q)
            elif path.startswith("/mastodon/api/v1/timelines/"):
                status, headers, out = platforms.mastodon(fake, path.removeprefix("/mastodon"), q)
            elif path.startswith("/bsky/xrpc/"):
                status, headers, out = platforms.bsky(fake, path, q, self.headers, body)
            elif path.startswith("/reddit/r/"):
                status, headers, out = platforms.reddit(fake, path.removeprefix("/reddit"), q, self.headers)
            else:
                status, headers, out = 404, {}, {"error": f"no route {quote(path)}"}
            self._send(status, headers, json.dumps(out).encode(), "application/json; charset=utf-8")

        def _media(self, name: str) -> None:
            if fake.media_delay:
                time.sleep(fake.media_delay)
            try:
                data = fake.media[int(name)]
            except (ValueError, IndexError):
                return self._send(404, {}, b"not found", "text/plain")
            self._send(200, {}, data, "image/jpeg")

        def _send(self, status: int, headers: dict, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    return Handler
