"""model/detectors/frozen.py and model/train_frozen.py: the frozen-feature recipe (c) as a network that trains
its head only, gives the numbers the feature cache holds, and exports and reloads like the fine-tuned one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from aidetect.testing.pictures import smooth_or_noisy
from model.bundle import DetectorBundle, score_arrays
from model.detectors import DetectorSpec, build_network
from model.features import TF_SCALING, build_backbone, stage_features
from model.train import TrainConfig
from model.train_frozen import fit_frozen


def test_features_are_the_cached_ones():
    net = build_network(DetectorSpec(frozen=("efficientnet-lite0",)))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(net.features(x), stage_features(build_backbone("efficientnet-lite0"), x), atol=1e-5)


def test_only_the_head_learns_and_the_version_exports_and_reloads(tmp_path):
    torch.set_num_threads(1)
    spec = DetectorSpec(frozen=("efficientnet-lite0",))
    net = build_network(spec)
    before = {k: v.clone() for k, v in net.backbones.state_dict().items()}
    x, y = smooth_or_noisy(32, 64)
    pre = replace(TF_SCALING, size=64)  # the export's input size
    cfg = TrainConfig(spec=spec, pre=pre, batch_size=8)
    losses = fit_frozen(net, x, y, cfg)
    assert losses[0] < 0.3  # noise vs smooth is separable on frozen ImageNet features
    assert all(torch.equal(before[k], v) for k, v in net.backbones.state_dict().items())
    net.train()  # must not unfreeze batch-norm statistics
    assert not any(m.training for m in net.modules())

    bundle = DetectorBundle(net=net, spec=spec, pre=pre)
    eager = score_arrays(bundle, x)
    assert eager[y == 1].mean() > eager[y == 0].mean()
    bundle.export()
    bundle.use_runtime("onnx", threads=1)
    assert np.allclose(score_arrays(bundle, x), eager, atol=1e-3)
    bundle.save(tmp_path / "v")
    loaded = DetectorBundle.load(tmp_path / "v")
    assert loaded.pre == pre and tuple(loaded.spec.frozen) == ("efficientnet-lite0",)
    loaded.use_runtime("torch")
    assert np.allclose(score_arrays(loaded, x), eager, atol=1e-4)
