"""What each fake platform answers: the JSON shapes of X, Instagram, Mastodon, Bluesky and Reddit.

Each renderer takes the FakeSocial world (its posts, media URLs, page size, broken posts) and a request's
path, query and headers, and returns (status, headers, body) as the platform's reference documentation
shows it: X API v2 recent search with `includes.media`; Graph API `data` + `paging.cursors`; Mastodon Status
entities and Link headers; AT Protocol PostView with `app.bsky.embed.images#view`; Reddit Listing/t3.
aidetect/testing/fakeapi.py serves them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aidetect.testing.fakeapi import FakeSocial

X_TOKEN = "fake-x-bearer"
IG_TOKEN = "fake-ig-token"
IG_USER = "17841400000000000"
IG_HASHTAG = "17843853986012965"
BSKY_HANDLE, BSKY_PASSWORD, BSKY_JWT = "tester.bsky.social", "app-pass-1234", "fake-access-jwt"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


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


def x_search(fake: FakeSocial, q: dict, headers) -> tuple:
    if headers.get("Authorization") != f"Bearer {X_TOKEN}":
        return (
            401,
            {},
            {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
        )
    posts = [p for p in fake.newest_first() if not q.get("since_id") or _xid(p) > int(q["since_id"])]
    start = int(q.get("next_token", "0").removeprefix("tok")) if q.get("next_token") else 0
    size = min(int(q.get("max_results", 10)), fake.page_size)
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
                "attachments": "corrupt" if p.n in fake.broken else {"media_keys": keys},
            }
        )
        media += [
            {
                "media_key": f"3_{_xid(p)}_{m}",
                "type": "photo",
                "url": fake.media_url(m),
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
                    "preview_image_url": fake.media_url(p.media[0]),
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


def ig(fake: FakeSocial, path: str, q: dict) -> tuple:
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
    posts = fake.newest_first()
    start = int(q.get("after", "0").removeprefix("QVFI")) if q.get("after") else 0
    size = min(int(q.get("limit", 25)), fake.page_size)
    data = []
    for p in posts[start : start + size]:
        base = {
            "id": str(17900000000000000 + p.n),
            "permalink": f"https://www.instagram.com/p/F{p.n}/",
            "timestamp": p.created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        }
        if len(p.media) > 1:
            children = [
                {"id": str(18000000000000000 + m), "media_type": "IMAGE", "media_url": fake.media_url(m)}
                for m in p.media
            ]
            data.append({**base, "media_type": "CAROUSEL_ALBUM", "children": {"data": children}})
        else:
            data.append({**base, "media_type": "IMAGE", "media_url": fake.media_url(p.media[0])})
        if p.n in fake.broken:
            data[-1].update({"media_type": "CAROUSEL_ALBUM", "children": "corrupt"})
    body: dict = {"data": data}
    if data:
        after = f"QVFI{start + size}"
        body["paging"] = {"cursors": {"after": after}}
        if start + size < len(posts):
            body["paging"]["next"] = f"{fake.url}/ig/v21.0/{IG_HASHTAG}/recent_media?after={after}"
    return 200, {}, body


def mastodon(fake: FakeSocial, path: str, q: dict) -> tuple:
    posts = [
        p
        for p in fake.newest_first()
        if (not q.get("max_id") or _mid(p) < int(q["max_id"]))
        and (not q.get("since_id") or _mid(p) > int(q["since_id"]))
    ]
    page = posts[: min(int(q.get("limit", 20)), fake.page_size)]
    statuses = []
    for p in page:
        attachments = [
            {
                "id": str(109000000000000000 + m),
                "type": "image",
                "url": fake.media_url(m),
                "preview_url": fake.media_url(m),
                "remote_url": None,
                "description": None,
                "meta": {"original": {"width": 256, "height": 256}},
            }
            for m in p.media
        ]
        if p.video:
            attachments.append({"id": f"v{p.n}", "type": "video", "url": f"{fake.url}/media/video{p.n}.mp4"})
        if p.n in fake.broken:
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
        base = f"{fake.url}/mastodon{path}"
        headers["Link"] = (
            f'<{base}?max_id={statuses[-1]["id"]}>; rel="next", <{base}?min_id={statuses[0]["id"]}>; rel="prev"'
        )
    return 200, headers, statuses


def bsky(fake: FakeSocial, path: str, q: dict, headers, body: bytes) -> tuple:
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
    posts = fake.newest_first()
    if q.get("since"):
        posts = [p for p in posts if p.iso() > q["since"]]
    start = int(q.get("cursor", "0")) if q.get("cursor") else 0
    size = min(int(q.get("limit", 25)), fake.page_size)
    views = [_bsky_post(fake, p) for p in posts[start : start + size]]
    for p, v in zip(posts[start : start + size], views, strict=True):
        if p.n in fake.broken:
            v["embed"] = {"$type": "app.bsky.embed.images#view", "images": ["corrupt"]}
    out: dict = {}
    if start + size < len(posts):
        out["cursor"] = str(start + size)
    if path.endswith("app.bsky.feed.searchPosts"):
        return 200, {}, {**out, "hitsTotal": len(posts), "posts": views}
    if path.endswith("app.bsky.feed.getAuthorFeed"):
        return 200, {}, {**out, "feed": [{"post": v} for v in views]}
    return 400, {}, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}


def _bsky_post(fake: FakeSocial, p: Post) -> dict:
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
                            "size": len(fake.media[m]),
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
                    "thumb": fake.media_url(m),
                    "fullsize": fake.media_url(m),
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


def reddit(fake: FakeSocial, path: str, q: dict, headers) -> tuple:
    agent = headers.get("User-Agent") or ""
    if not agent or agent.startswith(("python-httpx", "python-requests")):
        return 429, {}, {"message": "Too Many Requests", "error": 429}
    sub = path.split("/")[2] if path.count("/") >= 3 else "all"
    posts = fake.newest_first()
    names = [f"t3_{_b36(p.n + 1000)}" for p in posts]
    start = names.index(q["after"]) + 1 if q.get("after") in names else 0
    size = min(int(q.get("limit", 25)), fake.page_size)
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
                    "s": {"u": fake.media_url(m), "x": 256, "y": 256},
                }
                for m in p.media
            }
            data["url"] = f"https://www.reddit.com/gallery/{pid}"
        else:
            data.update({"post_hint": "image", "url": fake.media_url(p.media[0])})
        if p.n in fake.broken:
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
