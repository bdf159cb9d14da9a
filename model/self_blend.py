"""Self-blended pseudo-fakes: a real image with a region of a slightly altered copy of itself pasted back in.

Face swaps are the family no other training data teaches: a model trained without them scores them at
chance (AUROC 0.53-0.58, bench/results/recipes.json), because they are real photos except for one blended
region. Self-Blended Images (Shiohara & Yamasaki, CVPR 2022) and Face X-ray make such fakes from real images
alone, on the premise that the blend boundary and the colour and sharpness mismatch inside it are what every
swap leaves, whatever network made the face. Here the region is a soft, rotated ellipse near the centre, where
the shared faces are (no landmark model installs offline); a recipe names the sources whose real images get a
pseudo-fake twin (`blend.sources`), so no fake of the family itself is needed to learn it.

On the shared data the premise failed: the twins are learned, yet face swaps score lower than without them
(bench/self_blend_probe.py, docs/model-card.md), so recipe (f) is kept as a config, not served. Recipe (g)
fills the same ellipse from an AI training image instead (`splice`, `donor: ai`): a generator's texture inside a
real photo, which is what a swapped-in face is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from model.manifest import Sample


@dataclass(frozen=True)
class BlendConfig:
    sources: tuple[str, ...] = ()  # sources whose real training images each get a self-blended twin (label ai)
    centre_jitter: float = 0.1  # the ellipse's centre moves up to this share of the side from the middle
    axes: tuple[float, float] = (0.15, 0.35)  # its semi-axes, as shares of the side
    soften: tuple[float, float] = (2.0, 8.0)  # Gaussian radius (px) of its edge
    # What fills the ellipse: "self", an altered copy of the image (SBI); "ai", the same region of an AI training
    # image, its colours matched to the photo's (a splice: generated pixels inside a real photo, recipe (g))
    donor: str = "self"

    def __post_init__(self):
        if self.donor not in ("self", "ai"):
            raise ValueError(f"blend.donor must be 'self' or 'ai', not {self.donor!r}")


def ellipse_mask(h: int, w: int, cfg: BlendConfig, rng: random.Random) -> np.ndarray:
    """An HxW float mask in [0, 1]: a rotated ellipse with a blurred edge, scaled by a blend ratio."""
    cy = h / 2 + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter) * h
    cx = w / 2 + rng.uniform(-cfg.centre_jitter, cfg.centre_jitter) * w
    ay, ax = rng.uniform(*cfg.axes) * h, rng.uniform(*cfg.axes) * w
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    hard = ((u / ax) ** 2 + (v / ay) ** 2 <= 1.0).astype(np.uint8) * 255
    soft = Image.fromarray(hard).filter(ImageFilter.GaussianBlur(rng.uniform(*cfg.soften)))
    ratio = rng.choice((0.25, 0.5, 0.75, 1.0, 1.0, 1.0))  # SBI's blend ratios: partly see-through swaps too
    return np.asarray(soft, dtype=np.float32) / 255.0 * ratio


def altered_copy(img: np.ndarray, rng: random.Random) -> np.ndarray:
    """The pasted-in source: the same picture with another colour balance, sharpness and a small shift and
    scale, as a swapped-in face differs from the photo around it."""
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    # The pasted region may be smoother or sharper than its surroundings: either way is a mismatch, and a
    # swap's direction depends on the face's source, so neither is favoured.
    kind = rng.randrange(4)
    if kind == 0:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    elif kind == 1:
        s = rng.uniform(0.4, 0.8)  # rendered at a lower resolution, then fitted back
        pil = pil.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BILINEAR).resize((w, h))
    elif kind == 2:
        pil = pil.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 3), percent=rng.randint(80, 200)))
    else:  # the fine grain of another camera or generator
        grain = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(3, 8), (h, w, 1))
        pil = Image.fromarray(np.clip(np.asarray(pil, np.float32) + grain, 0, 255).astype(np.uint8))
    scale = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    # Affine maps output to input: scale about the centre, then shift.
    a, e = 1 / scale, 1 / scale
    c, f = (w / 2) * (1 - a) + tx, (h / 2) * (1 - e) + ty
    pil = pil.transform((w, h), Image.Transform.AFFINE, (a, 0, c, 0, e, f), Image.Resampling.BILINEAR)
    x = np.asarray(pil, dtype=np.float32)
    gain = np.array([rng.uniform(0.93, 1.07) for _ in range(3)], dtype=np.float32)
    shift = np.array([rng.uniform(-8, 8) for _ in range(3)], dtype=np.float32)
    return np.clip(x * gain + shift, 0, 255)


def self_blend(img: np.ndarray, cfg: BlendConfig, rng: random.Random) -> np.ndarray:
    """A pseudo-fake of an HxWx3 uint8 real image (same shape and dtype)."""
    h, w = img.shape[:2]
    return _paste(img, altered_copy(img, rng), ellipse_mask(h, w, cfg, rng))


def splice(img: np.ndarray, donor: np.ndarray, cfg: BlendConfig, rng: random.Random) -> np.ndarray:
    """A real HxWx3 uint8 image with the same ellipse of an AI image of its size blended in. The donor's mean and
    spread per channel inside the ellipse are matched to the photo's there, so that what tells the region apart
    is the generator's texture, not a colour patch."""
    h, w = img.shape[:2]
    mask = ellipse_mask(h, w, cfg, rng)
    x, d = img.astype(np.float32), donor.astype(np.float32)
    inside = mask > 0.5 * mask.max()  # the ellipse, whatever the blend ratio that scales the mask
    if inside.any():
        mx, sx = x[inside].mean(0), x[inside].std(0) + 1.0
        md, sd = d[inside].mean(0), d[inside].std(0) + 1.0
        d = (d - md) / sd * sx + mx
    return _paste(img, np.clip(d, 0, 255), mask)


def _paste(img: np.ndarray, inside: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    out = m * inside + (1 - m) * img.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def add_twins(
    samples: Sequence[Sample], images: np.ndarray, targets: np.ndarray, cfg: BlendConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training arrays with one pseudo-fake twin per real image of cfg.sources appended: (images, targets,
    blend), where `blend` marks the twins, which the training loop blends afresh at every draw."""
    twins = [i for i, s in enumerate(samples) if s.label == "real" and s.source in cfg.sources]
    blend = np.zeros(len(samples) + len(twins), dtype=bool)
    if not twins:
        return images, targets, blend[: len(samples)]
    blend[len(samples) :] = True
    return (
        np.concatenate([images, images[twins]]),
        np.concatenate([targets, np.ones(len(twins), dtype=targets.dtype)]),
        blend,
    )
