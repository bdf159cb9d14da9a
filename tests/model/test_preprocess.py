import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from model.preprocess import (
    ImageError,
    PreprocessConfig,
    decode_image,
    encode_jpeg,
    fit_to_size,
    preprocess,
    to_array,
)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w=320, h=200) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    return Image.fromarray(x)


def test_output_shape_and_normalisation():
    cfg = PreprocessConfig()
    x = preprocess(encode(gradient(), "PNG"), cfg)
    assert x.shape == (3, cfg.size, cfg.size) and x.dtype == np.float32
    # White maps to (1 - mean) / std per channel.
    white = preprocess(encode(Image.new("RGB", (50, 50), (255, 255, 255)), "PNG"))
    expected = (1 - np.array(cfg.mean)) / np.array(cfg.std)
    assert np.allclose(white[:, 0, 0], expected, atol=1e-5)


def test_fit_to_size_is_noop_at_target_size_and_crops_centre():
    cfg = PreprocessConfig(size=64)
    img = gradient(64, 64)
    assert fit_to_size(img, cfg) is img
    wide = fit_to_size(gradient(256, 64), cfg)
    assert wide.size == (64, 64)
    # Centre crop of a left-to-right gradient keeps the middle values.
    mid = np.asarray(wide)[0, 32, 0]
    assert 100 < mid < 160


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_turns_the_pixels_as_pillow_does(orientation):
    """decode_image turns in place; every one of the eight orientations must give the pixels of Pillow's
    own exif_transpose (lossless PNG, so any difference is a wrong turn, not compression)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    y, x = np.mgrid[0:24, 0:40]
    # red runs left to right, green top to bottom: each of the eight turns gives other pixels
    picture = Image.fromarray(np.stack([x * 6, y * 10, x + y], axis=2).astype(np.uint8))
    data = encode(picture, "PNG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    out = decode_image(data)
    assert out.size == expected.size == ((24, 40) if orientation >= 5 else (40, 24))
    assert np.array_equal(np.asarray(out), np.asarray(expected))


def test_alpha_becomes_white_not_black():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    out = decode_image(encode(img, "PNG"))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(mode):
    img = gradient(16, 16).convert(mode if mode != "I;16" else "I")
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    assert decode_image(encode(img, fmt)).mode == "RGB"


@pytest.mark.parametrize(
    "values,fmt,grey",
    [
        # a 16-bit photo: Pillow's convert clipped everything above 255 to white
        (np.full((8, 8), 30300, np.uint16), "PNG", 118),
        (np.full((8, 8), 30300, np.uint16), "TIFF", 118),
        (np.full((8, 8), 200, np.uint16), "PNG", 1),  # dark 16-bit stays dark
        (np.full((8, 8), 0.5, np.float32), "TIFF", 128),  # float 0-1
        (np.full((8, 8), 100, np.int32), "TIFF", 100),  # 32-bit holding 8-bit values, as Pillow reads them
        (np.full((8, 8), 30300, np.int32), "TIFF", 118),  # 32-bit holding 16-bit values
    ],
)
def test_deep_grayscale_keeps_its_tones(values, fmt, grey):
    values[0, 0] = 0  # one black pixel, so a per-image range would show
    out = np.asarray(decode_image(encode(Image.fromarray(values), fmt)))
    assert out.shape == (8, 8, 3) and out[0, 0].tolist() == [0, 0, 0]
    assert abs(int(out[4, 4, 0]) - grey) <= 1


@pytest.mark.parametrize(
    "data,status,words",
    [
        (b"", 400, "empty"),
        (b"hello, not an image", 415, "not an image"),
        (encode(gradient(), "JPEG")[:300], 422, "truncated"),
    ],
)
def test_bad_inputs_raise_with_status(data, status, words):
    with pytest.raises(ImageError) as e:
        decode_image(data)
    assert e.value.status == status and words in e.value.message


def test_truncated_pixel_data_is_refused():
    data = encode(gradient(400, 400), "JPEG", quality=95)
    with pytest.raises(ImageError) as e:
        decode_image(data[: len(data) // 2])
    assert e.value.status == 422 and "truncated" in e.value.message


def test_byte_and_pixel_limits():
    data = encode(gradient(300, 300), "PNG")
    with pytest.raises(ImageError) as e:
        decode_image(data, PreprocessConfig(max_bytes=100))
    assert e.value.status == 413 and "limit" in e.value.message
    with pytest.raises(ImageError) as e:
        decode_image(data, PreprocessConfig(max_pixels=300 * 299))
    assert e.value.status == 413 and "MP" in e.value.message


def test_decompression_bomb_is_refused_before_decoding():
    # 100 MP of zeros compresses to ~100 kB: the header check must stop it, not the decoder.
    bomb = encode(Image.new("L", (10_000, 10_000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    with pytest.raises(ImageError) as e:
        decode_image(bomb)
    assert e.value.status == 413


def test_unsupported_format_is_refused():
    data = encode(gradient(16, 16), "ICO")
    with pytest.raises(ImageError) as e:
        decode_image(data)
    assert e.value.status == 415


@pytest.mark.parametrize(
    "cfg", [PreprocessConfig(), PreprocessConfig(mean=(0.5, 0.25, 0.0), std=(0.5, 1.0, 2.0))], ids=["imagenet", "other"]
)
def test_to_array_matches_the_arithmetic_definition_exactly(cfg):
    # Serving must give the very numbers (x / 255 - mean) / std gives, for every byte value, and so the very
    # numbers training's batches hold: the two cannot drift by a rounding.
    from model.dataset import normalise_batch

    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    pixels[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 1, 254]]
    x = pixels.astype(np.float32) / 255.0
    want = ((x - np.float32(cfg.mean)) / np.float32(cfg.std)).transpose(2, 0, 1)
    got = to_array(Image.fromarray(pixels), cfg)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (3, 37, 53)
    assert np.array_equal(got, want)
    assert np.array_equal(got, normalise_batch(pixels[None], cfg)[0].numpy())


def test_config_roundtrip():
    cfg = PreprocessConfig(size=128, max_pixels=10)
    assert "formats" not in cfg.to_dict()  # what the code reads, not a property of a model version
    assert PreprocessConfig.from_dict(cfg.to_dict() | {"unknown": 1}) == cfg


def test_jpeg_reencode_changes_bytes_but_keeps_content():
    img = gradient(64, 64)
    again = decode_image(encode_jpeg(img, 60))
    diff = np.abs(np.asarray(again, dtype=int) - np.asarray(img, dtype=int)).mean()
    assert 0 < diff < 8
    assert to_array(again).shape == (3, 64, 64)


def test_giant_bomb_refused_at_open_with_413():
    # Over twice Pillow's own limit, Image.open itself raises; that must still read as a 413.
    bomb = encode(Image.new("1", (20_000, 10_000)), "PNG", optimize=True)
    with pytest.raises(ImageError) as e:
        decode_image(bomb, PreprocessConfig(max_pixels=10**10))
    assert e.value.status == 413 and "bomb" in e.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "AVIF", "HEIF", "GIF", "BMP"])
def test_image_format_is_pillows_name_from_the_header(fmt):
    from model.preprocess import image_format

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, fmt)
    assert image_format(buf.getvalue()) == fmt
    assert image_format(b"%PDF-1.7 not an image") is None and image_format(b"") is None


def test_an_avif_upload_is_read_like_any_other():
    img = gradient(64, 48)
    out = np.asarray(decode_image(encode(img, "AVIF", quality=95)), dtype=np.int16)
    assert out.shape == (48, 64, 3)
    assert np.abs(out - np.asarray(img, dtype=np.int16)).mean() < 8  # lossy, but the same picture


def test_a_heic_photo_is_read_upright_once():
    """Phones save HEIC with the rotation in the container; libheif applies it and clears the EXIF orientation,
    so the picture must come out turned once, not twice."""
    img = gradient(64, 48)
    out = np.asarray(decode_image(encode(img, "HEIF", quality=95)), dtype=np.int16)
    assert out.shape == (48, 64, 3)
    assert np.abs(out - np.asarray(img, dtype=np.int16)).mean() < 8
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    assert decode_image(encode(Image.new("RGB", (40, 20), "red"), "HEIF", exif=exif.tobytes())).size == (20, 40)


def test_a_heic_bomb_is_refused_from_its_header():
    import struct

    data = bytearray(encode(Image.new("RGB", (64, 64), "red"), "HEIF"))
    at = data.find(b"ispe")  # the item's spatial extent: what the header says the picture measures
    data[at + 8 : at + 16] = struct.pack(">II", 20_000, 20_000)
    with pytest.raises(ImageError) as e:
        decode_image(bytes(data), PreprocessConfig(max_pixels=10**10))
    assert e.value.status == 413 and "bomb" in e.value.message
    data[at + 8 : at + 16] = struct.pack(">II", 7_000, 7_000)  # under Pillow's limit, over ours
    with pytest.raises(ImageError) as e:
        decode_image(bytes(data))
    assert e.value.status == 413 and "49.0 MP" in e.value.message


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "PNG", "GIF"])
def test_a_cut_short_image_is_corrupt_not_unknown(fmt):
    data = encode(Image.new("RGB", (64, 64), "red"), fmt)
    with pytest.raises(ImageError) as e:
        decode_image(data[:20])
    assert e.value.status == 422 and "corrupt or truncated" in e.value.message


def test_what_is_read_is_the_codes_not_a_bundles():
    """Versions registered before AVIF and HEIC were read list older formats in their preprocessing config;
    serving them must still read what the code reads."""
    old = PreprocessConfig.from_dict(PreprocessConfig().to_dict() | {"formats": ["JPEG", "PNG", "WEBP"]})
    for fmt in ("AVIF", "HEIF"):
        assert decode_image(encode(gradient(32, 32), fmt), old).size == (32, 32)
