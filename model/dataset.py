"""Images in memory for training and evaluation, and the training-time augmentations.

Files are decoded once through model.preprocess (the serving path) into uint8 arrays of
cfg.size x cfg.size; augmentations then work on those arrays. The set is small (about
4,000 images of 256 px, under 1 GB), so holding it in memory beats re-decoding every epoch.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model.manifest import Sample
from model.preprocess import PreprocessConfig, decode_image, fit_to_size


def load_arrays(
    samples: Sequence[Sample], cfg: PreprocessConfig, on_item: Callable[[], None] | None = None
) -> np.ndarray:
    """(N, size, size, 3) uint8 images, decoded exactly as the service decodes uploads."""
    out = np.empty((len(samples), cfg.size, cfg.size, 3), dtype=np.uint8)
    for i, s in enumerate(samples):
        out[i] = np.asarray(fit_to_size(decode_image(s.path.read_bytes(), cfg), cfg))
        if on_item:
            on_item()
    return out


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 160  # px: random crop side
    flip: bool = True  # random horizontal flip
    jpeg_prob: float = 0.5  # chance of a JPEG re-encode, as uploads to social media get
    jpeg_quality: tuple[int, int] = (50, 95)  # quality range of that re-encode
    rescale_prob: float = 0.2  # chance of a down-and-up resample, as re-posted images get
    rescale_range: tuple[float, float] = (0.5, 0.9)  # scale of the downsample


def augment(img: np.ndarray, cfg: AugmentConfig, rng: random.Random) -> np.ndarray:
    """One training view of an HxWx3 uint8 image: crop, flip, re-encode, resample."""
    h, w = img.shape[:2]
    c = min(cfg.crop, h, w)
    top, left = rng.randint(0, h - c), rng.randint(0, w - c)
    out = img[top : top + c, left : left + c]
    if cfg.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < cfg.rescale_prob or rng.random() < cfg.jpeg_prob:
        pil = Image.fromarray(np.ascontiguousarray(out))
        if rng.random() < cfg.rescale_prob:
            s = rng.uniform(*cfg.rescale_range)
            small = pil.resize((max(8, round(c * s)), max(8, round(c * s))), Image.Resampling.BILINEAR)
            pil = small.resize((c, c), Image.Resampling.BILINEAR)
        if rng.random() < cfg.jpeg_prob:
            pil = jpeg_roundtrip(pil, rng.randint(*cfg.jpeg_quality))
        out = np.asarray(pil)
    return np.ascontiguousarray(out)


def normalise_batch(batch: np.ndarray, pre: PreprocessConfig) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 normalised, channels-last in memory."""
    x = torch.from_numpy(batch).float().div_(255.0)
    mean = torch.tensor(pre.mean).view(1, 1, 1, 3)
    std = torch.tensor(pre.std).view(1, 1, 1, 3)
    return ((x - mean) / std).permute(0, 3, 1, 2)
