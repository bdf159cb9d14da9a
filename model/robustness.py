"""What platforms do to uploads, as robustness tiers for `aidetect evaluate`: pure PIL -> PIL transforms.

    for tier in TIERS:
        img2 = tier.apply(img, key="a1b2c3.jpg")   # seeded by tier name + key: the same image gets the same crop

Each tier's output then goes through the serving path (model.preprocess.fit_to_size: shorter side to the
model's size, centre crop), exactly as an upload would, so a 0.5x downscale is scored as the service
would see it: upsampled back to 256 px.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from model.preprocess import encode_jpeg


@dataclass(frozen=True)
class Tier:
    name: str
    fn: Callable[[Image.Image, random.Random], Image.Image]
    what: str  # one line for the report and the model card

    def apply(self, img: Image.Image, key: str = "") -> Image.Image:
        # A string seed is hashed with SHA-512: the same (tier, image) gets the same crop on any machine.
        return self.fn(img, random.Random(f"{self.name}/{key}"))


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def jpeg(quality: int) -> Callable[[Image.Image, random.Random], Image.Image]:
    return lambda img, _rng: _decode(encode_jpeg(img, quality))


def downscale(factor: float) -> Callable[[Image.Image, random.Random], Image.Image]:
    def fn(img: Image.Image, _rng: random.Random) -> Image.Image:
        w, h = img.size
        return img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BICUBIC)

    return fn


def random_crop(lo: float = 0.6, hi: float = 0.9):
    """A crop keeping lo..hi of each side at a random place, as a user's or a platform's crop does."""

    def fn(img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        f = rng.uniform(lo, hi)
        cw, ch = max(1, round(w * f)), max(1, round(h * f))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return img.crop((left, top, left + cw, top + ch))

    return fn


def screenshot_rerender(img: Image.Image, rng: random.Random) -> Image.Image:
    """Someone screenshots the image on a high-density screen (2-3x upscale, lossless PNG), then the
    platform re-encodes the screenshot as JPEG."""
    s = rng.uniform(2.0, 3.0)
    w, h = img.size
    big = img.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    return _decode(encode_jpeg(_decode(buf.getvalue()), rng.randint(80, 92)))


TIERS: tuple[Tier, ...] = (
    Tier("jpeg60", jpeg(60), "re-encoded as JPEG quality 60 (4:2:0)"),
    Tier("jpeg75", jpeg(75), "re-encoded as JPEG quality 75"),
    Tier("jpeg95", jpeg(95), "re-encoded as JPEG quality 95"),
    Tier("down0.75", downscale(0.75), "downscaled to 0.75 of each side (bicubic)"),
    Tier("down0.5", downscale(0.5), "downscaled to 0.5 of each side (bicubic)"),
    Tier("crop60-90", random_crop(0.6, 0.9), "a random crop keeping 60-90% of each side (seeded per image)"),
    Tier("screenshot", screenshot_rerender, "upscaled 2-3x, saved as PNG, then JPEG quality 80-92"),
)
TIER_NAMES = tuple(t.name for t in TIERS)


def reencode(fmt: str, **save) -> Callable[[Image.Image, random.Random], Image.Image]:
    def fn(img: Image.Image, _rng: random.Random) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **save)
        return _decode(buf.getvalue())

    return fn


# The container formats uploads arrive in besides the data set's JPEG (bench/format_probe.py): not in TIERS,
# whose figures are the and recorded per recipe. HEIF's writer is pillow-heif's, which
# model.preprocess registers (imported above, through encode_jpeg).
FORMAT_TIERS: tuple[Tier, ...] = (
    Tier("png", reencode("PNG"), "saved as PNG (lossless: only the JPEG traces already there)"),
    Tier("webp80", reencode("WEBP", quality=80), "re-encoded as WebP quality 80, as platforms serve images"),
    Tier("avif60", reencode("AVIF", quality=60), "re-encoded as AVIF quality 60, as CDNs serve images"),
    Tier("heic80", reencode("HEIF", quality=80), "re-encoded as HEIC quality 80, as a phone saves an edit"),
)


def tiers_named(names) -> tuple[Tier, ...]:
    by = {t.name: t for t in TIERS + FORMAT_TIERS}
    unknown = [n for n in names if n not in by]
    if unknown:
        raise ValueError(f"unknown robustness tier(s) {', '.join(unknown)}; known: {', '.join(by)}")
    return tuple(by[n] for n in names)
