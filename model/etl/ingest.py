"""Collect: fetch -> hash -> dedupe -> check -> quarantine or store, one page per transaction.

    report = ingest_source(get_connector("mastodon"), "aiart", Store.open(), limit=200)
    run_every(parse_duration("15m"), lambda: ingest_source(...))   # the scheduled mode (--every)

Why nothing is lost when the process dies: image bytes go to the content-addressed object store
first (atomic, idempotent), then one database transaction records the page's sightings, images,
labels and the cursor that points past the page. Killed mid-page, the transaction rolls back, the
cursor still points at the page, and the next run does it again; objects written twice are the
same objects. Why a second run adds nothing: every (source, post id, media key) is recorded once,
in whatever state it ended (stored, duplicate, near duplicate, quarantined), and the cursor asks
the platform only for what is newer.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from model.etl.connectors.base import Connector, ConnectorError, MediaTooLarge
from model.etl.db import Image, Sighting, utcnow
from model.etl.hashing import phash_hex, sha256_hex
from model.etl.items import Item
from model.etl.objects import ObjectStoreError
from model.etl.store import PhashIndex, Store, StoreError, hash_author
from model.preprocess import ImageError, PreprocessConfig, decode_image, image_format
from model.provenance import extract_provenance, weak_label

log = logging.getLogger(__name__)

MAX_DOWNLOAD_ATTEMPTS = 3  # runs in which a download may fail before the item is quarantined


@dataclass(frozen=True)
class Policy:
    near_distance: int = 4  # bits (of 64): perceptual-hash distance at or under which images are near copies
    drop_near_duplicates: bool = True  # social media: keep one; data sets keep theirs (snapshots group them)
    weak_labels: bool = True  # label "ai" from unambiguous provenance metadata
    decode: PreprocessConfig = field(default_factory=PreprocessConfig)  # byte and pixel limits


@dataclass
class Report:
    source: str
    query: str
    counts: Counter = field(default_factory=Counter)
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "query": self.query,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            **dict(self.counts),
        }


@dataclass(frozen=True)
class Analysis:
    """What the bytes alone tell: computed in worker threads, off the database transaction."""

    sha: str
    error: ImageError | None = None  # why the bytes are not an acceptable image
    phash: str | None = None
    width: int = 0
    height: int = 0
    provenance: dict | None = None


def analyse(data: bytes, policy: Policy) -> Analysis:
    sha = sha256_hex(data)
    try:
        img = decode_image(data, policy.decode)
    except ImageError as e:
        return Analysis(sha, error=e)
    return Analysis(sha, None, phash_hex(img), img.width, img.height, extract_provenance(data))


def _safe_analyse(data: bytes | None, policy: Policy) -> Analysis | None:
    if data is None:
        return None
    try:
        return analyse(data, policy)
    except Exception:  # re-done inside the item's savepoint, where a failure is recorded against the item
        return None


class Ingestor:
    """Decides what happens to one item's bytes and records it in the caller's transaction."""

    def __init__(self, store: Store, policy: Policy = Policy(), index: PhashIndex | None = None):
        self.store = store
        self.policy = policy
        self.index = index if index is not None else store.phash_index()
        self.handled: set[tuple[str, str, str]] = set()  # this run's items: a failed one is tried once a run
        # Rows of the current batch looked up in two queries instead of two per item (see prefetch).
        self._sightings: dict[tuple[str, str, str], Sighting | None] = {}
        self._images: dict[str, Image | None] = {}

    def prefetch(self, s: Session, entries: list[tuple]) -> None:
        """Load the batch's existing sightings and images; a miss in these maps is then known absent."""
        self._sightings, self._images = {}, {}
        keys = {(e[0].source, e[0].post_id, e[0].media_key) for e in entries}
        post_ids = {k[1] for k in keys}
        for row in s.scalars(select(Sighting).where(Sighting.post_id.in_(post_ids))):
            self._sightings[(row.source, row.post_id, row.media_key)] = row
        self._sightings.update({k: None for k in keys - self._sightings.keys()})
        shas = {e[4].sha for e in entries if len(e) > 4 and e[4] is not None}
        found = {img.sha256: img for img in s.scalars(select(Image).where(Image.sha256.in_(shas)))} if shas else {}
        self._images = {sha: found.get(sha) for sha in shas}

    def forget(self, item: Item, analysis: Analysis | None) -> None:
        """After a rolled-back item: its cached rows may not exist any more."""
        self._sightings.pop((item.source, item.post_id, item.media_key), None)
        if analysis is not None:
            self._images.pop(analysis.sha, None)

    def process(
        self,
        s: Session,
        item: Item,
        data: bytes | None,
        error: str | None = None,
        query: str | None = None,
        quarantine: bool = False,
        analysis: Analysis | None = None,
    ) -> str:
        """Record `item` and return its status; `error` without data is a failed fetch."""
        key = (item.source, item.post_id, item.media_key)
        if key in self.handled:
            return "seen"
        self.handled.add(key)
        if key in self._sightings:
            row = self._sightings[key]
        else:
            row = self.store.find_sighting(s, item.source, item.post_id, item.media_key)
        if row is not None and row.status != "failed":
            return "seen"
        if row is None:
            row = Sighting(
                source=item.source,
                query=_clip(query, 200),
                post_id=_clip(item.post_id, 200),
                media_key=_clip(item.media_key, 200),
                post_url=_clip(item.post_url, 1000),
                media_url=_clip(item.media_url or (str(item.path) if item.path else None), 2000),
                author_hash=hash_author(item.source, item.author),
                posted_at=_clip(item.posted_at, 40),
                license=_clip(item.license, 200),
                status="failed",
                attempts=0,
            )
            s.add(row)
            self._sightings[key] = row
        row.fetched_at = utcnow()
        if data is None:
            row.attempts = (row.attempts or 0) + 1
            if quarantine:
                row.status, row.reason = "quarantined", error
            elif row.attempts >= MAX_DOWNLOAD_ATTEMPTS:
                row.status, row.reason = "quarantined", f"fetch failed {row.attempts} times: {error}"
            else:
                row.status, row.reason = "failed", error
            return row.status
        row.reason = None
        a = analysis or analyse(data, self.policy)
        sha = a.sha
        row.content_sha256 = sha
        existing = self._images[sha] if sha in self._images else s.get(Image, sha)
        if existing is not None:
            row.status, row.image_sha256 = "duplicate", sha
            self._label(s, existing, item, None)
            return row.status
        if a.error is not None:
            row.status, row.reason = "quarantined", f"{a.error.message} (HTTP {a.error.status})"
            return row.status
        ph = a.phash
        near = self.index.nearest(ph, self.policy.near_distance) if self.policy.drop_near_duplicates else None
        if near is not None:
            row.status, row.image_sha256 = "near_duplicate", near[0]
            row.reason = f"perceptual hash within {near[1]} bits of {near[0][:16]}"
            return row.status
        key = self.store.objects.put(sha, data)
        prov = a.provenance
        image = Image(
            sha256=sha,
            object_key=key,
            size_bytes=len(data),
            width=a.width,
            height=a.height,
            format=image_format(data),
            phash=ph,
            source=item.source,
            origin=_clip(item.origin or item.post_url, 1000),
            first_seen=utcnow(),
            c2pa=prov["c2pa"],
            iptc_digital_source_type=_clip(prov["iptc_digital_source_type"], 64),
            generator=_clip(prov["generator"], 200),
            software=_clip(prov["software"], 200),
            ai_hint=bool(prov["ai_hint"]),
            source_split=_clip(item.source_split, 16),
        )
        s.add(image)
        s.flush()
        self._images[sha] = image
        row.status, row.image_sha256 = "stored", sha
        self._label(s, image, item, prov)
        self.index.add(sha, ph)
        return row.status

    def _label(self, s: Session, image: Image, item: Item, prov: dict | None) -> None:
        if item.label:
            self.store.set_label(s, image, item.label, "dataset")
        elif prov is not None and self.policy.weak_labels and weak_label(prov):
            self.store.set_label(s, image, weak_label(prov), "weak", note=",".join(prov["evidence"])[:500])


