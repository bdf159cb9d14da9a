"""connectors/base.py: the walk, cursors and HTTP discipline, for every platform against the loopback fake."""

from __future__ import annotations

import httpx
import pytest

from aidetect.testing.fakeapi import Fault
from model.etl.connectors import SOURCES, ConnectorError, get_connector
from model.etl.connectors.base import Http

# Where each platform's fake answers page requests (for fault injection).
PAGE_PATH = {
    "x": "/tweets/search/recent",
    "instagram": "/recent_media",
    "mastodon": "/timelines/tag/",
    "bluesky": "/app.bsky.feed.searchPosts",
    "reddit": "/new.json",
}


def _conn(source, fake, sleeps=None, **kw):
    http = Http(source, sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw)
    return get_connector(source, fake.env(), http=http)


def _walk(conn, state=None):
    items, last = [], None
    for page in conn.pages("aiart", state or {}):
        items.extend(page.items)
        last = page.state
    return items, last


def _expected_media(fake) -> set[tuple[int, int]]:
    return {(p.n, m) for p in fake.posts for m in p.media}


@pytest.mark.parametrize("source", SOURCES)
def test_walk_returns_every_photo_once_and_skips_video(source, fake):
    items, state = _walk(_conn(source, fake))
    assert len(items) == len(_expected_media(fake))
    assert len({(i.post_id, i.media_key) for i in items}) == len(items)
    assert {i.media_url.rsplit("/", 1)[-1] for i in items} == {str(m) for p in fake.posts for m in p.media}
    assert all(i.source == source and i.post_url for i in items)
    assert not any("video" in i.media_url for i in items)
    assert state["cursor"] is None  # the walk ended


@pytest.mark.parametrize("source", ["x", "mastodon", "bluesky", "reddit"])
def test_next_walk_asks_only_for_newer_posts(source, fake, make_jpeg):
    conn = _conn(source, fake)
    _, state = _walk(conn)
    assert state["since"]
    assert _walk(conn, state)[0] == []
    fake.add_posts([make_jpeg((1, 2, 3)), make_jpeg((200, 2, 3))])
    newer, _ = _walk(conn, state)
    assert sorted(i.media_url.rsplit("/", 1)[-1] for i in newer) == [str(len(fake.media) - 2), str(len(fake.media) - 1)]


@pytest.mark.parametrize("source", SOURCES)
def test_resume_from_a_stored_cursor(source, fake):
    conn = _conn(source, fake)
    pages = conn.pages("aiart", {})
    first = next(pages)
    assert first.state["cursor"]
    rest, _ = _walk(_conn(source, fake), first.state)
    assert len(first.items) + len(rest) == len(_expected_media(fake))


@pytest.mark.parametrize("source", SOURCES)
def test_429_waits_for_retry_after(source, fake):
    sleeps: list[float] = []
    fake.faults.append(Fault(PAGE_PATH[source], 429, times=2, headers={"Retry-After": "7"}))
    items, _ = _walk(_conn(source, fake, sleeps))
    assert sleeps[:2] == [7.0, 7.0]
    assert len(items) == len(_expected_media(fake))


@pytest.mark.parametrize("source", SOURCES)
def test_5xx_backs_off_then_gives_a_clear_error(source, fake):
    sleeps: list[float] = []
    fake.faults.append(Fault(PAGE_PATH[source], 503, times=2))
    items, _ = _walk(_conn(source, fake, sleeps))
    assert len(sleeps) == 2 and 0 < sleeps[0] <= 1 < sleeps[1] <= 2  # exponential, with jitter
    assert len(items) == len(_expected_media(fake))
    fake.faults.append(Fault(PAGE_PATH[source], 502, times=10))
    with pytest.raises(ConnectorError, match="still failing after 3 attempts"):
        _walk(_conn(source, fake, [], max_retries=2))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"unexpected": [1, 2]}', b"[1, 2, 3]", b"null"])
def test_malformed_response_is_a_connector_error(source, body, fake):
    fake.faults.append(Fault(PAGE_PATH[source], 200, times=1, body=body))
    with pytest.raises(ConnectorError, match=source):
        _walk(_conn(source, fake))


@pytest.mark.parametrize(
    ("source", "var"),
    [("x", "X_BEARER_TOKEN"), ("instagram", "INSTAGRAM_ACCESS_TOKEN"), ("bluesky", "BLUESKY_APP_PASSWORD")],
)
def test_rejected_credentials_name_the_variable(source, var, fake):
    env = {**fake.env(), var: "wrong"}
    conn = get_connector(source, env, http=Http(source, sleep=lambda s: None))
    with pytest.raises(ConnectorError) as e:
        _walk(conn)
    assert var.split("_")[0] in str(e.value) and "access denied" in str(e.value)


@pytest.mark.parametrize(
    ("source", "var"), [("x", "X_BEARER_TOKEN"), ("instagram", "INSTAGRAM_USER_ID"), ("mastodon", "MASTODON_BASE_URL")]
)
def test_missing_configuration_names_the_variable(source, var, fake):
    env = {k: v for k, v in fake.env().items() if k != var}
    with pytest.raises(ConnectorError, match=var):
        get_connector(source, env)


def test_unknown_source():
    with pytest.raises(ConnectorError, match="unknown source"):
        get_connector("myspace", {})


def test_transport_errors_are_retried_then_reported():
    calls = []

    def refuse(request):
        calls.append(request.url)
        raise httpx.ConnectError("connection refused")

    http = Http("x", client=httpx.Client(transport=httpx.MockTransport(refuse)), sleep=lambda s: None, max_retries=3)
    with pytest.raises(ConnectorError, match="ConnectError"):
        http.json("GET", "http://127.0.0.1:9/anything")
    assert len(calls) == 4


def test_retry_after_http_date_and_cap():
    http = Http("x", max_wait=30)
    resp = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert http._retry_after(resp, 0) == 0.0  # a date in the past: go now
    assert http._retry_after(httpx.Response(429, headers={"Retry-After": "3600"}), 0) == 30


def test_media_over_the_limit_is_refused_while_streaming(fake):
    from model.etl.connectors.base import MediaTooLarge

    conn = _conn("mastodon", fake)
    item = _walk(conn)[0][0]
    conn.max_media_bytes = 100
    with pytest.raises(MediaTooLarge):
        conn.download(item)


@pytest.mark.parametrize("source", SOURCES)
def test_a_malformed_post_is_skipped_not_the_page(source, fake):
    fake.broken = {3, 17}
    items = []
    malformed = 0
    for page in _conn(source, fake).pages("aiart", {}):
        items.extend(page.items)
        malformed += page.malformed
    broken_media = sum(len(p.media) for p in fake.posts if p.n in fake.broken)
    assert malformed == 2 and len(items) == len(_expected_media(fake)) - broken_media
