"""The store API: image bytes in the object store, everything else in the database.

    from model.etl.store import Store
    store = Store.open()                               # AIDETECT_STORE_URL, AIDETECT_OBJECT_STORE
    store.record_label(sha, "ai", moderator="alice")       # what the service calls after a review
    store.stats()

Every database failure (server down, wrong password, locked file) surfaces as StoreError with a
one-line message that names the database (password masked), never as a driver traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from model.etl.db import (
    LABEL_ORIGINS,
    ORIGIN_RANK,
    Cursor,
    Image,
    LabelEvent,
    Sighting,
    connect,
    migrate,
    utcnow,
)
from model.etl.objects import Objects, ObjectStoreError, open_objects
from model.manifest import LABELS, normalise_label


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message is meant for the user."""


def default_urls(settings=None) -> tuple[str, str]:
    """(database URL, object store) from settings: SQLite and a directory under AIDETECT_HOME by default."""
    if settings is None:
        from aidetect.settings import get_settings

        settings = get_settings()
    home = Path(settings.home).expanduser()
    url = settings.store_url or f"sqlite:///{home / 'etl.db'}"
    objects = settings.object_store or str(home / "objects")
    return url, objects


def masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def hash_author(source: str, author: str | None) -> str | None:
    """Keyed hash of an account name: lets us count per author without storing who they are."""
    if not author:
        return None
    key = os.environ.get("AIDETECT_AUTHOR_SALT", "aidetect-author-v1").encode()
    return hmac.new(key, f"{source}:{author}".encode(), hashlib.sha256).hexdigest()


