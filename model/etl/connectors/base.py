"""The connector interface and the HTTP discipline every platform shares.

A connector turns one query (a hashtag, a subreddit, an author) into pages of media items:

    conn = get_connector("mastodon")                   # configured from the environment
    for page in conn.pages("aiart", state={}):         # state: what the last run stored
        ...                                            # page.items, then persist page.state

`pages` walks newest-first. The first page of a walk remembers the newest post id it saw; when
the walk ends (no next cursor), `since` becomes that id, so the next run asks only for newer
posts where the API allows it. A run stopped mid-walk stores `cursor` and resumes there.

HTTP: 429 waits for Retry-After (seconds or an HTTP date; X's x-rate-limit-reset otherwise), 5xx
and transport errors back off exponentially, 401/403 name the environment variable to fix, and a
body that is not the JSON shape we expect is a ConnectorError, never a KeyError deep inside.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import tenacity

from model.etl.items import Item

log = logging.getLogger(__name__)

USER_AGENT = "aidetect-ingest/0.1 (+https://github.com/aidetect; research data collection)"


class ConnectorError(RuntimeError):
    """A platform refused, failed or answered nonsense; the message says which and what to do."""


class MediaTooLarge(ConnectorError):
    """A media file over the byte limit: quarantined, not retried."""


@dataclass
class RawPage:
    items: list[Item]
    next_cursor: str | None  # None: this walk has ended
    newest: str | None = None  # newest post marker on this page (id or timestamp), for `since`
    posts: int = 0  # posts on the page, with or without images: 0 ends the walk
    malformed: int = 0  # posts skipped because their own fields made no sense


@dataclass
class Page:
    items: list[Item]
    state: dict = field(default_factory=dict)  # persist this once the items are stored
    malformed: int = 0


class Http:
    """httpx with retries: what every platform call goes through."""

    def __init__(
        self,
        name: str,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        max_wait: float = 900.0,
        timeout: float = 30.0,
    ):
        self.name = name
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})
        self.sleep = sleep
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.auth_hint = "credentials"
        # Platforms that signal rate limits without a 429 (the Graph API: 400/403 with error code 4, 17,
        # 32 or 613) set this to recognise them.
        self.rate_limited: Callable[[httpx.Response], bool] = lambda resp: False
        # ...and that signal a bad token without a 401 (the Graph API: 400 with error code 190).
        self.auth_failed: Callable[[httpx.Response], bool] = lambda resp: False

    def _retrying(self, failure: str) -> tenacity.Retrying:
        """Attempts of one call: a _Retry from the body waits (its Retry-After, else backoff) and goes again;
        after max_retries it becomes ConnectorError(failure + the last reason). Anything else goes straight up."""

        def wait(state: tenacity.RetryCallState) -> float:
            err = state.outcome.exception()
            return err.wait if err.wait is not None else _BACKOFF(state)

        def warn(state: tenacity.RetryCallState) -> None:
            log.warning("%s: %s; retrying in %.1fs", self.name, state.outcome.exception(), state.upcoming_sleep)

        def give_up(state: tenacity.RetryCallState):
            raise ConnectorError(f"{failure} after {state.attempt_number} attempts ({state.outcome.exception()})")

        return tenacity.Retrying(stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=wait,
                                 retry=tenacity.retry_if_exception_type(_Retry), sleep=self.sleep,
                                 before_sleep=warn, retry_error_callback=give_up)

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        for attempt in self._retrying(f"{self.name}: {_short(url)} still failing"):
            with attempt:
                try:
                    resp = self.client.request(method, url, **kw)
                except (httpx.TransportError, httpx.TimeoutException) as e:
                    raise _Retry(f"{type(e).__name__}: {e} from {_short(url)}") from None
                if resp.status_code == 429 or (resp.status_code >= 400 and self.rate_limited(resp)):
                    raise _Retry(f"{resp.status_code} rate limited from {_short(url)}", self._retry_after(resp))
                if resp.status_code >= 500:
                    raise _Retry(f"{resp.status_code} {resp.reason_phrase} from {_short(url)}")
                if resp.status_code in (401, 403) or (resp.status_code >= 400 and self.auth_failed(resp)):
                    raise ConnectorError(
                        f"{self.name}: access denied ({resp.status_code}) at {_short(url)}: "
                        f"{_api_message(resp)}; check {self.auth_hint}"
                    )
                if resp.status_code >= 400:
                    raise ConnectorError(f"{self.name}: {resp.status_code} from {_short(url)}: {_api_message(resp)}")
                return resp

    def json(self, method: str, url: str, **kw):
        resp = self.request(method, url, **kw)
        try:
            return resp.json()
        except ValueError:
            raise ConnectorError(f"{self.name}: malformed JSON from {_short(url)} ({resp.text[:80]!r})") from None

    def download(self, url: str, max_bytes: int) -> bytes:
        """Media bytes, streamed so a huge file is refused before it fills memory."""
        for attempt in self._retrying(f"{self.name}: media {_short(url)} failed"):
            with attempt:
                try:
                    with self.client.stream("GET", url) as resp:
                        if resp.status_code == 429:
                            raise _Retry("429 Too Many Requests", self._retry_after(resp))
                        if resp.status_code >= 500:
                            raise _Retry(f"{resp.status_code} {resp.reason_phrase}")
                        if resp.status_code >= 400:
                            raise ConnectorError(f"{self.name}: media {resp.status_code} at {_short(url)}")
                        declared = int(resp.headers.get("content-length") or 0)
                        if declared > max_bytes:
                            raise MediaTooLarge(f"media is {declared} bytes; the limit is {max_bytes}")
                        chunks, size = [], 0
                        for chunk in resp.iter_bytes():
                            size += len(chunk)
                            if size > max_bytes:
                                raise MediaTooLarge(f"media exceeds the {max_bytes}-byte limit")
                            chunks.append(chunk)
                        return b"".join(chunks)
                except (httpx.TransportError, httpx.TimeoutException) as e:
                    raise _Retry(f"{type(e).__name__}: {e}") from None

    def _retry_after(self, resp: httpx.Response, attempt: int = 0) -> float | None:
        """Seconds the platform asked to wait (Retry-After, seconds or a date; X's reset epoch), capped at
        max_wait; None when it said nothing, so the backoff decides. No library reads these headers."""
        value = resp.headers.get("retry-after")
        wait = None
        if value:
            try:
                wait = float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value) if value else None
                wait = when.timestamp() - time.time() if when else None
        elif resp.headers.get("x-rate-limit-reset"):  # X API v2: epoch seconds when the window resets
            try:
                wait = float(resp.headers["x-rate-limit-reset"]) - time.time()
            except ValueError:
                wait = None
        return None if wait is None else max(0.0, min(wait, self.max_wait))


class _Retry(Exception):
    """One failed attempt worth another: why, and how long the platform asked to wait (None: back off)."""

    def __init__(self, why: str, wait: float | None = None):
        super().__init__(why)
        self.wait = wait


# Equal jitter: half of 2^n seconds for sure, the other half at random; at most 60 s.
_BACKOFF = tenacity.wait_exponential(multiplier=0.5, max=30) + tenacity.wait_random_exponential(multiplier=0.5, max=30)


def _short(url: str) -> str:
    return url.split("?", 1)[0][:200]


def _api_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:160] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # Graph API
            return str(err.get("message") or err)[:200]
        for key in ("detail", "message", "error_description", "error", "title"):
            if body.get(key):
                return str(body[key])[:200]
        if isinstance(body.get("errors"), list) and body["errors"]:  # X API v2
            first = body["errors"][0]
            return str(first.get("message") or first.get("detail") or first)[:200]
    return str(body)[:160]


class Connector(ABC):
    name: ClassVar[str]
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str]
    license: ClassVar[str | None] = None  # platform terms; media licences are rarely machine-readable

    def __init__(self, base_url: str | None = None, http: Http | None = None, max_media_bytes: int = 20 << 20):
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.http = http or Http(self.name)
        self.max_media_bytes = max_media_bytes

    @classmethod
    @abstractmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **kw) -> Connector:
        """Configured from environment variables; ConnectorError names a missing one."""

    @abstractmethod
    def fetch(self, query: str, cursor: str | None, since: str | None) -> RawPage:
        """One page of the walk; `since` limits it to posts newer than a previous walk's newest."""

    def pages(self, query: str, state: dict | None = None) -> Iterator[Page]:
        state = dict(state or {})
        cursor, since, top = state.get("cursor"), state.get("since"), state.get("top")
        while True:
            raw = self.fetch(query, cursor, since)
            top = top or raw.newest  # the walk's first page holds its newest post
            if raw.next_cursor and raw.posts > 0:
                cursor = raw.next_cursor
                yield Page(raw.items, {"cursor": cursor, "since": since, "top": top}, raw.malformed)
            else:
                yield Page(raw.items, {"cursor": None, "since": top or since, "top": None}, raw.malformed)
                return

    def download(self, item: Item) -> bytes:
        if not item.media_url:
            raise ConnectorError(f"{self.name}: post {item.post_id} has no media URL")
        return self.http.download(item.media_url, self.max_media_bytes)


def require(environ: Mapping[str, str], var: str, what: str) -> str:
    value = (environ.get(var) or "").strip()
    if not value:
        raise ConnectorError(f"{var} is not set: it must hold {what}")
    return value


POST_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)


def collect_items(name: str, posts: Iterable, parse: Callable[[Any], list[Item]]) -> tuple[list[Item], int]:
    """Items of every post that parses; a post with nonsense fields is skipped and counted, so one bad
    post cannot block a page (and with it every later run, which would fetch the same page again)."""
    items, bad = [], 0
    for post in posts:
        try:
            items.extend(parse(post))
        except POST_ERRORS as e:
            bad += 1
            log.warning("%s: skipped a malformed post (%s: %s)", name, type(e).__name__, str(e)[:120])
    return items, bad


def shape_error(name: str, what: str, e: Exception) -> ConnectorError:
    return ConnectorError(f"{name}: unexpected response shape from {what} ({type(e).__name__}: {e})")
