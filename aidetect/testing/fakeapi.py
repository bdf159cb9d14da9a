"""A loopback server that answers like X, Instagram, Mastodon, Bluesky and Reddit (tests and the benchmark).

    with FakeSocial(media=[jpeg_bytes, ...], page_size=10) as fake:      # binds 127.0.0.1:<free port>
        env = fake.env()               # X_API_BASE_URL=..., MASTODON_BASE_URL=..., tokens
        fake.faults.append(Fault("/timelines/", 429, times=1, headers={"Retry-After": "1"}))
        fake.add_posts([more_bytes])   # new posts appear on every platform, newest first

Responses follow the JSON shapes of each API's reference documentation (X API v2 recent search
with `includes.media`; Graph API `data` + `paging.cursors`; Mastodon Status entities and Link
headers; AT Protocol PostView with `app.bsky.embed.images#view`; Reddit Listing/t3). Media are
served from /media/<n>. Every platform sees the same posts: post i carries media i, and every
fifth post carries a second image (the next blob) so multi-image posts are exercised.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlparse

X_TOKEN = "fake-x-bearer"
IG_TOKEN = "fake-ig-token"
IG_USER = "17841400000000000"
IG_HASHTAG = "17843853986012965"
BSKY_HANDLE, BSKY_PASSWORD, BSKY_JWT = "tester.bsky.social", "app-pass-1234", "fake-access-jwt"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@dataclass
class Fault:
    """Answer requests whose path (with query string) contains `path` with `status` and `body`, `times` times."""

    path: str
    status: int
    times: int = 1
    headers: dict = field(default_factory=dict)
    body: bytes = b'{"error": "injected"}'


@dataclass
class Post:
    n: int  # 0-based creation order; higher is newer
    media: list[int]  # indices into FakeSocial.media
    author: str
    video: bool = False  # carries a video attachment too (connectors must skip it)

    @property
    def created(self) -> dt.datetime:
        return T0 + dt.timedelta(minutes=self.n)

    def iso(self) -> str:
        return self.created.isoformat().replace("+00:00", "Z")


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

    # --- per-platform renderers: (status, headers, body) ---

    def x_search(self, q: dict, headers) -> tuple:
        if headers.get("Authorization") != f"Bearer {X_TOKEN}":
            return (
                401,
                {},
                {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
            )
        posts = [p for p in self.newest_first() if not q.get("since_id") or _xid(p) > int(q["since_id"])]
        start = int(q.get("next_token", "0").removeprefix("tok")) if q.get("next_token") else 0
        size = min(int(q.get("max_results", 10)), self.page_size)
        page = posts[start : start + size]
        if not page:
            return 200, {}, {"meta": {"result_count": 0}}
        media, users = [], {}
        data = []
        for p in page:
            keys = [f"3_{_xid(p)}_{m}" for m in p.media] + ([f"7_{_xid(p)}"] if p.video else [])
            data.append(
                {
                    "id": str(_xid(p)),
                    "text": f"art #{q.get('query', '')}",
                    "author_id": str(1000 + p.n % 7),
                    "created_at": p.iso().replace("Z", ".000Z"),
                    "edit_history_tweet_ids": [str(_xid(p))],
                    "attachments": "corrupt" if p.n in self.broken else {"media_keys": keys},
                }
            )
            media += [
                {
                    "media_key": f"3_{_xid(p)}_{m}",
                    "type": "photo",
                    "url": self.media_url(m),
                    "width": 256,
                    "height": 256,
                }
                for m in p.media
            ]
            if p.video:
                media.append(
                    {
                        "media_key": f"7_{_xid(p)}",
                        "type": "video",
                        "preview_image_url": self.media_url(p.media[0]),
                    }
                )
            users[str(1000 + p.n % 7)] = {"id": str(1000 + p.n % 7), "name": p.author, "username": p.author}
        meta = {"newest_id": data[0]["id"], "oldest_id": data[-1]["id"], "result_count": len(data)}
        if start + size < len(posts):
            meta["next_token"] = f"tok{start + size}"
        return (
            200,
            {},
            {"data": data, "includes": {"media": media, "users": list(users.values())}, "meta": meta},
        )

    def ig(self, path: str, q: dict) -> tuple:
        if q.get("access_token") != IG_TOKEN:
            return (
                400,
                {},
                {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                        "fbtrace_id": "Afake",
                    }
                },
            )
        if path.endswith("/ig_hashtag_search"):
            return 200, {}, {"data": [{"id": IG_HASHTAG}]}
        if not path.endswith(f"/{IG_HASHTAG}/recent_media"):
            return 404, {}, {"error": {"message": "Unsupported get request", "code": 100}}
        posts = self.newest_first()
        start = int(q.get("after", "0").removeprefix("QVFI")) if q.get("after") else 0
        size = min(int(q.get("limit", 25)), self.page_size)
        data = []
        for p in posts[start : start + size]:
            base = {
                "id": str(17900000000000000 + p.n),
                "permalink": f"https://www.instagram.com/p/F{p.n}/",
                "timestamp": p.created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            }
            if len(p.media) > 1:
                children = [
                    {"id": str(18000000000000000 + m), "media_type": "IMAGE", "media_url": self.media_url(m)}
                    for m in p.media
                ]
                data.append({**base, "media_type": "CAROUSEL_ALBUM", "children": {"data": children}})
            else:
                data.append({**base, "media_type": "IMAGE", "media_url": self.media_url(p.media[0])})
            if p.n in self.broken:
                data[-1].update({"media_type": "CAROUSEL_ALBUM", "children": "corrupt"})
        body: dict = {"data": data}
        if data:
            after = f"QVFI{start + size}"
            body["paging"] = {"cursors": {"after": after}}
            if start + size < len(posts):
                body["paging"]["next"] = f"{self.url}/ig/v21.0/{IG_HASHTAG}/recent_media?after={after}"
        return 200, {}, body

    def mastodon(self, path: str, q: dict) -> tuple:
        posts = [
            p
            for p in self.newest_first()
            if (not q.get("max_id") or _mid(p) < int(q["max_id"]))
            and (not q.get("since_id") or _mid(p) > int(q["since_id"]))
        ]
        page = posts[: min(int(q.get("limit", 20)), self.page_size)]
        statuses = []
        for p in page:
            attachments = [
                {
                    "id": str(109000000000000000 + m),
                    "type": "image",
                    "url": self.media_url(m),
                    "preview_url": self.media_url(m),
                    "remote_url": None,
                    "description": None,
                    "meta": {"original": {"width": 256, "height": 256}},
                }
                for m in p.media
            ]
            if p.video:
                attachments.append({"id": f"v{p.n}", "type": "video", "url": f"{self.url}/media/video{p.n}.mp4"})
            if p.n in self.broken:
                attachments = 7
            statuses.append(
                {
                    "id": str(_mid(p)),
                    "created_at": p.iso().replace("Z", ".000Z"),
                    "visibility": "public",
                    "sensitive": False,
                    "uri": f"https://fake.social/users/{p.author}/statuses/{_mid(p)}",
                    "url": f"https://fake.social/@{p.author}/{_mid(p)}",
                    "content": "<p>#aiart</p>",
                    "reblog": None,
                    "account": {
                        "id": str(p.n % 7),
                        "username": p.author,
                        "acct": p.author,
                        "url": f"https://fake.social/@{p.author}",
                    },
                    "media_attachments": attachments,
                }
            )
        headers = {}
        if statuses:
            base = f"{self.url}/mastodon{path}"
            headers["Link"] = (
                f'<{base}?max_id={statuses[-1]["id"]}>; rel="next", <{base}?min_id={statuses[0]["id"]}>; rel="prev"'
            )
        return 200, headers, statuses

    def bsky(self, path: str, q: dict, headers, body: bytes) -> tuple:
        if path.endswith("com.atproto.server.createSession"):
            creds = json.loads(body or b"{}")
            if creds.get("identifier") != BSKY_HANDLE or creds.get("password") != BSKY_PASSWORD:
                return (
                    401,
                    {},
                    {"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
                )
            return (
                200,
                {},
                {
                    "did": "did:plc:fakeviewer",
                    "handle": BSKY_HANDLE,
                    "accessJwt": BSKY_JWT,
                    "refreshJwt": "fake-refresh",
                    "active": True,
                },
            )
        if headers.get("Authorization") != f"Bearer {BSKY_JWT}":
            return 401, {}, {"error": "AuthenticationRequired", "message": "Authentication Required"}
        posts = self.newest_first()
        if q.get("since"):
            posts = [p for p in posts if p.iso() > q["since"]]
        start = int(q.get("cursor", "0")) if q.get("cursor") else 0
        size = min(int(q.get("limit", 25)), self.page_size)
        views = [self._bsky_post(p) for p in posts[start : start + size]]
        for p, v in zip(posts[start : start + size], views, strict=True):
            if p.n in self.broken:
                v["embed"] = {"$type": "app.bsky.embed.images#view", "images": ["corrupt"]}
        out: dict = {}
        if start + size < len(posts):
            out["cursor"] = str(start + size)
        if path.endswith("app.bsky.feed.searchPosts"):
            return 200, {}, {**out, "hitsTotal": len(posts), "posts": views}
        if path.endswith("app.bsky.feed.getAuthorFeed"):
            return 200, {}, {**out, "feed": [{"post": v} for v in views]}
        return 400, {}, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}

    def _bsky_post(self, p: Post) -> dict:
        did, rkey = f"did:plc:fake{p.n % 7}", f"3kfake{p.n:06d}"
        return {
            "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
            "cid": f"bafyreifake{p.n}",
            "author": {"did": did, "handle": f"{p.author}.bsky.social", "displayName": p.author},
            "record": {
                "$type": "app.bsky.feed.post",
                "createdAt": p.iso(),
                "text": "#aiart",
                "embed": {
                    "$type": "app.bsky.embed.images",
                    "images": [
                        {
                            "alt": "",
                            "image": {
                                "$type": "blob",
                                "ref": {"$link": f"bafkfake{m}"},
                                "mimeType": "image/jpeg",
                                "size": len(self.media[m]),
                            },
                        }
                        for m in p.media
                    ],
                },
            },
            "embed": {
                "$type": "app.bsky.embed.images#view",
                "images": [
                    {
                        "thumb": self.media_url(m),
                        "fullsize": self.media_url(m),
                        "alt": "",
                        "aspectRatio": {"width": 256, "height": 256},
                    }
                    for m in p.media
                ],
            },
            "replyCount": 0,
            "repostCount": 0,
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": p.iso(),
            "labels": [],
        }

    def reddit(self, path: str, q: dict, headers) -> tuple:
        agent = headers.get("User-Agent") or ""
        if not agent or agent.startswith(("python-httpx", "python-requests")):
            return 429, {}, {"message": "Too Many Requests", "error": 429}
        sub = path.split("/")[2] if path.count("/") >= 3 else "all"
        posts = self.newest_first()
        names = [f"t3_{_b36(p.n + 1000)}" for p in posts]
        start = names.index(q["after"]) + 1 if q.get("after") in names else 0
        size = min(int(q.get("limit", 25)), self.page_size)
        children = []
        for p in posts[start : start + size]:
            pid = _b36(p.n + 1000)
            data = {
                "id": pid,
                "name": f"t3_{pid}",
                "subreddit": sub,
                "author": p.author,
                "title": "art",
                "permalink": f"/r/{sub}/comments/{pid}/art/",
                "created_utc": p.created.timestamp(),
                "is_gallery": len(p.media) > 1,
                "over_18": False,
            }
            if len(p.media) > 1:
                ids = [f"m{m}" for m in p.media]
                data["gallery_data"] = {"items": [{"media_id": mid, "id": k} for k, mid in enumerate(ids)]}
                data["media_metadata"] = {
                    f"m{m}": {
                        "status": "valid",
                        "e": "Image",
                        "m": "image/jpg",
                        "s": {"u": self.media_url(m), "x": 256, "y": 256},
                    }
                    for m in p.media
                }
                data["url"] = f"https://www.reddit.com/gallery/{pid}"
            else:
                data.update({"post_hint": "image", "url": self.media_url(p.media[0])})
            if p.n in self.broken:
                data.update({"is_gallery": True, "gallery_data": "corrupt"})
            children.append({"kind": "t3", "data": data})
        after = children[-1]["data"]["name"] if children and start + size < len(posts) else None
        return (
            200,
            {},
            {
                "kind": "Listing",
                "data": {
                    "after": after,
                    "dist": len(children),
                    "modhash": "",
                    "geo_filter": None,
                    "children": children,
                    "before": None,
                },
            },
        )


def _xid(p: Post) -> int:
    return 1860000000000000000 + p.n


def _mid(p: Post) -> int:
    return 113000000000000000 + p.n


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


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
                status, headers, out = fake.x_search(q, self.headers)
            elif path.startswith("/ig/v21.0/"):
                status, headers, out = fake.ig(path, q)
            elif path.startswith("/mastodon/api/v1/timelines/"):
                status, headers, out = fake.mastodon(path.removeprefix("/mastodon"), q)
            elif path.startswith("/bsky/xrpc/"):
                status, headers, out = fake.bsky(path, q, self.headers, body)
            elif path.startswith("/reddit/r/"):
                status, headers, out = fake.reddit(path.removeprefix("/reddit"), q, self.headers)
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
