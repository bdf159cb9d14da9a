"""Images and targets for Qwen training: a manifest (or a snapshot folder holding manifest.csv).

Sample order, flips and prompt choice are functions of (seed, position in the global stream) only,
so a run on N ranks sees exactly the global batches a run on 1 rank sees.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from model.manifest import ManifestError, Sample, read_manifest, subsample
from model.preprocess import PreprocessConfig, decode_image

from .config import QwenConfig
from .vision import fit_image


def manifest_path(cfg: QwenConfig) -> Path:
    if cfg.manifest is None:
        from aidetect.settings import get_settings

        return get_settings().manifest
    p = Path(cfg.manifest).expanduser()
    return p / "manifest.csv" if p.is_dir() else p


def load_split(cfg: QwenConfig, split: str, limit: int | None) -> list[Sample]:
    path = manifest_path(cfg)
    samples = read_manifest(path, split=split, sources=cfg.train_sources)
    if not samples:
        wanted = f" from sources {list(cfg.train_sources)}" if cfg.train_sources else ""
        raise ManifestError(f"{path}: no {split!r} samples{wanted}")
    if limit is not None and limit < len(samples):
        # balanced and reproducible: the same per-(source, label) share every time
        groups = max(1, len({(s.source, s.label) for s in samples}))
        samples = subsample(samples, max(1, limit // groups), seed=cfg.seed)
    return samples


def load_image(path: Path, cfg: QwenConfig) -> Image.Image:
    """Decode with the service's limits, then fit to the Qwen size (done once; images are cached)."""
    return fit_image(decode_image(Path(path).read_bytes(), PreprocessConfig()), cfg)


class ImageCache:
    """Fitted images held in memory: at Qwen's small training sizes the whole split fits easily."""

    def __init__(self, samples: list[Sample], cfg: QwenConfig):
        self.samples = samples
        self.cfg = cfg
        self._images: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, i: int) -> Image.Image:
        if i not in self._images:
            self._images[i] = load_image(self.samples[i].path, self.cfg)
        return self._images[i]

    @property
    def targets(self) -> np.ndarray:
        return np.array([s.target for s in self.samples], dtype=np.int64)


def global_batches(n: int, batch: int, seed: int) -> Iterator[np.ndarray]:
    """Endless stream of global batches of sample indices, reshuffled each epoch."""
    if n < 1:
        raise ValueError("no training samples")
    epoch = 0
    buf = np.empty(0, dtype=np.int64)
    while True:
        while len(buf) < batch:
            perm = np.random.default_rng([seed, epoch]).permutation(n)
            buf = np.concatenate([buf, perm])
            epoch += 1
        yield buf[:batch]
        buf = buf[batch:]


def augment(img: Image.Image, seed: int, position: int, hflip: bool) -> Image.Image:
    if hflip and random.Random(seed * 1_000_003 + position).random() < 0.5:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def question_for(bank, seed: int, position: int, vary: bool, default: str) -> str:
    if not vary:
        return default
    return bank.instruction(random.Random(seed * 7_919 + position))
