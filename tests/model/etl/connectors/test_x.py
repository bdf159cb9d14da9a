"""connectors/x.py: X API v2 recent search, shaped as in the API reference's example response."""

from __future__ import annotations

import httpx

from model.etl.connectors.base import Http
from model.etl.connectors.x import XConnector

# Trimmed from the recent-search reference: posts, includes.media joined by media_keys, meta.next_token.
DOC_RESPONSE = {
    "data": [
        {
            "id": "1460323737035677698",
            "text": "Introducing a new era #aiart",
            "author_id": "2244994945",
            "created_at": "2021-11-15T19:08:05.000Z",
            "edit_history_tweet_ids": ["1460323737035677698"],
            "attachments": {"media_keys": ["3_1460323732589404162", "7_1460323732589404163"]},
        },
        {
            "id": "1460323737035677699",
            "text": "no media",
            "author_id": "2244994945",
            "edit_history_tweet_ids": ["1460323737035677699"],
        },
    ],
    "includes": {
        "media": [
            {
                "media_key": "3_1460323732589404162",
                "type": "photo",
                "url": "https://pbs.twimg.com/media/FEPdnAHXsAIvZ4r.jpg",
                "width": 1200,
                "height": 675,
            },
            {
                "media_key": "7_1460323732589404163",
                "type": "video",
                "preview_image_url": "https://pbs.twimg.com/ext_tw_video_thumb/1.jpg",
            },
        ],
        "users": [{"id": "2244994945", "name": "Developers", "username": "XDevelopers"}],
    },
    "meta": {
        "newest_id": "1460323737035677699",
        "oldest_id": "1460323737035677698",
        "result_count": 2,
        "next_token": "b26v89c19zqg8o3fpdy6h9j7ym0d1ti6vz9d0qsw8i7sd",
    },
}


def test_parses_the_documented_shape():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.url.params)
        seen["auth"] = request.headers["authorization"]
        return httpx.Response(200, json=DOC_RESPONSE)

    http = Http("x", client=httpx.Client(transport=httpx.MockTransport(handler)))
    page = XConnector("tok", http=http).fetch("aiart", cursor="abc", since="123")
    assert seen["auth"] == "Bearer tok"
    assert seen["query"] == "#aiart has:images -is:retweet" and seen["next_token"] == "abc"
    assert seen["since_id"] == "123" and "attachments.media_keys" in seen["expansions"]
    assert len(page.items) == 1  # the video is skipped
    item = page.items[0]
    assert item.media_url.endswith("FEPdnAHXsAIvZ4r.jpg") and item.author == "XDevelopers"
    assert item.post_url == "https://x.com/i/web/status/1460323737035677698"
    assert page.next_cursor == DOC_RESPONSE["meta"]["next_token"] and page.newest == "1460323737035677699"
    assert page.posts == 2


def test_query_building():
    assert XConnector.build_query("aiart") == "#aiart has:images -is:retweet"
    assert XConnector.build_query("from:nasa") == "from:nasa has:images -is:retweet"
    assert XConnector.build_query("midjourney OR dalle") == "midjourney OR dalle has:images -is:retweet"
