"""What every connector and loader produces: one media item with where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    source: str  # platform or data set: "mastodon", "cifake", ...
    post_id: str  # platform post id, or the file's path inside a data set
    media_key: str = ""  # which attachment of the post ("" when a post has one image)
    media_url: str | None = None  # where the bytes are fetched from (connectors)
    path: Path | None = None  # where the bytes are read from (loaders)
    post_url: str | None = None
    author: str | None = None  # raw account name; only its keyed hash is stored
    posted_at: str | None = None  # ISO 8601 as the platform gave it
    license: str | None = None
    label: str | None = None  # a data set's label ("real"/"ai"); None for social media
    source_split: str | None = None  # a data set's own split
    origin: str | None = None  # upstream sub-origin (data sets) or post URL
