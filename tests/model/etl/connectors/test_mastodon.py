"""connectors/mastodon.py: Status entities, boosts, Link-header pagination, public timeline."""

from __future__ import annotations

import httpx

from model.etl.connectors.base import Http
from model.etl.connectors.mastodon import MastodonConnector

STATUS = {  # trimmed from the Status entity reference
    "id": "103270115826048975",
    "created_at": "2019-12-08T03:48:33.901Z",
    "visibility": "public",
    "uri": "https://mastodon.social/users/Gargron/statuses/103270115826048975",
    "url": "https://mastodon.social/@Gargron/103270115826048975",
    "account": {"id": "1", "username": "Gargron", "acct": "Gargron"},
    "media_attachments": [
        {
            "id": "22345792",
            "type": "image",
            "url": "https://files.mastodon.social/media_attachments/files/original/a.png",
            "preview_url": "https://files.mastodon.social/small/a.png",
            "remote_url": None,
        },
        {"id": "22345793", "type": "gifv", "url": "https://files.mastodon.social/original/b.mp4"},
    ],
    "reblog": None,
}


def test_statuses_boosts_and_link_pagination():
    seen = []
    boost = {
        "id": "103270115826048976",
        "reblog": {**STATUS, "id": "99"},
        "account": {"acct": "booster"},
        "media_attachments": [],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        link = (
            '<https://mastodon.social/api/v1/timelines/public?max_id=103270115826048975>; rel="next", '
            '<https://mastodon.social/api/v1/timelines/public?min_id=103270115826048976>; rel="prev"'
        )
        return httpx.Response(200, json=[boost, STATUS], headers={"Link": link})

    http = Http("mastodon", client=httpx.Client(transport=httpx.MockTransport(handler)))
    conn = MastodonConnector(token="secret", http=http, base_url="https://mastodon.social")
    page = conn.fetch("public", cursor=None, since="5")
    req = seen[0]
    assert req.url.path == "/api/v1/timelines/public" and req.url.params["only_media"] == "true"
    assert req.url.params["since_id"] == "5" and req.headers["authorization"] == "Bearer secret"
    assert [(i.post_id, i.media_key) for i in page.items] == [("99", "22345792"), ("103270115826048975", "22345792")]
    assert page.items[0].author == "Gargron"  # a boost is credited to the original author
    assert page.next_cursor == "103270115826048975" and page.newest == "103270115826048976"
    conn.fetch("#AIArt", cursor="7", since=None)
    assert seen[1].url.path == "/api/v1/timelines/tag/AIArt" and seen[1].url.params["max_id"] == "7"
    assert "authorization" in seen[1].headers
