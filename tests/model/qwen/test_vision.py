"""Qwen2-VL pixel inputs built without torchvision match transformers' own image processor."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.qwen.config import QwenConfig
from model.qwen.vision import fit_image, image_to_patches, patchify


def test_patch_layout_matches_the_transformers_pil_processor():
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    cfg = QwenConfig(image_size=112)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8))
    ours, grid = image_to_patches(img, cfg)
    proc = pil.Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
    theirs = proc(images=[img], return_tensors="np")
    assert grid == tuple(theirs["image_grid_thw"][0]) == (1, 8, 8)
    np.testing.assert_allclose(ours, theirs["pixel_values"], atol=1e-5)


def test_any_image_becomes_the_configured_square_and_patch_count():
    cfg = QwenConfig(image_size=56)
    img = Image.new("RGB", (300, 120), (10, 20, 30))
    assert fit_image(img, cfg).size == (56, 56)
    patches, grid = image_to_patches(img.convert("L"), cfg)  # grey input is made RGB
    assert grid == (1, 4, 4) and patches.shape == (16, 3 * 2 * 14 * 14)
    assert patches.dtype == np.float32


def test_merge_blocks_are_contiguous():
    """The 4 patches of each 2x2 merge block are consecutive rows: what the merger expects."""
    chw = np.zeros((1, 56, 56), np.float32)
    for r in range(4):
        for c in range(4):
            chw[0, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] = r * 4 + c  # patch id as its value
    patches, _ = patchify(chw, patch=14, merge=2, temporal=1)
    ids = patches[:, 0].astype(int).tolist()
    assert ids == [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]


def test_sizes_that_do_not_merge_are_refused():
    with pytest.raises(ValueError, match="multiple of 28"):
        patchify(np.zeros((3, 42, 56), np.float32), patch=14, merge=2, temporal=2)
