"""Frozen, versioned training manifests with sticky, leak-free splits.

    info = write_snapshot(Store.open())            # -> <home>/snapshots/v0003/{manifest.csv,snapshot.json}
    samples = read_manifest(info.csv, split="train")  # the trainer reads it like any manifest
    with mlflow.start_run():
        log_snapshot_input(info.csv)               # the snapshot becomes the run's dataset input

Splits are assigned once per image and stored with it, so an image keeps its split in every
later snapshot and the test split stays a fixed evaluation set as data grows. A new image takes
the split of its near duplicates (perceptual hash within `near_distance` bits) where it has any,
else the split its data set gave it, else one drawn from its sha256 (80/10/10). An image whose
near duplicates already sit in two different splits is left out (counted as `excluded_conflicts`),
so near duplicates never cross splits. Only labelled images are written; the label origin
(dataset, moderator, weak) goes with each row.

The manifest CSV has the standard columns path,label,source,split,origin (plus sha256 and
label_origin). Paths are absolute for a local object store; for S3 they are relative
(`objects/<key>`) and `materialize` downloads them beside the CSV. The sidecar JSON holds the
version, the digest (sha256 over the rows without paths: same content, same digest), and counts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from model.etl.db import Image, Snapshot, utcnow
from model.etl.store import PhashIndex, Store, StoreError, masked

SPLITS = ("train", "val", "test")
FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test shares for images with no other evidence
NEAR_DISTANCE = 8  # bits: more generous than ingest's dedupe: leakage costs more than a lost image
COLUMNS = ("path", "label", "source", "split", "origin", "sha256", "label_origin")
_SPLIT_ALIASES = {"validation": "val", "valid": "val", "dev": "val", "eval": "test"}


@dataclass(frozen=True)
class SnapshotInfo:
    version: int
    digest: str
    csv: Path
    sidecar: Path
    counts: dict
    created: bool  # False: identical to the latest snapshot, which is returned instead


def hash_split(sha: str) -> str:
    u = int(sha[:8], 16) / 2**32
    return "train" if u < FRACTIONS[0] else "val" if u < FRACTIONS[0] + FRACTIONS[1] else "test"


def canonical_split(split: str | None) -> str | None:
    if not split:
        return None
    s = _SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    return s if s in SPLITS else None


def assign_splits(store: Store, near_distance: int = NEAR_DISTANCE) -> dict:
    """Give every image without a split one; never changes an assigned split."""
    counts = {"assigned": 0, "excluded_conflicts": 0}
    with store.session("assigning splits") as s:
        images = s.scalars(select(Image).order_by(Image.first_seen, Image.sha256)).all()
        index = PhashIndex([i.sha256 for i in images], [i.phash for i in images])
        splits: list[str | None] = [i.split for i in images]
        for pos, img in enumerate(images):
            if img.split:
                continue
            near = {splits[j] for j in index.within(img.phash, near_distance) if j != pos and splits[j]}
            if len(near) > 1:
                counts["excluded_conflicts"] += 1
                continue
            split = near.pop() if near else canonical_split(img.source_split) or hash_split(img.sha256)
            img.split = splits[pos] = split
            counts["assigned"] += 1
    return counts


def _rows(store: Store) -> tuple[list[dict], int]:
    with store.session("reading labelled images") as s:
        images = s.scalars(
            select(Image).where(Image.label.is_not(None), Image.split.is_not(None)).order_by(Image.sha256)
        ).all()
        unlabelled = s.scalar(select(func.count()).select_from(Image).where(Image.label.is_(None))) or 0
    rows = []
    for img in images:
        local = store.objects.local_path(img.object_key)
        rows.append(
            {
                "path": str(local) if local is not None else f"objects/{img.object_key}",
                "label": img.label,
                "source": img.source,
                "split": img.split,
                "origin": img.origin or "",
                "sha256": img.sha256,
                "label_origin": img.label_origin or "",
            }
        )
    return rows, unlabelled


def digest_rows(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:  # paths depend on where the store lives; the content does not
        h.update("\t".join(r[c] for c in COLUMNS if c != "path").encode() + b"\n")
    return h.hexdigest()


def _counts(rows: list[dict]) -> dict:
    out: dict = {"total": len(rows), "by_split": {}, "by_label_origin": {}, "by_source": {}}
    for r in rows:
        by_split = out["by_split"].setdefault(r["split"], {})
        by_split[r["label"]] = by_split.get(r["label"], 0) + 1
        out["by_label_origin"][r["label_origin"]] = out["by_label_origin"].get(r["label_origin"], 0) + 1
        out["by_source"][r["source"]] = out["by_source"].get(r["source"], 0) + 1
    return out


def default_dir(settings=None) -> Path:
    if settings is None:
        from aidetect.settings import get_settings

        settings = get_settings()
    return Path(settings.home).expanduser() / "snapshots"


def write_snapshot(store: Store, out_dir: str | Path | None = None, near_distance: int = NEAR_DISTANCE) -> SnapshotInfo:
    """Assign splits, then write a new version unless the content equals the latest one."""
    out_dir = Path(out_dir).expanduser() if out_dir else default_dir()
    assigned = assign_splits(store, near_distance)
    rows, unlabelled = _rows(store)
    if not rows:
        raise StoreError("nothing to snapshot: no labelled images yet (import a data set or label some)")
    digest = digest_rows(rows)
    with store.session("reading snapshots") as s:
        latest = s.scalar(select(Snapshot).order_by(Snapshot.version.desc()).limit(1))
        if latest is not None and latest.digest == digest and Path(latest.path).is_file():
            sidecar = Path(latest.path).with_name("snapshot.json")
            return SnapshotInfo(latest.version, digest, Path(latest.path), sidecar, dict(latest.counts), False)
        version = (latest.version if latest else 0) + 1
    folder = out_dir / f"v{version:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    counts = {**_counts(rows), "unlabelled": unlabelled, "excluded_conflicts": assigned["excluded_conflicts"]}
    csv_path = folder / "manifest.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(csv_path, buf.getvalue())
    meta = {
        "version": version,
        "digest": digest,
        "created_at": utcnow().isoformat(),
        "counts": counts,
        "columns": list(COLUMNS),
        "near_distance": near_distance,
        "split_fractions": dict(zip(SPLITS, FRACTIONS, strict=True)),
        "object_store": store.objects.url,
        "database": masked(store.url),
    }
    sidecar = folder / "snapshot.json"
    _atomic_write(sidecar, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    with store.session("recording the snapshot") as s:
        s.add(Snapshot(version=version, digest=digest, path=str(csv_path), counts=counts))
    return SnapshotInfo(version, digest, csv_path, sidecar, counts, True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def materialize(snapshot_csv: str | Path, store: Store) -> int:
    """Download a snapshot's objects beside it (S3 stores), so its relative paths resolve; returns count."""
    snapshot_csv = Path(snapshot_csv)
    n = 0
    with snapshot_csv.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = Path(row["path"])
            if path.is_absolute():
                continue
            target = snapshot_csv.parent / path
            if target.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.objects.get(row["path"].removeprefix("objects/")))
            n += 1
    return n


