"""X (Twitter) API v2 recent search: posts with photos for a hashtag or a raw search query.

    X_BEARER_TOKEN=... aidetect ingest --source x --tag aiart
    # GET /2/tweets/search/recent?query=#aiart has:images -is:retweet
    #     &expansions=attachments.media_keys,author_id&media.fields=url,type ...

Photos come back in `includes.media`, joined to posts through `attachments.media_keys`; pages
are chained by `meta.next_token`, and `since_id` (the newest id of the last finished walk) asks
only for what is new. X_API_BASE_URL overrides the host (tests point it at the loopback fake).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from model.etl.connectors.base import Connector, RawPage, collect_items, require, shape_error
from model.etl.items import Item


class XConnector(Connector):
    name = "x"
    base_url_env = "X_API_BASE_URL"
    default_base_url = "https://api.x.com"
    license = "X Terms of Service"

    def __init__(self, token: str, **kw):
        super().__init__(**kw)
        self.token = token
        self.http.auth_hint = "X_BEARER_TOKEN"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> XConnector:
        token = require(environ, "X_BEARER_TOKEN", "an X API v2 app bearer token")
        return cls(token, base_url=environ.get(cls.base_url_env), **kw)

    @staticmethod
    def build_query(query: str) -> str:
        q = query.strip()
        if " " not in q and not q.startswith(("#", "from:", "(")):
            q = f"#{q}"
        return f"{q} has:images -is:retweet"

    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        params = {
            "query": self.build_query(query),
            "max_results": 100,
            "expansions": "attachments.media_keys,author_id",
            "media.fields": "url,type,media_key,width,height",
            "tweet.fields": "created_at,author_id,attachments",
            "user.fields": "username",
        }
        if cursor:
            params["next_token"] = cursor
        if since:
            params["since_id"] = since
        body = self.http.json(
            "GET",
            f"{self.base_url}/2/tweets/search/recent",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            return self._parse(body)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise shape_error(self.name, "recent search", e) from None

    def _parse(self, body: dict) -> RawPage:
        meta = body["meta"]  # present in every successful search response, even an empty one
        tweets = body.get("data") or []
        includes = body.get("includes") or {}
        media = {m["media_key"]: m for m in includes.get("media") or []}
        users = {u["id"]: u.get("username") for u in includes.get("users") or []}
        items, bad = collect_items(self.name, tweets, lambda t: self._tweet_items(t, media, users))
        return RawPage(items, meta.get("next_token"), meta.get("newest_id"), posts=len(tweets), malformed=bad)

    def _tweet_items(self, t: dict, media: dict, users: dict) -> list[Item]:
        items = []
        for key in (t.get("attachments") or {}).get("media_keys") or []:
            m = media.get(key)
            if not m or m.get("type") != "photo" or not m.get("url"):
                continue  # videos and GIFs carry only a preview image
            author = users.get(t.get("author_id")) or t.get("author_id")
            items.append(
                Item(
                    source=self.name,
                    post_id=str(t["id"]),
                    media_key=str(key),
                    media_url=m["url"],
                    post_url=f"https://x.com/i/web/status/{t['id']}",
                    author=author,
                    posted_at=t.get("created_at"),
                    license=self.license,
                    origin=f"https://x.com/i/web/status/{t['id']}",
                )
            )
        return items
