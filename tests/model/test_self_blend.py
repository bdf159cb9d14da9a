"""Recipe (f), configs/cnn_selfblend.yaml: real images of the named sources get a self-blended pseudo-fake
twin, blended afresh at every draw of the training loop."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import model.train as train_mod
from model.detectors import DetectorSpec, build_network
from model.manifest import Sample
from model.self_blend import BlendConfig, add_twins, ellipse_mask, self_blend
from model.train import load_config, train_network

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "cnn_selfblend.yaml"
TIGHT = BlendConfig(sources=("faces",), centre_jitter=0.0, axes=(0.15, 0.2), soften=(1.0, 1.0))


def photo(size=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_the_blend_changes_the_middle_and_leaves_the_edges_alone():
    img = photo()
    for seed in range(5):
        out = self_blend(img, TIGHT, random.Random(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        # a 0.2-side ellipse blurred by 1 px never reaches the outer eighth of the picture
        edge = np.ones((64, 64), bool)
        edge[8:-8, 8:-8] = False
        assert np.array_equal(out[edge], img[edge])
        assert np.abs(out[28:36, 28:36].astype(int) - img[28:36, 28:36]).mean() > 2


def test_the_mask_is_a_soft_region_in_zero_to_one():
    m = ellipse_mask(64, 64, TIGHT, random.Random(0))
    assert m.shape == (64, 64) and m.min() == 0.0 and 0.25 <= m.max() <= 1.0
    assert m[32, 32] == m.max() and m[0, 0] == 0.0
    assert ((m > 0) & (m < m.max())).any()  # the edge fades, it does not cut


def _sample(source: str, label: str, n: int) -> Sample:
    return Sample(path=Path(f"/x/{source}-{label}-{n}.jpg"), label=label, source=source, split="train")


def test_twins_are_added_for_the_real_images_of_the_named_sources_only():
    samples = [
        _sample("faces", "real", 0),
        _sample("faces", "ai", 1),
        _sample("coco", "real", 2),
        _sample("faces", "real", 3),
    ]
    x = np.stack([photo(8, i) for i in range(4)])
    y = np.array([s.target for s in samples])
    x2, y2, blend = add_twins(samples, x, y, BlendConfig(sources=("faces",)))
    assert len(x2) == len(y2) == len(blend) == 6
    assert np.array_equal(x2[4], x[0]) and np.array_equal(x2[5], x[3])
    assert y2.tolist() == [0, 1, 0, 0, 1, 1] and blend.tolist() == [False] * 4 + [True] * 2
    same, same_y, none = add_twins(samples, x, y, BlendConfig())
    assert same is x and same_y is y and not none.any()


def test_the_training_loop_blends_each_twin_at_each_draw(monkeypatch):
    drawn = []
    real_blend = train_mod.self_blend

    def counting(img, cfg, rng):
        drawn.append(img.copy())
        return real_blend(img, cfg, rng)

    monkeypatch.setattr(train_mod, "self_blend", counting)
    x = np.stack([photo(40, i) for i in range(8)])
    blend = np.array([False] * 6 + [True] * 2)
    cfg = load_config(None, epochs=2, batch_size=4, bf16=False, threads=1)
    cfg = replace(cfg, aug=replace(cfg.aug, crop=32), blend=TIGHT)
    train_network(
        build_network(DetectorSpec(pretrained=False)), x, np.arange(8) % 2, cfg, random.Random(0), blend=blend
    )
    # two epochs of every image: each twin drawn once per epoch, never an unmarked image
    assert len(drawn) == 4
    assert all(any(np.array_equal(d, x[i]) for i in (6, 7)) for d in drawn)


def test_the_recipe_blends_the_faces_source_and_a_frozen_recipe_refuses_to(tmp_path):
    cfg = load_config(RECIPE)
    base = load_config(RECIPE.with_name("cnn_baseline.yaml"))
    assert cfg.blend.sources == ("faces",) and not base.blend.sources
    assert replace(cfg, blend=BlendConfig(), recipe=base.recipe) == base  # (a) plus the twins, nothing else
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec:\n  frozen: [efficientnet-lite0]\nblend:\n  sources: [faces]\n")
    with pytest.raises(ValueError, match="fine-tuned recipe"):
        load_config(bad)
