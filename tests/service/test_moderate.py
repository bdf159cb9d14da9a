"""service/moderate.py's image view: the moderator page gets what a browser can show, named as a known image
type, and never a stranger's bytes under a type a browser would run."""

import io

import numpy as np
import pytest
from PIL import Image

from service.moderate import DISPLAY_SIDE, displayable


def _encoded(fmt: str, size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, fmt)
    return buf.getvalue()


SHOWN_AS_IS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("AVIF", "image/avif"),
               ("GIF", "image/gif"), ("BMP", "image/bmp")]  # fmt: skip


@pytest.mark.parametrize(("fmt", "mime"), SHOWN_AS_IS)
def test_what_browsers_read_is_served_as_uploaded(fmt, mime):
    data = _encoded(fmt)
    assert displayable(data, 10**6) == (data, mime)


@pytest.mark.parametrize("fmt", ["TIFF", "HEIF"])
def test_tiff_and_heic_are_shown_as_png_of_the_same_picture(fmt):
    from model.preprocess import decode_image

    x = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, fmt)
    shown, mime = displayable(buf.getvalue(), 10**6)
    assert mime == "image/png"
    with Image.open(io.BytesIO(shown)) as img:
        assert img.format == "PNG"
        # Lossless: the pixels the model was given for this upload, not a second lossy copy.
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(decode_image(buf.getvalue())))


def test_a_large_tiff_is_shown_reduced():
    shown, mime = displayable(_encoded("TIFF", (DISPLAY_SIDE * 2, 100)), 10**8)
    assert mime == "image/png" and Image.open(io.BytesIO(shown)).size == (DISPLAY_SIDE, 50)


def test_what_is_not_an_image_is_a_download():
    for data in (b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"II*\x00junk"):
        assert displayable(data, 10**6) == (data, "application/octet-stream")
