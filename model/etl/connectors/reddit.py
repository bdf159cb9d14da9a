"""Reddit listing JSON: a subreddit's newest posts, image posts and galleries.

    REDDIT_USER_AGENT="linux:aidetect:0.1 (by /u/you)" aidetect ingest --source reddit --tag aiArt
    # GET /r/aiArt/new.json?limit=100&raw_json=1&after=t3_...

A Listing (`data.children[].data`) pages through `data.after`. Reddit requires a descriptive
User-Agent; with REDDIT_ACCESS_TOKEN (an OAuth app token) requests go to oauth.reddit.com with it,
which Reddit's API terms expect for anything beyond light use. Listings have no `since`, so a
walk stops at the newest post time of the last walk. `raw_json=1` keeps media URLs unescaped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from model.etl.connectors.base import Connector, RawPage, collect_items, shape_error
from model.etl.items import Item

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")


class RedditConnector(Connector):
    name = "reddit"
    base_url_env = "REDDIT_BASE_URL"
    default_base_url = "https://www.reddit.com"
    license = "Reddit User Agreement"

    def __init__(self, user_agent: str = "linux:aidetect-ingest:0.1", token: str | None = None, **kw):
        if token and not kw.get("base_url"):
            kw["base_url"] = "https://oauth.reddit.com"
        super().__init__(**kw)
        self.http.client.headers["User-Agent"] = user_agent
        if token:
            self.http.client.headers["Authorization"] = f"bearer {token}"
        self.http.auth_hint = "REDDIT_USER_AGENT (Reddit blocks generic agents)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> RedditConnector:
        agent = environ.get("REDDIT_USER_AGENT") or "linux:aidetect-ingest:0.1"
        token = environ.get("REDDIT_ACCESS_TOKEN") or None
        return cls(agent, token=token, base_url=environ.get(cls.base_url_env), **kw)

    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        sub = query.strip().removeprefix("r/").lstrip("#")
        params = {"limit": 100, "raw_json": 1}
        if cursor:
            params["after"] = cursor
        body = self.http.json("GET", f"{self.base_url}/r/{quote(sub)}/new.json", params=params)
        try:
            if body.get("kind") != "Listing":
                raise ValueError(f"expected a Listing, got kind={body.get('kind')!r}")
            children = [c["data"] for c in body["data"]["children"] if c.get("kind") == "t3"]
            kept, newest, reached = [], None, False
            for post in children:
                created = _created(post)
                if since and created is not None and created <= float(since):
                    reached = True
                    break
                if created is not None:
                    newest = max(newest or 0.0, created)
                kept.append(post)
            after = None if reached else body["data"].get("after")
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise shape_error(self.name, f"/r/{sub}/new.json", e) from None
        items, bad = collect_items(self.name, kept, self._items)
        newest_s = None if newest is None else f"{newest:.0f}"
        return RawPage(items, after, newest_s, posts=len(children), malformed=bad)

    def _items(self, post: dict) -> list[Item]:
        permalink = f"https://www.reddit.com{post.get('permalink', '')}"
        common = dict(
            source=self.name,
            post_id=str(post["name"]),
            post_url=permalink,
            author=post.get("author"),
            posted_at=_iso(post.get("created_utc")),
            license=self.license,
            origin=permalink,
        )
        if post.get("is_gallery"):
            metadata = post.get("media_metadata") or {}
            order = [g["media_id"] for g in (post.get("gallery_data") or {}).get("items") or []] or list(metadata)
            out = []
            for media_id in order:
                meta = metadata.get(media_id) or {}
                url = (meta.get("s") or {}).get("u")
                if meta.get("status", "valid") == "valid" and meta.get("e") == "Image" and url:
                    out.append(Item(media_key=str(media_id), media_url=url, **common))
            return out
        url = post.get("url_overridden_by_dest") or post.get("url") or ""
        if post.get("post_hint") == "image" or url.lower().split("?")[0].endswith(IMAGE_EXTENSIONS):
            return [Item(media_key="", media_url=url, **common)]
        return []


def _iso(epoch) -> str | None:
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(float(epoch), dt.UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError):
        return None


def _created(post) -> float | None:
    try:
        return float(post.get("created_utc"))
    except (AttributeError, TypeError, ValueError):
        return None
