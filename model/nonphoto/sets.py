"""Rendered non-photo sets on disk, stored exactly as the shared data is, with a manifest; cached per
manifest digest (memes caption the manifest's real photos)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from model.manifest import COLUMNS, Sample, read_manifest
from model.nonphoto.render import render_one
from model.nonphoto.styles import KINDS, SETTINGS, VERSION
from model.preprocess import PreprocessConfig, encode_jpeg, fit_to_size

STORE_QUALITY = 90  # the data set's JPEG quality (../shared/data/README.md)
SOURCE = {"train": "rendered-nonphoto-train", "eval": "rendered-nonphoto-eval"}
MANIFEST_SPLIT = {"train": "train", "eval": "test"}  # eval rows never join training or calibration when merged

DATASET_PRE = PreprocessConfig(size=256)  # the shared data's stored size, whatever a model later uses


def store_as_dataset(img: Image.Image) -> bytes:
    """The data set's own recipe (shorter side 256 LANCZOS, centre crop, JPEG q90 4:2:0, no metadata)."""
    return encode_jpeg(fit_to_size(img.convert("RGB"), DATASET_PRE), STORE_QUALITY)


def meme_photos(manifest: Path, setting: str) -> list[Path]:
    """Real camera photos to caption: the train split for the train setting, val for eval, so the eval memes
    never reuse a photo training saw. Non-photo real sources are left out (they are not photos)."""
    from model.sources import load_sources

    nonphoto = set(load_sources().nonphoto_real)
    split = "train" if setting == "train" else "val"
    real = read_manifest(manifest, split=split)
    return sorted(s.path for s in real if s.label == "real" and s.source not in nonphoto)


def write_set(
    out: Path,
    setting: str,
    n_per_kind: int,
    seed: int = 0,
    photos: Sequence[Path] = (),
    kinds: Sequence[str] = KINDS,
    on_item=None,
) -> Path:
    """Render n_per_kind images of each kind into out/<kind>/ and write out/manifest.csv; returns its path."""
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {sorted(SETTINGS)}")
    out = Path(out)
    rows = []
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_kind):
            data = store_as_dataset(render_one(setting, kind, seed, i, photos))
            rel = Path(kind) / f"{setting}-{seed}-{i:05d}.jpg"
            (out / rel).write_bytes(data)
            rows.append(
                {
                    "path": str(rel),
                    "label": "real",
                    "source": SOURCE[setting],
                    "split": MANIFEST_SPLIT[setting],
                    "origin": kind,
                }
            )
            if on_item:
                on_item()
    manifest = out / "manifest.csv"
    tmp = manifest.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(manifest)  # written last and atomically: a manifest means a complete set
    return manifest


def set_folder(cache: Path, setting: str, n_per_kind: int, seed: int, manifest: Path) -> Path:
    """Where cached_set keeps a set. Keyed by the manifest's digest too: memes caption its real photos, so a
    changed manifest must give a new set, never a stale one."""
    import hashlib

    digest = hashlib.sha256(Path(manifest).read_bytes()).hexdigest()[:12]
    return Path(cache) / f"nonphoto-v{VERSION}-{setting}-n{n_per_kind}-s{seed}-{digest}"


def cached_set(cache: Path, setting: str, n_per_kind: int, seed: int, manifest: Path, on_item=None) -> list[Sample]:
    """The rendered set as Samples, rendered once into `cache` and read from there afterwards."""
    folder = set_folder(cache, setting, n_per_kind, seed, manifest)
    m = folder / "manifest.csv"
    if not m.is_file():
        write_set(folder, setting, n_per_kind, seed, meme_photos(manifest, setting), on_item=on_item)
    return read_manifest(m)
