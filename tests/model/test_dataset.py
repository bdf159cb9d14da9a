import random

import numpy as np

from model.dataset import AugmentConfig, augment, load_arrays, normalise_batch
from model.manifest import read_manifest, subsample
from model.preprocess import PreprocessConfig, to_array


def test_normalise_batch_matches_serving_preprocessing():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    cfg = PreprocessConfig()
    batch = normalise_batch(imgs, cfg).numpy()
    from PIL import Image

    for i in range(3):
        assert np.allclose(batch[i], to_array(Image.fromarray(imgs[i]), cfg), atol=1e-5)


def test_augment_crops_and_varies():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cfg = AugmentConfig(crop=32, jpeg_prob=1.0, rescale_prob=1.0)
    rng = random.Random(0)
    views = [augment(img, cfg, rng) for _ in range(4)]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views)
    assert not np.array_equal(views[0], views[1])


def test_augment_without_changes_is_a_crop():
    img = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    cfg = AugmentConfig(crop=16, flip=False, jpeg_prob=0.0, rescale_prob=0.0)
    assert np.array_equal(augment(img, cfg, random.Random(0)), img)


def test_enlarged_views_are_a_smaller_region_resized_as_serving_resizes():
    from PIL import Image

    from model.preprocess import fit_to_size

    # A gradient: an enlarged region has a smaller range of values than a native crop of the same side.
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    cfg = AugmentConfig(crop=32, flip=False, jpeg_prob=0.0, rescale_prob=0.0, enlarge_prob=1.0, enlarge_range=(2, 2))
    view = augment(ramp, cfg, random.Random(3))
    assert view.shape == (32, 32, 3)
    span = int(view[0].max(axis=0)[0]) - int(view[0].min(axis=0)[0])
    assert span < 4 * 20  # 16 source columns spread over 32 (a native crop spans 31 columns: 124)
    # the same pixels serving feeds a 16 px upload that it enlarges to its input side
    region = Image.fromarray(np.ascontiguousarray(view))
    rng = random.Random(3)
    rng.random()  # the enlarge draw
    rng.uniform(2, 2)
    top, left = rng.randint(0, 64 - 16), rng.randint(0, 64 - 16)
    served = np.asarray(fit_to_size(Image.fromarray(ramp[top : top + 16, left : left + 16]), PreprocessConfig(size=32)))
    assert np.array_equal(np.asarray(region), served)


def test_enlarging_off_draws_nothing_so_other_recipes_keep_their_random_stream():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cfg = AugmentConfig(crop=32, flip=False, jpeg_prob=0.0, rescale_prob=0.0, enlarge_range=(1.5, 3.0))
    view = augment(img, cfg, random.Random(5))
    rng = random.Random(5)
    top, left = rng.randint(0, 32), rng.randint(0, 32)  # the crop's draws come first, as before enlarging existed
    assert np.array_equal(view, img[top : top + 32, left : left + 32])


def test_load_arrays_decodes_shared_images(manifest):
    samples = subsample(read_manifest(manifest, split="val"), 1)
    ticks = []
    arr = load_arrays(samples, PreprocessConfig(), lambda: ticks.append(1))
    assert arr.shape == (len(samples), 256, 256, 3) and arr.dtype == np.uint8
    assert len(ticks) == len(samples) and arr.std() > 10


def test_recipe_e_is_recipe_a_with_enlarged_views():
    from dataclasses import replace
    from pathlib import Path

    from model.train import load_config

    configs = Path(__file__).resolve().parents[2] / "configs"
    a, e = load_config(configs / "cnn_baseline.yaml"), load_config(configs / "cnn_enlarge.yaml")
    assert a.aug.enlarge_prob == 0 and e.aug.enlarge_prob > 0 and e.aug.enlarge_range == (1.1, 2.0)
    # the one difference, so the two measure what enlarged views alone do
    assert replace(e, aug=replace(e.aug, enlarge_prob=0.0), recipe=a.recipe) == a
