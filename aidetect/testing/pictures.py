"""The pictures tests send: one place that encodes them, so each test says only what it needs.

solid((40, 30))                           # a flat PNG, 40x30
solid((2100, 2000), mode="L", color=0)    # too many pixels, few bytes
noise(seed=3, size=(80, 64))              # a JPEG of random pixels, distinct per seed
noise(seed=[10, 200, 30], block=8)        # blocky noise: distinct perceptual hashes per seed
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **save_options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save_options)
    return buf.getvalue()


def solid(size=(40, 30), color=(10, 20, 30), mode: str = "RGB", fmt: str = "PNG", **save_options) -> bytes:
    """One colour all over (small files, however many pixels)."""
    return encode(Image.new(mode, size, color), fmt, **save_options)


def noise(seed=0, size=(80, 64), fmt: str = "JPEG", quality: int = 90, block: int | None = None) -> bytes:
    """Random RGB pixels seeded by `seed`; with `block`, a block x block grid of them scaled up, which
    keeps its look (and perceptual hash) through resizing and recompression."""
    rng = np.random.default_rng(seed)
    if block:
        img = Image.fromarray(rng.integers(0, 256, (block, block, 3), dtype=np.uint8))
        img = img.resize(size, Image.Resampling.NEAREST)
    else:
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return encode(img, fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def smooth_or_noisy(n: int = 64, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable toy set as uint8 NHWC arrays: label 1 ('ai') is a flat colour, label 0 ('real') carries
    sensor-like noise, so a detector separates them in a few steps."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (n, 1, 1, 3)).astype(np.float32)
    sensor = rng.normal(0, 40, (n, size, size, 3)).astype(np.float32)
    y = np.arange(n) % 2
    x = np.where(y[:, None, None, None] == 0, base + sensor, base)
    return np.clip(x, 0, 255).astype(np.uint8), y
