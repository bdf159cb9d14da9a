"""connectors/reddit.py: Listing JSON with image posts and galleries, User-Agent, stop at the last walk."""

from __future__ import annotations

import httpx

from model.etl.connectors.base import Http
from model.etl.connectors.reddit import RedditConnector


def _t3(pid: str, created: float, **data) -> dict:
    return {
        "kind": "t3",
        "data": {
            "id": pid,
            "name": f"t3_{pid}",
            "author": "u1",
            "created_utc": created,
            "permalink": f"/r/aiArt/comments/{pid}/x/",
            **data,
        },
    }


LISTING = {
    "kind": "Listing",
    "data": {
        "after": "t3_c",
        "before": None,
        "dist": 4,
        "children": [
            _t3("a", 300.0, post_hint="image", url="https://i.redd.it/a.jpeg"),
            _t3(
                "b",
                200.0,
                is_gallery=True,
                gallery_data={"items": [{"media_id": "m2", "id": 1}, {"media_id": "m1", "id": 2}]},
                media_metadata={
                    "m1": {"status": "valid", "e": "Image", "m": "image/jpg", "s": {"u": "https://i.redd.it/m1.jpg"}},
                    "m2": {"status": "valid", "e": "Image", "m": "image/png", "s": {"u": "https://i.redd.it/m2.png"}},
                },
            ),
            _t3("c", 150.0, post_hint="link", url="https://example.com/article"),
            _t3("d", 100.0, post_hint="image", url="https://i.redd.it/d.jpg"),
        ],
    },
}


def test_listing_images_galleries_and_since():
    agents = []

    def handler(request):
        agents.append(request.headers["user-agent"])
        assert request.url.path == "/r/aiArt/new.json" and request.url.params["raw_json"] == "1"
        return httpx.Response(200, json=LISTING)

    http = Http("reddit", client=httpx.Client(transport=httpx.MockTransport(handler)))
    conn = RedditConnector("linux:test:1.0 (by /u/me)", http=http)
    page = conn.fetch("r/aiArt", None, None)
    assert agents == ["linux:test:1.0 (by /u/me)"]
    assert [i.media_url.rsplit("/", 1)[-1] for i in page.items] == ["a.jpeg", "m2.png", "m1.jpg", "d.jpg"]
    assert page.next_cursor == "t3_c" and page.newest == "300" and page.items[0].posted_at == "1970-01-01T00:05:00Z"
    newer = conn.fetch("aiArt", None, since="150")
    assert [i.post_id for i in newer.items] == ["t3_a", "t3_b", "t3_b"] and newer.next_cursor is None


def test_oauth_token_goes_to_the_oauth_host():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=LISTING)

    http = Http("reddit", client=httpx.Client(transport=httpx.MockTransport(handler)))
    conn = RedditConnector.from_env({"REDDIT_ACCESS_TOKEN": "abc", "REDDIT_USER_AGENT": "linux:t:1"}, http=http)
    conn.fetch("aiArt", None, None)
    assert seen[0].url.host == "oauth.reddit.com" and seen[0].headers["authorization"] == "bearer abc"
