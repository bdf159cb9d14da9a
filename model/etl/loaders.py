"""Labelled data sets in their published layouts -> the same Items (and, stored, the same manifest rows).

    items = cifake_items("/data/cifake")                           # train|test / REAL|FAKE / *.jpg
    items = cocofake_items("/data/cocofake", coco="/data/coco2014")  # fakes matched to COCO by image id
    items = manifest_items("../shared/data/manifest.csv")           # path,label,source,split,origin
    report = import_items(store, items)                              # hash, check, dedupe, store, label

CIFAKE (Bird & Lotfi 2023): 32x32 images, `train/` and `test/`, each with `REAL/` (CIFAR-10)
and `FAKE/` (Stable Diffusion 1.4).
COCOFake (Amoroso et al. 2023): for every COCO 2014 image, Stable Diffusion images generated
from its captions, in `<split>2014/<COCO file stem>/<k>.jpg`, where the folder is the real
image's name in COCO (`COCO_train2014_000000000009`), so pairs match by COCO image id; the real
images come from COCO 2014 itself (`<coco>/<split>2014/COCO_<split>2014_<12-digit id>.jpg`).
Each generated image keeps its real image's split, so a caption's pair never crosses splits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from model.etl.ingest import Ingestor, Policy, Report, _safe_analyse, process_batch
from model.etl.items import Item
from model.etl.store import Store
from model.manifest import read_manifest

# What a data set folder's images are named; each is then read (or quarantined) by model.preprocess.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".heic", ".heif", ".bmp", ".gif", ".tif", ".tiff"}
FORMATS = ("cifake", "cocofake", "manifest")
# Data sets keep near-duplicates (they are labelled, sometimes with different labels); snapshots
# keep each near-duplicate group inside one split instead.
DATASET_POLICY = Policy(drop_near_duplicates=False, weak_labels=False)


class LoaderError(ValueError):
    """A folder that is not in the layout asked for; the message says what was expected."""


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def cifake_items(root: str | Path, license: str | None = None) -> Iterator[Item]:
    root = Path(root).expanduser()
    splits = [d for d in ("train", "test") if (root / d).is_dir()]
    if not splits:
        raise LoaderError(f"{root}: not a CIFAKE folder (expected train/ and test/ with REAL/ and FAKE/ inside)")
    for split in splits:
        for cls, label in (("REAL", "real"), ("FAKE", "ai")):
            folder = root / split / cls
            if not folder.is_dir():
                raise LoaderError(f"{folder}: missing (CIFAKE has {split}/REAL and {split}/FAKE)")
            for path in _images(folder):
                rel = path.relative_to(root).as_posix()
                yield Item(
                    source="cifake",
                    post_id=rel,
                    path=path,
                    label=label,
                    source_split=split,
                    origin=f"{split}/{cls}",
                    license=license,
                )


_COCO_ID = re.compile(r"(\d+)$")


def coco_id(name: str) -> int | None:
    """COCO image id from a COCO file stem or folder name: COCO_val2014_000000000042 -> 42."""
    m = _COCO_ID.search(Path(name).stem)
    return int(m.group(1)) if m else None


def cocofake_items(root: str | Path, coco: str | Path | None = None, license: str | None = None) -> Iterator[Item]:
    root = Path(root).expanduser()
    coco_root = Path(coco).expanduser() if coco else _find_coco(root)
    split_dirs = [d for d in ("train2014", "val2014") if (root / d).is_dir()]
    if not split_dirs:
        raise LoaderError(f"{root}: not a COCOFake folder (expected train2014/ or val2014/ of <COCO stem>/ folders)")
    for split_dir in split_dirs:
        split = "train" if split_dir.startswith("train") else "val"
        real_dir = coco_root / split_dir
        if not real_dir.is_dir():
            raise LoaderError(f"{real_dir}: missing; COCOFake's real images are COCO 2014's ({split_dir}/)")
        reals = {coco_id(p.name): p for p in _images(real_dir)}
        for folder in sorted(d for d in (root / split_dir).iterdir() if d.is_dir()):
            image_id = coco_id(folder.name)
            fakes = _images(folder)
            if image_id is None or not fakes:
                continue
            origin = f"coco2014:{image_id}"
            real = reals.get(image_id)
            if real is not None:
                yield Item(
                    source="coco2014",
                    post_id=f"{split_dir}/{real.name}",
                    path=real,
                    label="real",
                    source_split=split,
                    origin=origin,
                    license=license,
                )
            for fake in fakes:
                yield Item(
                    source="cocofake",
                    post_id=fake.relative_to(root).as_posix(),
                    path=fake,
                    label="ai",
                    source_split=split,
                    origin=origin,
                    license=license,
                )


def _find_coco(root: Path) -> Path:
    for candidate in (root / "coco2014", root.parent / "coco2014", root / "coco", root.parent / "coco"):
        if candidate.is_dir():
            return candidate
    raise LoaderError(f"{root}: where are the real COCO 2014 images? pass --coco PATH (with train2014/, val2014/)")


def manifest_items(manifest: str | Path, license: str | None = None) -> Iterator[Item]:
    manifest = Path(manifest).expanduser()
    base = manifest.resolve().parent
    for s in read_manifest(manifest, check_files=False):
        try:
            rel = s.path.resolve().relative_to(base).as_posix()
        except ValueError:
            rel = str(s.path)
        yield Item(
            source=s.source,
            post_id=rel,
            path=s.path,
            label=s.label,
            source_split=s.split,
            origin=s.origin or None,
            license=license,
        )


def manifest_rows(items: Iterable[Item]) -> list[dict[str, str]]:
    """The standard manifest rows (path,label,source,split,origin) of labelled items, straight from a layout.

    `model.manifest.parse_rows` reads them, so a data set can be trained on without the store;
    the store path (import, then snapshot) adds dedupe, quarantine and sticky splits on top.
    """
    return [
        {
            "path": str(i.path),
            "label": i.label or "",
            "source": i.source,
            "split": i.source_split or "",
            "origin": i.origin or "",
        }
        for i in items
    ]


def load_items(fmt: str, path: str | Path, coco: str | Path | None = None, license: str | None = None):
    if fmt == "cifake":
        return cifake_items(path, license)
    if fmt == "cocofake":
        return cocofake_items(path, coco, license)
    if fmt == "manifest":
        return manifest_items(path, license)
    raise LoaderError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def import_items(
    store: Store,
    items: Iterable[Item],
    policy: Policy = DATASET_POLICY,
    batch: int = 256,
    max_bytes: int | None = None,
    workers: int = 2,
    name: str | None = None,
) -> Report:
    """Store every item (idempotent); unreadable files become quarantine records, not crashes."""
    import time

    items = iter(items)
    first = next(items, None)
    report = Report(name or (first.source if first else "empty"), "import")
    if first is None:
        return report
    t0 = time.perf_counter()
    ingestor = Ingestor(store, policy)
    limit = max_bytes or policy.decode.max_bytes
    pending: list[Item] = []

    def read(item: Item) -> tuple:
        """(item, data, error, quarantine, analysis): file reading and image checks, run in a thread pool."""
        try:
            size = item.path.stat().st_size
            if size > limit:
                return item, None, f"file is {size} bytes; the limit is {limit}", True, None
            data = item.path.read_bytes()
        except OSError as e:
            return item, None, f"unreadable file: {e}", True, None
        return item, data, None, False, _safe_analyse(data, policy)

    def flush() -> None:
        done = _recorded(store, pending)  # a re-import reads no file it already has
        todo = [i for i in pending if (i.source, i.post_id, i.media_key) not in done]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            batch = list(pool.map(read, todo))
        report.counts["seen"] += len(pending) - len(todo)
        process_batch(store, ingestor, batch, report.counts)
        report.pages += 1
        pending.clear()

    for item in _chain(first, items):
        pending.append(item)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    if not report.counts["seen"]:
        del report.counts["seen"]
    report.seconds = time.perf_counter() - t0
    return report


def _recorded(store: Store, items: list[Item]) -> set[tuple[str, str, str]]:
    """Keys of `items` already recorded in a final state (a failed read is tried again)."""
    from sqlalchemy import select

    from model.etl.db import Sighting

    post_ids = {i.post_id for i in items}
    with store.session("checking what is already imported") as s:
        rows = s.execute(
            select(Sighting.source, Sighting.post_id, Sighting.media_key).where(
                Sighting.post_id.in_(post_ids), Sighting.status != "failed"
            )
        ).all()
    return {tuple(r) for r in rows}


def _chain(first: Item, rest: Iterator[Item]) -> Iterator[Item]:
    yield first
    yield from rest


def count_labels(items: Iterable[Item]) -> Counter:
    return Counter((i.source, i.label, i.source_split) for i in items)
