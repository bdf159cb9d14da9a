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


def test_load_arrays_decodes_shared_images(manifest):
    samples = subsample(read_manifest(manifest, split="val"), 1)
    ticks = []
    arr = load_arrays(samples, PreprocessConfig(), lambda: ticks.append(1))
    assert arr.shape == (len(samples), 256, 256, 3) and arr.dtype == np.uint8
    assert len(ticks) == len(samples) and arr.std() > 10
