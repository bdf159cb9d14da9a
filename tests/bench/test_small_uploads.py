"""bench/small_uploads.py: the native-resolution policy on its own, then the benchmark at a smoke scale."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.small_uploads import POLICIES, SMALL_TIERS, native_square, policy_logits
from model.preprocess import PreprocessConfig, fit_to_size

PRE = PreprocessConfig()


def _noise(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(w * h).integers(0, 256, (h, w, 3), np.uint8))


def test_a_small_image_keeps_its_own_pixels():
    img = _noise(200, 150)
    sq = native_square(img, PRE)
    assert sq.size == (150, 150)
    assert np.array_equal(np.asarray(sq), np.asarray(img)[:, 25:175])  # the centre square, not resampled


def test_an_image_as_large_as_the_model_is_served_as_ever():
    for w, h in [(256, 256), (400, 256), (300, 1000)]:
        img = _noise(w, h)
        assert np.array_equal(np.asarray(native_square(img, PRE)), np.asarray(fit_to_size(img, PRE)))


def test_each_policy_scores_what_it_says():
    import torch

    # A network whose logit is the mean normalised pixel: a native square and its enlarged copy differ
    # by the resampling alone, and the mean of both is their midpoint.
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    net(torch.zeros(1, 3, 8, 8))
    with torch.no_grad():
        net[2].weight.fill_(1 / 3)
        net[2].bias.zero_()
    images = [_noise(256, 256), _noise(120, 90)]
    got = policy_logits(net, PRE, images)
    assert set(got) == set(POLICIES)
    assert got["as served"][0] == pytest.approx(got["native"][0])  # a stored-size image: one policy
    assert got["as served"][1] != pytest.approx(got["native"][1], abs=1e-6)
    assert np.allclose(got["mean of both"], (got["as served"] + got["native"]) / 2)


@pytest.mark.slow
def test_the_production_model_is_scored_under_every_small_tier(scored_on_tiny_model):
    from bench.small_uploads import main

    rep = scored_on_tiny_model(main)
    assert list(rep["tiers"]) == list(SMALL_TIERS)
    for row in rep["tiers"].values():
        assert set(row["auroc"]) == set(POLICIES)
        got, drop = row["auroc"]["native"]["overall"], row["drop"]["native"]["overall"]
        assert drop == pytest.approx(rep["stored_auroc"]["overall"] - got)
    assert set(rep["worst_drop"]) == set(POLICIES)
