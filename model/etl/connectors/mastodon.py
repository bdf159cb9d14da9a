"""Mastodon: hashtag or public timelines, statuses with image attachments.

    MASTODON_BASE_URL=https://mastodon.social aidetect ingest --source mastodon --tag aiart
    aidetect ingest --source mastodon --tag public         # the instance's public timeline
    # GET /api/v1/timelines/tag/aiart?only_media=true&limit=40&max_id=...&since_id=...

Pages chain through the Link header (rel="next" carries max_id); `since_id` is the newest id of
the last finished walk. MASTODON_TOKEN is optional (instances may require it for timelines).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qs, quote, urlparse

from model.etl.connectors.base import Connector, RawPage, collect_items, require, shape_error
from model.etl.items import Item


class MastodonConnector(Connector):
    name = "mastodon"
    base_url_env = "MASTODON_BASE_URL"
    default_base_url = "https://mastodon.social"

    def __init__(self, token: str | None = None, **kw):
        super().__init__(**kw)
        self.token = token
        self.http.auth_hint = "MASTODON_TOKEN (this instance may require a token for timelines)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> MastodonConnector:
        base = require(environ, "MASTODON_BASE_URL", "the instance URL, e.g. https://mastodon.social")
        return cls(token=environ.get("MASTODON_TOKEN") or None, base_url=base, **kw)

    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        tag = query.lstrip("#").strip()
        path = "/api/v1/timelines/public" if tag in ("public", "local") else f"/api/v1/timelines/tag/{quote(tag)}"
        params: dict = {"only_media": "true", "limit": 40}
        if tag == "local":
            params["local"] = "true"
        if cursor:
            params["max_id"] = cursor
        if since:
            params["since_id"] = since
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        resp = self.http.request("GET", f"{self.base_url}{path}", params=params, headers=headers)
        try:
            statuses = resp.json()
        except ValueError:
            statuses = None
        if not isinstance(statuses, list):
            raise shape_error(self.name, path, TypeError(f"expected a list of statuses, got {type(statuses).__name__}"))
        try:
            items, bad = collect_items(self.name, statuses, self._items)
            next_max = _link_param(resp, "next", "max_id") or (str(statuses[-1]["id"]) if statuses else None)
            newest = str(statuses[0]["id"]) if statuses else None
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
            raise shape_error(self.name, path, e) from None
        return RawPage(items, next_max, newest, posts=len(statuses), malformed=bad)

    def _items(self, st: dict) -> list[Item]:
        st = st.get("reblog") or st  # a boost carries the original post
        account = st.get("account") or {}
        out = []
        for media in st.get("media_attachments") or []:
            if media.get("type") != "image" or not (media.get("url") or media.get("remote_url")):
                continue
            out.append(
                Item(
                    source=self.name,
                    post_id=str(st["id"]),
                    media_key=str(media.get("id", "")),
                    media_url=media.get("url") or media.get("remote_url"),
                    post_url=st.get("url") or st.get("uri"),
                    author=account.get("acct"),
                    posted_at=st.get("created_at"),
                    license=None,
                    origin=st.get("url") or st.get("uri"),
                )
            )
        return out


def _link_param(resp, rel: str, param: str) -> str | None:
    link = resp.links.get(rel) if hasattr(resp, "links") else None
    if not link or "url" not in link:
        return None
    values = parse_qs(urlparse(link["url"]).query).get(param)
    return values[0] if values else None
