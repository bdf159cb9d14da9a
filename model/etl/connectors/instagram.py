"""Instagram Graph API: hashtag search, then the hashtag's recent media.

    INSTAGRAM_ACCESS_TOKEN=... INSTAGRAM_USER_ID=1784... aidetect ingest --source instagram --tag aiart
    # GET /ig_hashtag_search?user_id=...&q=aiart                 -> {"data": [{"id": "1784..."}]}
    # GET /{hashtag-id}/recent_media?user_id=...&fields=id,media_type,media_url,permalink,...

Recent media covers the last 24 hours, has no `since`, and pages through `paging.cursors.after`
while `paging.next` is present; re-collection relies on idempotent storage instead. Rate limits
arrive as 400/403 with error codes 4, 17, 32 or 613 rather than 429; they are backed off too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from model.etl.connectors.base import Connector, ConnectorError, RawPage, collect_items, require, shape_error
from model.etl.items import Item

_RATE_LIMIT_CODES = {4, 17, 32, 613}
_FIELDS = "id,media_type,media_url,permalink,timestamp,children{id,media_type,media_url}"


def _graph_error_code(resp: httpx.Response) -> int | None:
    try:
        return int(resp.json().get("error", {}).get("code"))
    except (ValueError, TypeError, AttributeError):
        return None


def _graph_rate_limited(resp: httpx.Response) -> bool:
    return _graph_error_code(resp) in _RATE_LIMIT_CODES


def _graph_auth_failed(resp: httpx.Response) -> bool:
    return _graph_error_code(resp) == 190  # OAuthException: invalid or expired token


class InstagramConnector(Connector):
    name = "instagram"
    base_url_env = "INSTAGRAM_API_BASE_URL"
    default_base_url = "https://graph.facebook.com/v21.0"
    license = "Instagram Terms of Use"

    def __init__(self, token: str, user_id: str, **kw):
        super().__init__(**kw)
        self.token, self.user_id = token, user_id
        self.http.auth_hint = "INSTAGRAM_ACCESS_TOKEN"
        self.http.rate_limited = _graph_rate_limited
        self.http.auth_failed = _graph_auth_failed
        self._hashtag_ids: dict[str, str] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> InstagramConnector:
        token = require(environ, "INSTAGRAM_ACCESS_TOKEN", "a User access token with Instagram Public Content Access")
        user = require(environ, "INSTAGRAM_USER_ID", "the Instagram professional account id making the queries")
        return cls(token, user, base_url=environ.get(cls.base_url_env), **kw)

    def hashtag_id(self, tag: str) -> str:
        if tag not in self._hashtag_ids:
            body = self.http.json(
                "GET",
                f"{self.base_url}/ig_hashtag_search",
                params={"user_id": self.user_id, "q": tag, "access_token": self.token},
            )
            try:
                self._hashtag_ids[tag] = str(body["data"][0]["id"])
            except (KeyError, IndexError, TypeError) as e:
                if isinstance(body, dict) and body.get("data") == []:
                    raise ConnectorError(f"instagram: no hashtag named {tag!r}") from None
                raise shape_error(self.name, "ig_hashtag_search", e) from None
        return self._hashtag_ids[tag]

    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        tag = query.lstrip("#").strip().lower()
        params = {"user_id": self.user_id, "fields": _FIELDS, "limit": 50, "access_token": self.token}
        if cursor:
            params["after"] = cursor
        body = self.http.json("GET", f"{self.base_url}/{self.hashtag_id(tag)}/recent_media", params=params)
        try:
            media = body["data"]
            paging = body.get("paging") or {}
            items, bad = collect_items(self.name, media, self._items)
            after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
        except (KeyError, TypeError, AttributeError) as e:
            raise shape_error(self.name, "recent_media", e) from None
        return RawPage(items, after, None, posts=len(media), malformed=bad)

    def _items(self, m: dict) -> list[Item]:
        if m.get("media_type") == "CAROUSEL_ALBUM":
            parts = [(c.get("id", str(i)), c) for i, c in enumerate((m.get("children") or {}).get("data") or [])]
        else:
            parts = [("", m)]
        out = []
        for key, part in parts:
            if part.get("media_type") != "IMAGE" or not part.get("media_url"):
                continue
            out.append(
                Item(
                    source=self.name,
                    post_id=str(m["id"]),
                    media_key=str(key),
                    media_url=part["media_url"],
                    post_url=m.get("permalink"),
                    author=None,
                    posted_at=m.get("timestamp"),
                    license=self.license,
                    origin=m.get("permalink"),
                )
            )
        return out
