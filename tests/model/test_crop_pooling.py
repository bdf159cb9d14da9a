"""model/crop_pooling.py: the crop grids, their cost, and that the whole-image pooling is what serving scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.crop_pooling import POOLINGS, crop_cost, grid_offsets, pooled_logits, score_poolings


class MeanNet(torch.nn.Module):
    """A logit that is the mean pixel of its input, so every view's logit can be worked out by hand."""

    def __init__(self):
        super().__init__()
        self.sides: list[int] = []

    def forward(self, x):
        self.sides.append(x.shape[-1])
        return x.mean((1, 2, 3))[:, None]


def test_grids_run_edge_to_edge_and_one_crop_sits_in_the_centre():
    assert grid_offsets(256, 160, 1) == [(48, 48)]
    assert grid_offsets(256, 160, 2) == [(0, 0), (0, 96), (96, 0), (96, 96)]
    assert grid_offsets(256, 160, 3)[4] == (48, 48) and grid_offsets(256, 160, 3)[-1] == (96, 96)
    assert grid_offsets(256, 256, 3) == [(0, 0)] * 9
    with pytest.raises(ValueError):
        grid_offsets(256, 300, 2)
    with pytest.raises(ValueError):
        grid_offsets(256, 160, 0)
    assert crop_cost(256, 160, 0) == 1.0 and crop_cost(256, 128, 2) == 1.0
    assert crop_cost(256, 160, 3) == pytest.approx(9 * 0.390625)


def test_pooled_logits_average_the_crops_views():
    x = torch.zeros(2, 3, 256, 256)
    x[0, :, :128, :128] = 1.0  # the top-left quarter lit in image 0 only
    net = MeanNet()
    assert torch.allclose(pooled_logits(net, x, 160, 0), torch.tensor([0.25, 0.0]))
    assert net.sides == [256]
    # the centre crop (48..208) overlaps the lit quarter by 80 x 80 px of its 160 x 160
    assert torch.allclose(pooled_logits(net, x, 160, 1), torch.tensor([0.25, 0.0]))
    # a 2x2 grid: the top-left crop holds 128 x 128 lit px, the two beside it 32 x 128 each, the last 32 x 32
    want = (128 * 128 + 2 * 32 * 128 + 32 * 32) / (4 * 160 * 160)
    assert torch.allclose(pooled_logits(net, x, 160, 2), torch.tensor([want, 0.0]))
    assert net.sides[-4:] == [160] * 4


def test_the_whole_image_pooling_scores_as_serving_scores():
    from model.bundle import DetectorBundle, score_arrays
    from model.dataset import normalise_batch
    from model.detectors import DetectorSpec, build_network
    from model.preprocess import PreprocessConfig

    torch.manual_seed(0)
    spec = DetectorSpec(pretrained=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    images[1, 64:] = 30  # images whose halves differ, so whole and crops see different things
    images[2, :, :128] = 220
    net, pre = build_network(spec), PreprocessConfig()
    torch.nn.init.normal_(net._fc.weight)  # the library starts the head at zero: every image would score alike
    with torch.no_grad():  # untrained batch-norm statistics flatten every image to one score: fit them first
        for _ in range(5):
            net(torch.from_numpy(np.asarray(normalise_batch(images, pre))))
    bundle = DetectorBundle(net=net.eval(), spec=spec, pre=pre)
    scores = score_poolings(bundle.net, bundle.pre, images, 160, batch=2)
    assert set(scores) == set(POOLINGS) and all(v.shape == (3,) for v in scores.values())
    np.testing.assert_allclose(scores["whole"], score_arrays(bundle, images), atol=1e-5)
    assert not np.allclose(scores["3x3"], scores["whole"], atol=1e-4)  # the crops are another view
