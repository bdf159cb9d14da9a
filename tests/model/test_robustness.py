"""model/robustness.py: each tier does what it says to an image, is seeded per image, and `aidetect evaluate`
reports AUROC per tier and group with its drop against as stored."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.robustness import FORMAT_TIERS, TIER_NAMES, TIERS, tiers_named


def photo(w=256, h=256, seed=0) -> Image.Image:
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.sin(x / 23.0)[..., None] * np.cos(y / 31.0)[..., None] + g.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def test_the_issue_tiers_are_all_there():
    assert TIER_NAMES == ("jpeg60", "jpeg75", "jpeg95", "down0.75", "down0.5", "crop60-90", "screenshot")


def test_each_tier_transforms_as_described():
    img = photo()
    by = {t.name: t.apply(img, "k") for t in TIERS}
    assert by["down0.75"].size == (192, 192) and by["down0.5"].size == (128, 128)
    w, h = by["crop60-90"].size
    assert w == h and 0.6 * 256 <= w <= 0.9 * 256
    assert 512 <= by["screenshot"].size[0] <= 768
    err = {q: np.abs(np.asarray(by[f"jpeg{q}"], float) - np.asarray(img, float)).mean() for q in (60, 75, 95)}
    assert err[95] < err[75] < err[60]


def test_format_tiers_reencode_in_their_container():
    """The upload formats of bench/format_probe.py: same size, PNG exact, the lossy ones near the picture."""
    img = photo()
    by = {t.name: t.apply(img, "k") for t in FORMAT_TIERS}
    assert set(by) == {"png", "webp80", "avif60", "heic80"} == {t.name for t in tiers_named(list(by))}
    assert all(out.size == img.size and out.mode == "RGB" for out in by.values())
    assert np.array_equal(np.asarray(by["png"]), np.asarray(img))
    for name in ("webp80", "avif60", "heic80"):
        err = np.abs(np.asarray(by[name], float) - np.asarray(img, float)).mean()
        assert 0 < err < 12, (name, err)  # lossy, but the same picture


def test_tiers_are_seeded_per_image():
    crop = tiers_named(["crop60-90"])[0]
    img = photo()
    a, b = crop.apply(img, "x.jpg"), crop.apply(img, "x.jpg")
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert len({crop.apply(img, f"{i}.jpg").size for i in range(10)}) > 1
    with pytest.raises(ValueError, match="unknown robustness tier"):
        tiers_named(["blur"])


@pytest.mark.slow
def test_a_4000_px_upload_is_decoded_within_limits_downscaled_like_the_data_set_and_scored():
    """Serving does not tile: an upload far larger than the 256 px training images gets the data set's own
    downscale (shorter side to 256 LANCZOS, centre crop), then one forward pass."""
    from model.bundle import DetectorBundle, score_arrays
    from model.detectors import DetectorSpec, build_network
    from model.preprocess import PreprocessConfig, decode_image, fit_to_size, preprocess

    big = photo(4000, 3000, seed=1)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    cfg = PreprocessConfig()
    assert len(data) < cfg.max_bytes and 4000 * 3000 < cfg.max_pixels  # a 12 MP phone photo is accepted
    x = preprocess(data, cfg)
    assert x.shape == (3, 256, 256)
    # the data set's recipe, done by hand: shorter side 3000 -> 256 (LANCZOS), then the centre 256 x 256
    want = big.resize((round(4000 * 256 / 3000), 256), Image.Resampling.LANCZOS)
    left = (want.width - 256) // 2
    want = want.crop((left, 0, left + 256, 256))
    got = fit_to_size(decode_image(data, cfg), cfg)
    assert got.size == (256, 256)
    assert np.abs(np.asarray(got, float) - np.asarray(want, float)).mean() < 3  # only the JPEG of the upload
    bundle = DetectorBundle(net=build_network(DetectorSpec(pretrained=False)).eval(), pre=cfg)
    raw = score_arrays(bundle, np.array(got)[None])
    assert raw.shape == (1,) and np.isfinite(raw).all()
