"""One module per platform behind one interface (base.Connector); `get_connector(name)` builds one from env.

    conn = get_connector("mastodon")          # MASTODON_BASE_URL, optional MASTODON_TOKEN
    conn = get_connector("x")                 # X_BEARER_TOKEN
    conn = get_connector("instagram")         # INSTAGRAM_ACCESS_TOKEN, INSTAGRAM_USER_ID
    conn = get_connector("bluesky")           # BLUESKY_HANDLE + BLUESKY_APP_PASSWORD (or public AppView)
    conn = get_connector("reddit")            # REDDIT_USER_AGENT

Every platform's base URL is overridable (X_API_BASE_URL, INSTAGRAM_API_BASE_URL, MASTODON_BASE_URL,
BLUESKY_BASE_URL, REDDIT_BASE_URL): that is how tests and the benchmark reach the loopback fake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from model.etl.connectors.base import Connector, ConnectorError, MediaTooLarge, Page, RawPage

SOURCES = ("x", "instagram", "mastodon", "bluesky", "reddit")


def connector_class(name: str) -> type[Connector]:
    if name == "x":
        from model.etl.connectors.x import XConnector as cls
    elif name == "instagram":
        from model.etl.connectors.instagram import InstagramConnector as cls
    elif name == "mastodon":
        from model.etl.connectors.mastodon import MastodonConnector as cls
    elif name == "bluesky":
        from model.etl.connectors.bluesky import BlueskyConnector as cls
    elif name == "reddit":
        from model.etl.connectors.reddit import RedditConnector as cls
    else:
        raise ConnectorError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    return cls


def get_connector(name: str, environ: Mapping[str, str] = os.environ, **kw) -> Connector:
    return connector_class(name).from_env(environ, **kw)


__all__ = ["SOURCES", "Connector", "ConnectorError", "MediaTooLarge", "Page", "RawPage", "get_connector"]
