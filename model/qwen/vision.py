"""Qwen2-VL pixel inputs without torchvision: PIL image -> (pixel_values, grid_thw).

    patches, grid = image_to_patches(img, cfg)   # (h/14 * w/14, 3*2*14*14) float32, (1, h/14, w/14)

The same layout as transformers' Qwen2VLImageProcessorPil (tests check they agree): the image is
fitted to a square of `image_size` (a multiple of patch*merge = 28), scaled to [0, 1], normalised
with CLIP statistics, repeated over `temporal_patch_size` frames and cut into 14x14 patches ordered
so that each 2x2 block that the merger joins is contiguous.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.preprocess import PreprocessConfig, fit_to_size

from .config import QwenConfig


def fit_image(img: Image.Image, cfg: QwenConfig) -> Image.Image:
    """Shorter side to image_size, centre crop: the shared recipe at the Qwen size."""
    return fit_to_size(img.convert("RGB"), PreprocessConfig(size=cfg.image_size))


def normalise(img: Image.Image, cfg: QwenConfig) -> np.ndarray:
    """RGB image -> float32 CHW, CLIP-normalised."""
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(cfg.image_mean, dtype=np.float32)) / np.asarray(cfg.image_std, dtype=np.float32)
    return x.transpose(2, 0, 1)


def patchify(chw: np.ndarray, patch: int, merge: int, temporal: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """CHW array (sides multiples of patch*merge) -> flattened patches in merge-block order."""
    c, h, w = chw.shape
    gh, gw = h // patch, w // patch
    if gh % merge or gw % merge or gh * patch != h or gw * patch != w:
        raise ValueError(f"image {w}x{h} is not a multiple of {patch * merge}")
    x = chw.reshape(c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)  # (gh/m, gw/m, m, m, C, p, p)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], temporal, patch, patch))
    return np.ascontiguousarray(x.reshape(gh * gw, c * temporal * patch * patch)), (1, gh, gw)


def image_to_patches(img: Image.Image, cfg: QwenConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    return patchify(normalise(fit_image(img, cfg), cfg), cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size)
