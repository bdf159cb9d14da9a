"""Bluesky (AT Protocol): post search or an author's feed, posts with image embeds.

    BLUESKY_HANDLE=me.bsky.social BLUESKY_APP_PASSWORD=... aidetect ingest --source bluesky --tag aiart
    aidetect ingest --source bluesky --tag author:artist.bsky.social     # app.bsky.feed.getAuthorFeed
    # POST /xrpc/com.atproto.server.createSession  {"identifier", "password"} -> accessJwt
    # GET  /xrpc/app.bsky.feed.searchPosts?q=#aiart&sort=latest&limit=100&cursor=...&since=...

Images are `app.bsky.embed.images#view` embeds (also inside `recordWithMedia#view`); the
`fullsize` URL is fetched. Without credentials the public AppView is used. Search takes `since`
(the newest indexedAt of the last walk); an author feed has none, so its walk stops at that time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from model.etl.connectors.base import Connector, ConnectorError, RawPage, collect_items, shape_error
from model.etl.items import Item

IMAGES_VIEW = "app.bsky.embed.images#view"
RECORD_WITH_MEDIA_VIEW = "app.bsky.embed.recordWithMedia#view"


class BlueskyConnector(Connector):
    name = "bluesky"
    base_url_env = "BLUESKY_BASE_URL"
    default_base_url = "https://bsky.social"
    public_base_url = "https://public.api.bsky.app"

    def __init__(self, handle: str | None = None, app_password: str | None = None, **kw):
        if not (handle and app_password) and not kw.get("base_url"):
            kw["base_url"] = self.public_base_url
        super().__init__(**kw)
        self.handle, self.app_password = handle, app_password
        self.http.auth_hint = "BLUESKY_HANDLE and BLUESKY_APP_PASSWORD"
        self._jwt: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> BlueskyConnector:
        handle, password = environ.get("BLUESKY_HANDLE"), environ.get("BLUESKY_APP_PASSWORD")
        if bool(handle) != bool(password):
            raise ConnectorError("set both BLUESKY_HANDLE and BLUESKY_APP_PASSWORD (an app password), or neither")
        return cls(handle, password, base_url=environ.get(cls.base_url_env), **kw)

    def _headers(self) -> dict:
        if not (self.handle and self.app_password):
            return {}
        if self._jwt is None:
            body = self.http.json(
                "POST",
                f"{self.base_url}/xrpc/com.atproto.server.createSession",
                json={"identifier": self.handle, "password": self.app_password},
            )
            try:
                self._jwt = body["accessJwt"]
            except (KeyError, TypeError) as e:
                raise shape_error(self.name, "createSession", e) from None
        return {"Authorization": f"Bearer {self._jwt}"}

    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        q = query.strip()
        if q.startswith("author:"):
            method, params = "app.bsky.feed.getAuthorFeed", {"actor": q[7:], "filter": "posts_with_media"}
        else:
            term = q if (" " in q or q.startswith("#")) else f"#{q}"
            method, params = "app.bsky.feed.searchPosts", {"q": term, "sort": "latest"}
            if since:
                params["since"] = since
        params["limit"] = 100
        if cursor:
            params["cursor"] = cursor
        body = self.http.json("GET", f"{self.base_url}/xrpc/{method}", params=params, headers=self._headers())
        try:
            posts = body["posts"] if "posts" in body else [f["post"] for f in body["feed"] if "post" in f]
            next_cursor = body.get("cursor")
            kept, newest, reached = [], None, False
            for post in posts:
                when = _when(post)
                if since and method.endswith("getAuthorFeed") and when and when <= since:
                    reached = True  # older than the last walk: the rest of the feed is known
                    break
                newest = max(newest or "", when or "") or None
                kept.append(post)
        except (KeyError, TypeError, AttributeError) as e:
            raise shape_error(self.name, method, e) from None
        items, bad = collect_items(self.name, kept, self._items)
        return RawPage(items, None if reached else next_cursor, newest, posts=len(posts), malformed=bad)

    def _items(self, post: dict) -> list[Item]:
        embed = post.get("embed") or {}
        if embed.get("$type") == RECORD_WITH_MEDIA_VIEW:
            embed = embed.get("media") or {}
        if embed.get("$type") != IMAGES_VIEW:
            return []
        author = post.get("author") or {}
        handle = author.get("handle") or author.get("did")
        rkey = str(post["uri"]).rsplit("/", 1)[-1]
        url = f"https://bsky.app/profile/{handle}/post/{rkey}"
        return [
            Item(
                source=self.name,
                post_id=str(post["uri"]),
                media_key=str(i),
                media_url=img.get("fullsize"),
                post_url=url,
                author=author.get("did") or handle,
                posted_at=(post.get("record") or {}).get("createdAt") or post.get("indexedAt"),
                origin=url,
            )
            for i, img in enumerate(embed.get("images") or [])
            if img.get("fullsize")
        ]


def _when(post) -> str | None:
    """indexedAt (what `since` filters on), else the record's createdAt; None when neither is a string."""
    if not isinstance(post, dict):
        return None
    when = post.get("indexedAt") or (post.get("record") or {}).get("createdAt")
    return when if isinstance(when, str) else None
