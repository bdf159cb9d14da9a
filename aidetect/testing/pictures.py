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