def _clip(value: str | None, n: int) -> str | None:
    return None if value is None else str(value)[:n]


def process_batch(
    store: Store,
    ingestor: Ingestor,
    items: Iterable[tuple],
    counts: Counter,
    query: str | None = None,
    after: Callable[[Session], None] | None = None,
) -> None:
    """One transaction for a batch of (item, data, error, quarantine[, analysis]); a bad item is recorded
    as quarantined, never takes its batch down."""
    items = list(items)
    with store.session("storing a batch") as s:
        ingestor.prefetch(s, items)
        for item, data, error, quarantine, *rest in items:
            try:
                with s.begin_nested():
                    status = ingestor.process(
                        s, item, data, error, query=query, quarantine=quarantine, analysis=rest[0] if rest else None
                    )
            except (StoreError, ObjectStoreError, OperationalError, InterfaceError, IntegrityError):
                raise  # the store itself is failing: abort the batch (nothing committed), never blame the item
            except Exception as e:  # one item's bad metadata (or a bug) must not lose the batch
                log.exception("item %s/%s failed", item.source, item.post_id)
                ingestor.handled.discard((item.source, item.post_id, item.media_key))
                ingestor.forget(item, rest[0] if rest else None)
                with s.begin_nested():
                    status = ingestor.process(
                        s,
                        item,
                        None,
                        f"internal error: {type(e).__name__}: {e}"[:500],
                        query=query,
                        quarantine=True,
                    )
            counts[status] += 1
        if after is not None:
            after(s)


