"""connectors/instagram.py: Graph API hashtag search + recent_media, rate limits as error codes."""

from __future__ import annotations

import httpx

from model.etl.connectors.base import Http
from model.etl.connectors.instagram import InstagramConnector

RECENT_MEDIA = {  # shaped as the IG Hashtag recent_media reference example, with the fields we ask for
    "data": [
        {
            "id": "17880997618081620",
            "media_type": "IMAGE",
            "media_url": "https://scontent.cdninstagram.com/a.jpg",
            "permalink": "https://www.instagram.com/p/A/",
            "timestamp": "2024-05-01T10:00:00+0000",
        },
        {"id": "17871527143187462", "media_type": "VIDEO", "media_url": "https://scontent.cdninstagram.com/v.mp4"},
        {
            "id": "17856134461174448",
            "media_type": "CAROUSEL_ALBUM",
            "permalink": "https://www.instagram.com/p/C/",
            "children": {
                "data": [
                    {"id": "1801", "media_type": "IMAGE", "media_url": "https://scontent.cdninstagram.com/c1.jpg"},
                    {"id": "1802", "media_type": "VIDEO", "media_url": "https://scontent.cdninstagram.com/c2.mp4"},
                    {"id": "1803", "media_type": "IMAGE", "media_url": "https://scontent.cdninstagram.com/c3.jpg"},
                ]
            },
        },
    ],
    "paging": {
        "cursors": {"after": "QVFIUkx"},
        "next": "https://graph.facebook.com/v21.0/x/recent_media?after=QVFIUkx",
    },
}


def test_hashtag_then_recent_media_with_carousels_and_rate_limit():
    calls, sleeps = [], []
    state = {"limited": 1}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        assert request.url.params["access_token"] == "tok" and request.url.params["user_id"] == "42"
        if request.url.path.endswith("/ig_hashtag_search"):
            assert request.url.params["q"] == "aiart"
            return httpx.Response(200, json={"data": [{"id": "17843853986012965"}]})
        if state["limited"]:
            state["limited"] -= 1  # "Application request limit reached": HTTP 403, code 4
            return httpx.Response(403, json={"error": {"message": "Application request limit reached", "code": 4}})
        return httpx.Response(200, json=RECENT_MEDIA)

    http = Http("instagram", client=httpx.Client(transport=httpx.MockTransport(handler)), sleep=sleeps.append)
    conn = InstagramConnector("tok", "42", http=http, base_url="https://graph.test/v21.0")
    page = conn.fetch("#AIArt", cursor=None, since=None)
    assert len(sleeps) == 1  # backed off once instead of failing
    assert [i.media_url.rsplit("/", 1)[-1] for i in page.items] == ["a.jpg", "c1.jpg", "c3.jpg"]
    assert [i.media_key for i in page.items] == ["", "1801", "1803"]
    assert page.next_cursor == "QVFIUkx" and page.posts == 3
    conn.fetch("aiart", cursor="QVFIUkx", since=None)
    assert calls.count("/v21.0/ig_hashtag_search") == 1  # the hashtag id is looked up once


def test_last_page_has_no_next():
    body = {"data": RECENT_MEDIA["data"][:1], "paging": {"cursors": {"after": "QVFIUkx"}}}

    def handler(request):
        if request.url.path.endswith("/ig_hashtag_search"):
            return httpx.Response(200, json={"data": [{"id": "1"}]})
        return httpx.Response(200, json=body)

    http = Http("instagram", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert InstagramConnector("t", "1", http=http).fetch("aiart", None, None).next_cursor is None
