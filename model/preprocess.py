"""The one preprocessing path, shared by training, evaluation and serving.

    cfg = PreprocessConfig()
    img = decode_image(raw_bytes, cfg)          # bytes -> RGB PIL image, limits enforced
    x = to_array(fit_to_size(img, cfg), cfg)     # -> float32 CHW, normalised

The config is saved with every model version (`to_dict`), and serving rebuilds it from there
(`from_dict`), so training and serving cannot drift. Every rejection is an ImageError with a
message meant for the caller and an HTTP status the service returns as is.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from model.image_metadata import container

# Formats we accept; anything else Pillow can open (PSD, EPS, ...) is refused as unsupported.
# AVIF: what modern CDNs and browsers save images as (Pillow reads it natively since 11.3). HEIF: what
# phones take photos as (HEIC), read through pillow-heif. What we read is the code's, never a model
# version's: the bundles of versions registered before a format was added still list their old formats.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF", "GIF", "BMP", "TIFF", "MPO")

# One decoding thread (a serving worker has its core share, and training decodes in its own processes),
# only the primary picture: thumbnails, depth maps and auxiliary images would be decoded for nothing.
# libheif applies the container's rotation and mirroring and clears the EXIF orientation, so exif_transpose
# below does not turn the picture twice.
pillow_heif.register_heif_opener(decode_threads=1, thumbnails=False, depth_images=False, aux_images=False)


@dataclass(frozen=True)
class PreprocessConfig:
    size: int = 256  # px: shorter side resized to this, then centre-cropped square (the data set's own recipe)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics of the pretrained backbone
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    max_bytes: int = 20 * 1024 * 1024  # largest encoded image accepted
    max_pixels: int = 40_000_000  # largest width*height accepted, checked before decoding

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw)


class ImageError(ValueError):
    """An input image we refuse; `status` is the HTTP status that fits (400, 413, 415, 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP"


def image_format(data: bytes) -> str | None:
    """Pillow's name for the container (JPEG, PNG, WEBP, GIF, ...), from the header alone; None when Pillow
    does not recognise the bytes. The one image-type sniffer: ingest records it, the moderator page serves by it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            # A camera's MPO is a JPEG with more pictures appended: what browsers and the store know it as.
            return "JPEG" if img.format == "MPO" else img.format
    except Exception:  # Pillow raises many types for hostile headers
        return None


def decode_image(data: bytes, cfg: PreprocessConfig = PreprocessConfig()) -> Image.Image:
    """Decode untrusted bytes into an RGB image upright per EXIF, or raise ImageError."""
    if not data:
        raise ImageError("empty body: send the image bytes (raw body or multipart field 'image')", 400)
    if len(data) > cfg.max_bytes:
        raise ImageError(f"image is {len(data) / 2**20:.1f} MiB; the limit is {cfg.max_bytes / 2**20:.1f} MiB", 413)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below decides; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError(f"decompression bomb refused: {e}", 413) from None
    except UnidentifiedImageError:
        if fmt := container(data):
            # A HEIC or AVIF whose item data is cut short fails at open, where a JPEG would fail at load.
            raise ImageError(f"corrupt or truncated {fmt} image: it cannot be opened", 422) from None
        raise ImageError(
            "not an image, or a format we cannot read (send JPEG, PNG, WebP, AVIF, HEIC, GIF, BMP or TIFF)", 415
        ) from None
    except Exception as e:  # Pillow raises many types for hostile headers
        raise ImageError(f"corrupt or truncated image: the header cannot be read ({type(e).__name__})", 422) from None
    if img.format not in ALLOWED_FORMATS:
        raise ImageError(f"unsupported image format {img.format}; send one of {', '.join(ALLOWED_FORMATS)}", 415)
    w, h = img.size
    # Checked on the header, before any pixel is decoded: this is what stops decompression bombs.
    if w <= 0 or h <= 0:
        raise ImageError(f"image has no pixels ({w}x{h})", 422)
    if w * h > cfg.max_pixels:
        raise ImageError(f"image is {_megapixels(w * h)} ({w}x{h}); the limit is {_megapixels(cfg.max_pixels)}", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            # In place: otherwise an upright image, nearly every upload, is copied whole for nothing (Pillow
            # returns a copy when there is nothing to turn), 15% of decoding a 256 px JPEG here.
            ImageOps.exif_transpose(img, in_place=True)
            img = _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise ImageError(f"decompression bomb refused: {e}", 413) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Truncated or corrupt pixel data: Pillow says "image file is truncated" and the like.
        raise ImageError(f"corrupt or truncated image ({e})", 422) from None
    except Exception as e:
        raise ImageError(f"image could not be decoded ({type(e).__name__})", 422) from None
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, as a viewer shows them, not the arbitrary colour under alpha.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Deep grayscale (16-bit PNG or TIFF, 32-bit integer or float TIFF) as a viewer shows it. Pillow's own
    convert clips every value above 255 to white, so a 16-bit photo arrived 99% white. 16-bit modes span
    0-65535 and map by 1/257. 32-bit integers are read as 8-bit data when they fit in 0-255 (as Pillow reads
    them), as 16-bit when they fit there, else by their own range; floats are 0-1 when they fit there, else
    0-255."""
    a = np.asarray(img, dtype=np.float64)
    lo, hi = 0.0, 255.0
    if img.mode == "F":
        if np.nanmin(a) >= 0 and np.nanmax(a) <= 1:
            hi = 1.0
    elif img.mode.startswith("I;16") or (a.min() >= 0 and 255 < a.max() <= 65535):
        hi = 65535.0
    elif a.min() < 0 or a.max() > 65535:
        lo, hi = float(a.min()), float(max(a.max(), a.min() + 1))
    a = np.nan_to_num((a - lo) * (255.0 / (hi - lo)), nan=0.0)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def fit_to_size(img: Image.Image, cfg: PreprocessConfig = PreprocessConfig()) -> Image.Image:
    """Resize the shorter side to cfg.size (LANCZOS) and centre-crop a square; a no-op at the right size."""
    s = cfg.size
    w, h = img.size
    if (w, h) != (s, s):
        if min(w, h) != s:
            scale = s / min(w, h)
            img = img.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.Resampling.LANCZOS)
            w, h = img.size
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    return img


def to_array(img: Image.Image, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """RGB image -> float32 CHW array normalised with the backbone's statistics: (x / 255 - mean) / std, the
    very numbers training's normalise_batch computes (model/dataset.py), bit for bit.

    Three in-place passes over one float32 output, read straight from the HWC pixels. The per-channel table
    lookup this replaced (np.take) gave the same numbers but widened each uint8 plane to a temporary int64
    index first, 1.5 MB of fresh memory per 256 px image. On 64 val images it took 0.31 ms idle and 1.4 ms
    beside two training jobs (a serving worker always shares its cores), against 0.15-0.17 ms for this."""
    a = np.asarray(img, dtype=np.uint8)
    out = np.empty((3, *a.shape[:2]), dtype=np.float32)
    np.divide(a.transpose(2, 0, 1), np.float32(255.0), out=out)
    out -= np.asarray(cfg.mean, dtype=np.float32)[:, None, None]
    out /= np.asarray(cfg.std, dtype=np.float32)[:, None, None]
    return out


def preprocess(data: bytes, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Untrusted bytes -> model input, as serving does it."""
    return to_array(fit_to_size(decode_image(data, cfg), cfg), cfg)


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Re-encode as baseline JPEG (4:2:0), as the data set and social platforms do."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    return buf.getvalue()
