"""model/splits.py: near-duplicates are grouped, groups never straddle calibration and evaluation, and the
split is fixed by the file names alone."""

from __future__ import annotations

import numpy as np

from model.splits import calibration_mask, calibration_split, near_duplicate_groups, thumbnails


def _images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((1, 8, 8, 1), dtype=np.uint8))  # blocky 64x64 images, all distinct


def test_copies_mirrors_and_noisy_copies_join_one_group():
    imgs = _images()
    rng = np.random.default_rng(1)
    noisy = np.clip(imgs[0].astype(int) + rng.integers(-6, 7, imgs[0].shape), 0, 255).astype(np.uint8)
    extra = np.stack([imgs[0], imgs[1][:, ::-1], noisy])
    groups = near_duplicate_groups(thumbnails(np.concatenate([imgs, extra])))
    assert groups[40] == groups[0] == groups[42] and groups[41] == groups[1]
    assert len(set(groups[:40])) == 40  # distinct images stay apart


def test_split_keeps_groups_together_is_deterministic_and_about_half():
    names = [f"{i:016x}" for i in range(400)]
    groups = np.arange(400) // 4  # groups of four
    a = calibration_mask(names, groups)
    assert (a == calibration_mask(list(names), groups.copy())).all()
    for g in range(100):
        assert len(set(a[groups == g])) == 1
    assert 0.4 < a.mean() < 0.6
    # The side of a group depends on its own names only: dropping other images moves nobody.
    sub = np.arange(0, 400, 2)
    assert (calibration_mask([names[i] for i in sub], groups[sub]) == a[sub]).all()


def test_calibration_split_of_images():
    imgs = _images(60)
    names = [f"{i:016x}" for i in range(60)]
    both = np.concatenate([imgs, imgs[:5]])
    mask = calibration_split(names + [f"dup{i}" for i in range(5)], both)
    assert (mask[60:] == mask[:5]).all()
