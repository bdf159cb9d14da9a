import random

import numpy as np
import pytest

from aidetect.testing.pictures import smooth_or_noisy
from model.bundle import DetectorBundle
from model.detectors import DetectorSpec, build_network
from model.train import TrainConfig, load_config, lr_at, train_network


def test_recipe_and_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 7\naug:\n  crop: 96\n  jpeg_quality: [40, 80]\n")
    cfg = load_config(recipe, lr=0.5, epochs=None)
    assert cfg.epochs == 7 and cfg.lr == 0.5 and cfg.aug.crop == 96 and cfg.aug.jpeg_quality == (40, 80)
    with pytest.raises(ValueError, match="larger than"):
        load_config(recipe, pre=None) if False else load_config(_write(tmp_path, "aug:\n  crop: 999\n"))


def _write(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


def test_default_recipe_is_the_documented_one():
    """bench/recipes.py chose recipe (a), lite0 fully fine-tuned on native-resolution crops, and it is the
    recipe the settings name; the frozen-feature recipe it replaced stays a config with its own [-1, 1]
    scaling (what the TensorFlow-ported weights expect), kept in its versions' bundles."""
    from aidetect.settings import Settings
    from model.train import RECIPE

    cfg = load_config()
    assert RECIPE == Settings().recipe and cfg.recipe == str(RECIPE) and RECIPE.name == "cnn_baseline.yaml"
    assert not cfg.spec.frozen and cfg.spec.arch == "efficientnet-lite0" and cfg.aug.crop < cfg.pre.size == 256
    frozen = load_config(RECIPE.with_name("frozen_lite0.yaml"))  # c-lite0, kept as a config
    assert frozen.spec.frozen == ("efficientnet-lite0",) and frozen.pre.mean == frozen.pre.std == (0.5, 0.5, 0.5)


def test_lr_warms_up_then_decays():
    cfg = TrainConfig(lr=1.0, warmup_frac=0.1)
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1.0)
    assert lrs[99] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


@pytest.mark.slow
def test_training_lowers_the_loss_and_separates():
    x, y = smooth_or_noisy(64, 48)
    cfg = load_config(None, epochs=6, batch_size=16, lr=2e-3, bf16=False)
    cfg = TrainConfig(**{**cfg.__dict__, "aug": cfg.aug.__class__(crop=32, jpeg_prob=0.0, rescale_prob=0.0)})
    net = build_network(DetectorSpec())
    losses = train_network(net, x, y, cfg, random.Random(0))
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) * 0.7
    bundle = DetectorBundle(net=net)
    from model.train import score_arrays

    raw = score_arrays(bundle, x)
    assert raw[y == 1].mean() > raw[y == 0].mean()


def test_bundle_roundtrip_keeps_scores(tmp_path):
    x, _ = smooth_or_noisy(8, 32)
    net = build_network(DetectorSpec(pretrained=False))
    bundle = DetectorBundle(
        net=net, calibration={"method": "platt", "a": 0.5, "b": 0.1}, thresholds={"low": 0.3, "high": 0.7}
    )
    from model.train import score_arrays

    before = bundle.calibrate(score_arrays(bundle, x))
    again = DetectorBundle.load(bundle.save(tmp_path / "b"))
    after = again.calibrate(score_arrays(again, x))
    assert np.allclose(before, after, atol=1e-6)
    assert again.thresholds == {"low": 0.3, "high": 0.7} and again.labels == {"real": 0, "ai": 1}
