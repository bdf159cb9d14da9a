"""Frozen multi-scale features of one or more ImageNet EfficientNet-lites and a linear head (UnivFD-style):
recipe (c) of bench/recipes.py, as a network that exports and serves like the fine-tuned one.

    net = FrozenStages(("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"))
    feats = net.features(x)            # (N, D): what the head sees (model.features caches the same numbers)
    net.set_head(mean, scale, coef, intercept)   # a logistic regression fitted on standardised features
    logit = net(x)                     # (N, 1)

The feature of an image is, per backbone, the global mean of every stage's output and of the 1280-channel
head, plus the spatial standard deviation of the three early stages: the early stages keep the fine
texture in which generators differ, the late ones the content. Only the head is trained (model.train's
fit_frozen), so training costs one forward pass per image and the backbones stay as ImageNet made them.
"""

from __future__ import annotations

import torch
from torch import nn

STD_STAGES = 3  # early stages whose spatial std is kept too


def stage_ends(net) -> list[int]:
    """Indices of the last block of each stage (where the channel count changes next)."""
    outs = [b._block_args.output_filters for b in net._blocks]
    return [i for i in range(len(outs)) if i == len(outs) - 1 or outs[i + 1] != outs[i]]


def feature_dims(net) -> int:
    chans = [net._blocks[i]._block_args.output_filters for i in stage_ends(net)]
    return sum(chans) + sum(chans[:STD_STAGES]) + net._conv_head.out_channels


def stage_vector(net, x: torch.Tensor) -> torch.Tensor:
    """(N, D): per-stage global means (+ std of the early stages) and the head's global mean."""
    ends = set(stage_ends(net))
    parts = []
    h = net._swish(net._bn0(net._conv_stem(x)))
    stage = 0
    for i, block in enumerate(net._blocks):
        h = block(h)
        if i in ends:
            parts.append(h.mean(dim=(2, 3)))
            if stage < STD_STAGES:
                parts.append(h.std(dim=(2, 3)))
            stage += 1
    head = net._swish(net._bn1(net._conv_head(h)))
    parts.append(head.mean(dim=(2, 3)))
    return torch.cat(parts, dim=1)


class FrozenStages(nn.Module):
    def __init__(self, archs: tuple[str, ...], pretrained: bool = True):
        from model.detectors.efficientnet import DetectorSpec, _backbone

        super().__init__()
        self.backbones = nn.ModuleList(
            _backbone(DetectorSpec(arch=a, pretrained=pretrained, dropout=0.0)) for a in archs
        )
        for p in self.backbones.parameters():
            p.requires_grad_(False)
        dims = sum(feature_dims(b) for b in self.backbones)
        # standardisation folded into the model, so serving needs nothing beside the weights
        self.register_buffer("mean", torch.zeros(dims))
        self.register_buffer("scale", torch.ones(dims))
        self.head = nn.Linear(dims, 1)
        self.eval()

    def train(self, mode: bool = True):
        # the backbones' batch-norm statistics stay ImageNet's whatever the caller asks
        super().train(False)
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([stage_vector(b, x) for b in self.backbones], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.mean) / self.scale)

    @torch.no_grad()
    def set_head(self, mean, scale, coef, intercept) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        self.head.weight.copy_(torch.as_tensor(coef, dtype=torch.float32).reshape(1, -1))
        self.head.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32).reshape(1))
