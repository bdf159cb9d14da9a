"""service/moderate.py's image type: the moderator page names only a type Pillow recognises as an image."""

import io

from PIL import Image

from service.moderate import image_type


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, fmt)
    return buf.getvalue()


def test_image_type_names_known_images_and_nothing_else():
    assert image_type(_encoded("PNG")) == "image/png"
    assert image_type(_encoded("JPEG")) == "image/jpeg"
    assert image_type(_encoded("WEBP")) == "image/webp"
    assert image_type(_encoded("AVIF")) == "image/avif"
    assert image_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "application/octet-stream"
    assert image_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") == "application/octet-stream"
