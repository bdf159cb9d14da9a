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
from model.self_blend import BlendConfig, add_twins, ellipse_mask, self_blend, splice
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


# --- recipe (g), configs/cnn_splice.yaml: the ellipse filled from an AI training image instead ---


def test_a_splice_takes_the_donors_texture_in_the_photos_colours_and_leaves_the_edges_alone():
    img = np.full((64, 64, 3), (200, 120, 40), np.uint8) + photo(64, 1) // 16  # an orange photo, its own grain
    donor = photo(64, 2)  # another picture: grey on average, loud
    for seed in range(5):
        out = splice(img, donor, replace(TIGHT, donor="ai"), random.Random(seed))
        edge = np.ones((64, 64), bool)
        edge[8:-8, 8:-8] = False
        assert out.shape == img.shape and out.dtype == np.uint8 and np.array_equal(out[edge], img[edge])
        centre, was, other = (a[30:34, 30:34].reshape(-1).astype(float) for a in (out, img, donor))
        # the donor's pattern shows through (even at a quarter blend), in the photo's colours, not grey
        assert np.corrcoef(centre - was, other)[0, 1] > 0.2
        assert np.abs(out[30:34, 30:34].reshape(-1, 3).mean(0) - (200, 120, 40)).max() < 10


def test_the_training_loop_splices_twins_with_ai_images_only(monkeypatch):
    donors_seen = []
    x = np.stack([photo(40, i) for i in range(8)])
    y = np.array([0, 1, 0, 1, 0, 1, 0, 0])
    blend = np.array([False] * 6 + [True] * 2)  # the last two are twins of real photos, labelled real here

    def spying(img, donor, cfg, rng):
        donors_seen.append(next(i for i in range(8) if np.array_equal(donor, x[i])))
        return splice(img, donor, cfg, rng)

    cfg = load_config(None, epochs=2, batch_size=4, bf16=False, threads=1)
    cfg = replace(cfg, aug=replace(cfg.aug, crop=32), blend=replace(TIGHT, donor="ai"))
    monkeypatch.setattr(train_mod, "splice", spying)
    train_network(build_network(DetectorSpec(pretrained=False)), x, y, cfg, random.Random(0), blend=blend)
    assert len(donors_seen) == 4 and set(donors_seen) <= {1, 3, 5}  # AI images, never a real one or a twin


def test_the_splice_recipe_is_the_self_blend_recipe_with_ai_donors(tmp_path):
    cfg = load_config(RECIPE.with_name("cnn_splice.yaml"))
    f = load_config(RECIPE)
    assert cfg.blend.donor == "ai" and replace(cfg, blend=f.blend, recipe=f.recipe) == f
    bad = tmp_path / "bad.yaml"
    bad.write_text("blend:\n  sources: [faces]\n  donor: other\n")
    with pytest.raises(ValueError, match="blend.donor must be 'self' or 'ai'"):
        load_config(bad)