class Store:
    def __init__(self, engine: Engine, objects: Objects, url: str = ""):
        self.engine = engine
        self.objects = objects
        self.url = url or str(engine.url)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str | None = None, objects: str | Objects | None = None, settings=None, upgrade: bool = True
    ) -> Store:
        if url is None or objects is None:
            default_url, default_objects = default_urls(settings)
            url = url or default_url
            objects = objects or default_objects
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = connect(url)
        except Exception as e:
            raise StoreError(f"bad database URL {masked(url)}: {e}") from None
        store = cls(engine, open_objects(objects) if isinstance(objects, str | Path) else objects, url)
        if upgrade:
            with store.guard("migrating"):
                migrate(engine)
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- sessions and error translation ---

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError, ProgrammingError) as e:
            detail = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e) else type(e).__name__
            raise StoreError(f"database {masked(self.url)} failed while {doing}: {detail}") from None
        except IntegrityError as e:
            detail = str(getattr(e, "orig", e)).strip().splitlines()[0]
            raise StoreError(
                f"database {masked(self.url)}: another writer stored the same rows first while {doing} ({detail}); "
                "nothing of this batch was kept, run again to continue"
            ) from None
        except ObjectStoreError as e:
            raise StoreError(str(e)) from None

    @contextmanager
    def session(self, doing: str = "working") -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self.guard(doing), self._sessions.begin() as s:
            yield s

    # --- images and sightings ---

    def find_sighting(self, s: Session, source: str, post_id: str, media_key: str = "") -> Sighting | None:
        return s.scalar(
            select(Sighting).where(
                Sighting.source == source, Sighting.post_id == post_id, Sighting.media_key == media_key
            )
        )

    def image_path(self, img: Image) -> Path | None:
        return self.objects.local_path(img.object_key)

    def set_label(
        self,
        s: Session,
        img: Image,
        label: str,
        origin: str,
        moderator: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record a label event and update the image's current label by origin precedence."""
        s.add(LabelEvent(sha256=img.sha256, label=label, origin=origin, moderator=moderator, note=note))
        current = ORIGIN_RANK.get(img.label_origin or "", -1)
        rank = ORIGIN_RANK[origin]
        if img.label_origin == "conflict" and origin != "moderator":
            return  # only a person settles a conflict
        if rank > current or (origin == "moderator" and rank == current):
            img.label, img.label_origin = label, origin
        elif rank == current and img.label != label:
            # Two data sets (or two metadata hints) disagree about the same bytes: keep it out of training.
            img.label, img.label_origin = None, "conflict"

    def record_label(
        self,
        sha256: str,
        label: str,
        moderator: str | None = None,
        note: str | None = None,
        origin: str = "moderator",
    ) -> dict:
        """A reviewed label for a stored image; it enters the next snapshot with its label origin."""
        norm = normalise_label(label or "")
        if norm is None:
            raise StoreError(f"label {label!r} is not one of {sorted(LABELS)}")
        if origin not in LABEL_ORIGINS:
            raise StoreError(f"label origin {origin!r} is not one of {list(LABEL_ORIGINS)}")
        with self.session("recording a label") as s:
            img = s.get(Image, sha256)
            if img is None:
                raise StoreError(f"no stored image with sha256 {sha256}; ingest or import it first")
            self.set_label(s, img, norm, origin, moderator=moderator, note=note)
            return {"sha256": sha256, "label": img.label, "label_origin": img.label_origin}

    def phash_index(self) -> PhashIndex:
        with self.session("loading perceptual hashes") as s:
            rows = s.execute(select(Image.sha256, Image.phash)).all()
        return PhashIndex([r[0] for r in rows], [r[1] for r in rows])

    # --- cursors ---

    def get_cursor(self, source: str, query: str) -> dict:
        with self.session("reading the cursor") as s:
            row = s.get(Cursor, (source, query))
            return dict(row.state) if row else {}

    def set_cursor(self, s: Session, source: str, query: str, state: dict) -> None:
        row = s.get(Cursor, (source, query))
        if row is None:
            s.add(Cursor(source=source, query=query, state=state, updated_at=utcnow()))
        else:
            row.state, row.updated_at = dict(state), utcnow()

    # --- reporting ---

    def stats(self) -> dict:
        with self.session("counting") as s:
            images = s.scalar(select(func.count()).select_from(Image)) or 0

            def count_by(col):
                return dict(s.execute(select(col, func.count()).group_by(col)).all())

            by_label, by_source = count_by(Image.label_origin), count_by(Image.source)
            labels, splits, statuses = count_by(Image.label), count_by(Image.split), count_by(Sighting.status)
            reasons = s.execute(
                select(Sighting.reason, func.count())
                .where(Sighting.status == "quarantined")
                .group_by(Sighting.reason)
                .order_by(func.count().desc())
                .limit(10)
            ).all()
        return {
            "images": images,
            "by_source": {("none" if k is None else str(k)): v for k, v in by_source.items()},
            "by_label": {("none" if k is None else str(k)): v for k, v in labels.items()},
            "by_label_origin": {("none" if k is None else str(k)): v for k, v in by_label.items()},
            "by_split": {("none" if k is None else str(k)): v for k, v in splits.items()},
            "sightings": {("none" if k is None else str(k)): v for k, v in statuses.items()},
            "top_quarantine_reasons": [{"reason": r, "count": c} for r, c in reasons],
            "database": masked(self.url),
            "objects": self.objects.url,
        }


class PhashIndex:
    """Perceptual hashes in memory; Hamming distances to all of them in one vectorised pass."""

    def __init__(self, shas: list[str] | None = None, hashes: list[str] | None = None):
        self.shas: list[str] = list(shas or [])
        bits = np.array([int(h, 16) for h in hashes or []], dtype=np.uint64)
        self._buf = np.zeros(max(1024, 2 * len(bits)), dtype=np.uint64)  # grows by doubling
        self._buf[: len(bits)] = bits

    def __len__(self) -> int:
        return len(self.shas)

    def distances(self, phash: str) -> np.ndarray:
        bits = self._buf[: len(self.shas)]
        return np.bitwise_count(bits ^ np.uint64(int(phash, 16))).astype(np.int64)

    def nearest(self, phash: str, max_distance: int) -> tuple[str, int] | None:
        d = self.distances(phash)
        if d.size == 0:
            return None
        i = int(d.argmin())
        return (self.shas[i], int(d[i])) if d[i] <= max_distance else None

    def within(self, phash: str, max_distance: int) -> list[int]:
        return np.flatnonzero(self.distances(phash) <= max_distance).tolist()

    def add(self, sha: str, phash: str) -> None:
        n = len(self.shas)
        if n == len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros(n, dtype=np.uint64)])
        self._buf[n] = np.uint64(int(phash, 16))
        self.shas.append(sha)


_DEFAULT_STORE: Store | None = None


def default_store() -> Store:
    """The store the settings describe, opened (and migrated) once per process."""
    global _DEFAULT_STORE
    if _DEFAULT_STORE is None:
        _DEFAULT_STORE = Store.open()
    return _DEFAULT_STORE


def record_label(
    sha256: str, label: str, moderator: str | None = None, note: str | None = None, store: Store | None = None
) -> dict:
    """For the service: a moderator's verdict on a stored image; it enters the next snapshot.

    Returns {"sha256", "label", "label_origin"}; StoreError (one line, user-facing) when the label
    is invalid, the image unknown or the database unreachable.
    """
    return (store or default_store()).record_label(sha256, label, moderator=moderator, note=note)
