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
    # Artefact-preserving extras (configs/artefact_preserving.yaml); off by default, so the default recipe's
    # random draws, and thus its runs, stay as they were.
    rot90: bool = False  # random multiple of 90 degrees: turns the image without resampling a pixel
    colour_jitter: float = 0.0  # brightness/contrast/saturation each scaled by up to 1 +- this
    mask_prob: float = 0.0  # chance of blanking a random rectangle (random masking, as in SAFE)
    mask_frac: float = 0.3  # largest side of that rectangle, as a share of the crop
    # Enlarged views (configs/cnn_enlarge.yaml): a smaller region resized up to the crop side with LANCZOS,
    # the resampling serving applies to an upload smaller than its input (a platform's crop or downscale of a
    # 256 px image reaches the model enlarged). Off by default: the draw is made only when on, so recipes
    # without it keep their random streams.
    enlarge_prob: float = 0.0
    enlarge_range: tuple[float, float] = (1.1, 2.0)  # the enlargement factor


def augment(img: np.ndarray, cfg: AugmentConfig, rng: random.Random) -> np.ndarray:
    """One training view of an HxWx3 uint8 image: crop (maybe enlarged), flip, re-encode, resample."""
    h, w = img.shape[:2]
    c = min(cfg.crop, h, w)
    side = c
    if cfg.enlarge_prob > 0 and rng.random() < cfg.enlarge_prob:
        side = max(8, round(c / rng.uniform(*cfg.enlarge_range)))
    top, left = rng.randint(0, h - side), rng.randint(0, w - side)
    out = img[top : top + side, left : left + side]
    if side != c:
        out = np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize((c, c), Image.Resampling.LANCZOS))
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
    if cfg.rot90:
        out = np.rot90(out, rng.randint(0, 3))
    if cfg.colour_jitter > 0:
        out = colour_jitter(out, cfg.colour_jitter, rng)
    if cfg.mask_prob > 0 and rng.random() < cfg.mask_prob:
        out = out.copy()
        mh, mw = rng.randint(1, max(1, int(c * cfg.mask_frac))), rng.randint(1, max(1, int(c * cfg.mask_frac)))
        top, left = rng.randint(0, c - mh), rng.randint(0, c - mw)
        out[top : top + mh, left : left + mw] = 127
    return np.ascontiguousarray(out)


def colour_jitter(img: np.ndarray, strength: float, rng: random.Random) -> np.ndarray:
    """Brightness, contrast and saturation, each by a random factor in 1 +- strength: pixel-wise only, so
    the local high-frequency pattern a generator leaves is scaled, never resampled."""
    x = img.astype(np.float32)
    b, c, s = (1 + rng.uniform(-strength, strength) for _ in range(3))
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * s
    x = (x - x.mean()) * c + x.mean()
    return np.clip(x * b, 0, 255).astype(np.uint8)


def normalise_batch(batch: np.ndarray, pre: PreprocessConfig) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 normalised, channels-last in memory."""
    x = torch.from_numpy(batch).float().div_(255.0)
    mean = torch.tensor(pre.mean).view(1, 1, 1, 3)
    std = torch.tensor(pre.std).view(1, 1, 1, 3)
    return ((x - mean) / std).permute(0, 3, 1, 2)