def _download_all(conn: Connector, items: list[Item], workers: int, policy: Policy = Policy()) -> list[tuple]:
    """(item, data, error, quarantine, analysis) per item; downloads and image checks run in parallel."""

    def one(item: Item):
        try:
            data = conn.download(item)
        except MediaTooLarge as e:
            return item, None, str(e), True, None
        except ConnectorError as e:
            return item, None, str(e), False, None
        return item, data, None, False, _safe_analyse(data, policy)

    if workers <= 1 or len(items) <= 1:
        return [one(i) for i in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, items))


def retry_failed(
    conn: Connector, store: Store, ingestor: Ingestor, query: str, counts: Counter, workers: int = 4
) -> None:
    """Downloads that failed in an earlier run get another try before new pages are read."""
    with store.session("listing failed downloads") as s:
        rows = s.scalars(
            select(Sighting).where(Sighting.source == conn.name, Sighting.query == query, Sighting.status == "failed")
        ).all()
        items = [
            Item(
                source=r.source,
                post_id=r.post_id,
                media_key=r.media_key,
                media_url=r.media_url,
                post_url=r.post_url,
            )
            for r in rows
        ]
    if not items:
        return
    process_batch(store, ingestor, _download_all(conn, items, workers, ingestor.policy), counts, query=query)


def ingest_source(
    conn: Connector,
    query: str,
    store: Store,
    limit: int | None = None,
    policy: Policy = Policy(),
    workers: int = 4,
) -> Report:
    """Collect `query` from `conn` until the walk ends or `limit` items were looked at (page granular)."""
    report = Report(conn.name, query)
    t0 = time.perf_counter()
    try:
        ingestor = Ingestor(store, policy)
        retry_failed(conn, store, ingestor, query, report.counts, workers)
        state = store.get_cursor(conn.name, query)
        seen = 0
        for page in conn.pages(query, state):
            batch = _download_all(conn, page.items, workers, policy)
            if page.malformed:
                report.counts["malformed_posts"] += page.malformed
            process_batch(
                store,
                ingestor,
                batch,
                report.counts,
                query=query,
                after=lambda s, st=page.state: store.set_cursor(s, conn.name, query, st),
            )
            report.pages += 1
            seen += len(page.items)
            log.info(
                "%s %r: page %d, %d items, %s",
                conn.name,
                query,
                report.pages,
                len(page.items),
                dict(report.counts),
            )
            if limit is not None and seen >= limit:
                break
    except (ConnectorError, StoreError, ObjectStoreError) as e:
        report.error = str(e)
    finally:
        report.seconds = time.perf_counter() - t0
    return report


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> float:
    """'15m' -> 900.0; units s, m, h, d (seconds when none)."""
    m = _DURATION.match(text or "")
    if not m:
        raise ValueError(f"cannot read duration {text!r}; write e.g. 30s, 15m, 1h")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if value <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return value


def run_every(
    interval: float,
    job: Callable[[], Report],
    runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Report]:
    """Run `job` every `interval` seconds, start to start; a failed run is logged, the next still comes."""
    reports = []
    n = 0
    while runs is None or n < runs:
        started = clock()
        report = job()
        reports.append(report)
        n += 1
        if report.error:
            log.error("run %d failed: %s", n, report.error)
        if runs is not None and n >= runs:
            break
        sleep(max(0.0, interval - (clock() - started)))
    return reports