def read_sidecar(snapshot_path: str | Path) -> tuple[Path, dict]:
    """(manifest.csv, sidecar dict) from either the CSV, the JSON or their folder."""
    p = Path(snapshot_path).expanduser()
    folder = p if p.is_dir() else p.parent
    csv_path = p if p.suffix == ".csv" else folder / "manifest.csv"
    sidecar = folder / "snapshot.json"
    if not csv_path.is_file() or not sidecar.is_file():
        raise StoreError(f"{p}: not a snapshot (need manifest.csv and snapshot.json side by side)")
    return csv_path, json.loads(sidecar.read_text(encoding="utf-8"))


def log_snapshot_input(snapshot_path: str | Path, context: str = "training"):
    """Log a snapshot as the active MLflow run's dataset input (mlflow.data from pandas); returns it."""
    import mlflow
    import pandas as pd

    csv_path, meta = read_sidecar(snapshot_path)
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    dataset = mlflow.data.from_pandas(
        df,
        source=str(csv_path.resolve()),
        targets="label",
        name=f"aidetect-snapshot-v{meta['version']:04d}",
        digest=meta["digest"][:32],
    )
    mlflow.log_input(dataset, context=context, tags={"snapshot_version": str(meta["version"])})
    mlflow.set_tags({"aidetect.snapshot.version": str(meta["version"]), "aidetect.snapshot.digest": meta["digest"]})
    return dataset
