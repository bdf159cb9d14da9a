"""A small labelled image set that a detector learns in a few steps: "ai" images are smooth, "real" ones
carry sensor-like noise. Each image has its own low-frequency layout, so perceptual hashes differ and
the ETL keeps every image (no near duplicates across splits)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

COUNTS = {"train": 48, "val": 24, "test": 24}


def _image(rng: np.random.Generator, label: str, size: int) -> np.ndarray:
    layout = Image.fromarray(rng.integers(30, 225, (4, 4, 3)).astype(np.uint8)).resize((size, size),
                                                                                        Image.Resampling.BICUBIC)
    base = np.asarray(layout).astype(np.float32)
    noise = rng.normal(0, 40 if label == "real" else 2, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def make_dataset(root: Path, counts: dict[str, int] = COUNTS, size: int = 64, seed: int = 0) -> Path:
    """Write PNGs and manifest.csv (path,label,source,split,origin) under root; returns the manifest."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in counts.items():
        for i in range(n):
            label = "ai" if i % 2 else "real"
            path = root / "images" / split / f"{label}-{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_image(rng, label, size)).save(path)
            rows.append({"path": str(path.relative_to(root)), "label": label, "source": "synthetic",
                         "split": split, "origin": "tests/ci"})
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "source", "split", "origin"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


# A recipe sized for these images: small inputs, no augmentation that would blur the cue away.
RECIPE = """\
spec:
  arch: efficientnet-lite0
  pretrained: true
pre:
  size: 64
aug:
  crop: 48
  jpeg_prob: 0.0
  rescale_prob: 0.0
batch_size: 16
threads: 2
"""
