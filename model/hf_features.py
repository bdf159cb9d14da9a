"""Hand-made high-frequency statistics of an image: the traces recipe (b) reaches for, at a cost of milliseconds.

    f = hf_stats(img)          # (HF_DIMS,) float32 from one (H, W, 3) uint8 image

Recipe (d) of bench/recipes.py fuses these with the frozen CNN stage features of recipe (c). They look where
a camera and a generator differ below what an ImageNet backbone attends to:
- the neighbour residual (pixel minus its 8 neighbours' mean, as model.detectors.efficientnet.NeighbourResidual):
  spread, mean magnitude, tail weight per channel, and the share of flat pixels;
- how the residuals of the three channels correlate: demosaicing couples them in camera photos;
- the radially averaged log power spectrum (24 bands, mean removed): smooth generators lose the top bands;
- energy of the residual's spectrum on the grid of periods 2, 4 and 8 (upsampling layers leave peaks there),
  and JPEG 8x8 blockiness across rows and columns.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

HF_VERSION = "hf-stats-v1"  # bump when the statistics change (names the cache file)
BANDS = 24
HF_DIMS = 9 + 1 + 3 + BANDS + 3 + 2


def _residual(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    s = sum(p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    return x - s / 8.0


@lru_cache(maxsize=4)
def _band_index(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.indices((h, w))
    r = np.hypot(yy - h // 2, xx - w // 2) / (min(h, w) / 2)
    idx = np.minimum((r * BANDS).astype(int), BANDS - 1).ravel()
    return idx, np.maximum(np.bincount(idx, minlength=BANDS), 1)


def _radial_bands(power: np.ndarray) -> np.ndarray:
    idx, counts = _band_index(*power.shape)
    sums = np.bincount(idx, power.ravel(), BANDS)
    logp = np.log(sums / counts + 1e-12)
    return logp - logp.mean()


def hf_stats(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    r = _residual(x)
    flat = r.reshape(-1, 3)
    sd = flat.std(axis=0) + 1e-8
    kurt = ((flat - flat.mean(axis=0)) ** 4).mean(axis=0) / sd**4
    parts = [sd, np.abs(flat).mean(axis=0), np.log(kurt)]
    grey_r = r.mean(axis=2)
    parts.append([float((np.abs(grey_r) < 0.5 / 255).mean())])
    c = np.corrcoef(flat.T)
    parts.append([c[0, 1], c[1, 2], c[0, 2]])
    grey = x.mean(axis=2)
    f = np.fft.fftshift(np.abs(np.fft.fft2(grey - grey.mean())) ** 2)
    parts.append(_radial_bands(f))
    fr = np.abs(np.fft.fft2(grey_r)) ** 2
    h, w = fr.shape
    base = fr.mean() + 1e-12
    parts.append([np.log(fr[:: h // p, :: w // p].mean() / base + 1e-12) for p in (2, 4, 8)])
    for axis in (0, 1):
        d = np.abs(np.diff(grey, axis=axis))
        d = d.mean(axis=1 - axis)
        on = d[7::8].mean()
        parts.append([np.log((on + 1e-6) / (d.mean() + 1e-6))])
    out = np.concatenate([np.ravel(np.asarray(p, dtype=np.float32)) for p in parts])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
