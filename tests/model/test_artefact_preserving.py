"""Recipe (b), configs/artefact_preserving.yaml: crops that never resample, rotations, colour jitter and
masking, and a high-frequency residual input computed inside the network, which trains a step, exports to
ONNX with the same scores, and survives a save/load round trip."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from model.bundle import DetectorBundle, score_arrays
from model.dataset import AugmentConfig, augment
from model.detectors import build_network
from model.detectors.efficientnet import NeighbourResidual
from model.preprocess import PreprocessConfig
from model.train import load_config, train_network

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "artefact_preserving.yaml"


def images(n=16, size=64, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (n, 1, 1, 3)).astype(np.float32)
    y = np.arange(n) % 2
    x = np.where(y[:, None, None, None] == 0, base + rng.normal(0, 40, (n, size, size, 3)), base)
    return np.clip(x, 0, 255).astype(np.uint8), y


def test_recipe_reads_as_artefact_preserving():
    cfg = load_config(RECIPE)
    assert cfg.spec.input == "residual" and cfg.aug.rescale_prob == 0.0
    assert cfg.aug.rot90 and cfg.aug.colour_jitter > 0 and cfg.aug.mask_prob > 0


def test_residual_removes_flat_content_and_keeps_pixel_noise():
    r = NeighbourResidual(gain=1.0)
    flat = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(r(flat), torch.zeros_like(flat), atol=1e-6)
    noise = torch.randn(1, 3, 16, 16)
    assert r(noise).std() > 0.8 * noise.std()


def test_augment_never_resamples_a_pixel_when_only_crop_rotate_and_flip():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cfg = AugmentConfig(crop=32, jpeg_prob=0.0, rescale_prob=0.0, rot90=True)
    out = augment(img, cfg, random.Random(0))
    # every output pixel value triple exists in the source: a crop/rotation/flip, no interpolation
    src = {tuple(p) for p in img.reshape(-1, 3)}
    assert out.shape == (32, 32, 3) and all(tuple(p) in src for p in out.reshape(-1, 3))
    masked = augment(img, replace(cfg, mask_prob=1.0, colour_jitter=0.2), random.Random(0))
    assert masked.shape == (32, 32, 3) and masked.dtype == np.uint8


@pytest.mark.slow
def test_trains_a_step_exports_to_onnx_and_round_trips(tmp_path):
    cfg = load_config(RECIPE, epochs=1, batch_size=8, bf16=False)
    cfg = replace(cfg, spec=replace(cfg.spec, pretrained=False), pre=PreprocessConfig(size=64),
                  aug=replace(cfg.aug, crop=48))
    net = build_network(cfg.spec)
    assert isinstance(net[0], NeighbourResidual)
    x, y = images()
    before = [p.detach().clone() for p in net.parameters()]
    losses = train_network(net, x, y, cfg, random.Random(0))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    bundle = DetectorBundle(net=net, spec=cfg.spec, pre=cfg.pre)
    torch_scores = score_arrays(bundle, x)
    bundle.export()
    assert bundle.onnx and bundle.scorer.runtime == "onnxruntime"
    assert np.allclose(score_arrays(bundle, x), torch_scores, atol=1e-4)
    again = DetectorBundle.load(bundle.save(tmp_path / "b"))
    assert again.spec.input == "residual" and np.allclose(score_arrays(again, x), torch_scores, atol=1e-4)
