"""connectors/bluesky.py: createSession, searchPosts and getAuthorFeed with image embeds."""

from __future__ import annotations

import json

import httpx

from model.etl.connectors.base import Http
from model.etl.connectors.bluesky import BlueskyConnector


def _post(rkey: str, when: str, embed: dict) -> dict:
    return {
        "uri": f"at://did:plc:abc/app.bsky.feed.post/{rkey}",
        "cid": "bafyrei",
        "author": {"did": "did:plc:abc", "handle": "artist.bsky.social"},
        "record": {"$type": "app.bsky.feed.post", "text": "#aiart", "createdAt": when},
        "embed": embed,
        "indexedAt": when,
    }


IMAGES = {
    "$type": "app.bsky.embed.images#view",
    "images": [
        {
            "thumb": "https://cdn.bsky.app/img/feed_thumbnail/plain/did:plc:abc/bafk1@jpeg",
            "fullsize": "https://cdn.bsky.app/img/feed_fullsize/plain/did:plc:abc/bafk1@jpeg",
            "alt": "",
            "aspectRatio": {"width": 1000, "height": 750},
        }
    ],
}
WITH_MEDIA = {"$type": "app.bsky.embed.recordWithMedia#view", "record": {"record": {}}, "media": IMAGES}
EXTERNAL = {"$type": "app.bsky.embed.external#view", "external": {"uri": "https://example.com"}}


def test_session_search_and_embeds():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("createSession"):
            assert json.loads(request.content) == {"identifier": "me.bsky.social", "password": "app-pw"}
            return httpx.Response(200, json={"accessJwt": "jwt", "refreshJwt": "r", "did": "did:plc:me"})
        assert request.headers["authorization"] == "Bearer jwt"
        posts = [
            _post("3k2", "2024-05-02T00:00:00.000Z", IMAGES),
            _post("3k1", "2024-05-01T00:00:00.000Z", WITH_MEDIA),
            _post("3k0", "2024-04-30T00:00:00.000Z", EXTERNAL),
        ]
        return httpx.Response(200, json={"cursor": "25", "hitsTotal": 3, "posts": posts})

    http = Http("bluesky", client=httpx.Client(transport=httpx.MockTransport(handler)))
    conn = BlueskyConnector("me.bsky.social", "app-pw", http=http, base_url="https://bsky.test")
    page = conn.fetch("aiart", cursor=None, since="2024-04-01T00:00:00Z")
    search = seen[1].url.params
    assert search["q"] == "#aiart" and search["sort"] == "latest" and search["since"] == "2024-04-01T00:00:00Z"
    assert len(page.items) == 2 and page.items[0].post_url == "https://bsky.app/profile/artist.bsky.social/post/3k2"
    assert page.newest == "2024-05-02T00:00:00.000Z" and page.next_cursor == "25"
    conn.fetch("aiart", cursor="25", since=None)
    assert sum(r.url.path.endswith("createSession") for r in seen) == 1  # one session per run


def test_author_feed_stops_at_the_last_walk():
    feed = [
        {"post": _post("3k2", "2024-05-02T00:00:00.000Z", IMAGES)},
        {"post": _post("3k1", "2024-05-01T00:00:00.000Z", IMAGES)},
    ]

    def handler(request):
        assert request.url.path.endswith("app.bsky.feed.getAuthorFeed")
        assert request.url.params["actor"] == "artist.bsky.social" and "authorization" not in request.headers
        return httpx.Response(200, json={"cursor": "next", "feed": feed})

    http = Http("bluesky", client=httpx.Client(transport=httpx.MockTransport(handler)))
    page = BlueskyConnector(http=http).fetch("author:artist.bsky.social", None, since="2024-05-01T00:00:00.000Z")
    assert len(page.items) == 1 and page.next_cursor is None
    assert BlueskyConnector(http=http).base_url == "https://public.api.bsky.app"
