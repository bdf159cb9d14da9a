"""Scoring an image as the mean logit of training-sized crops instead of one pass over the whole image.

The fine-tuned recipes train on 160 px crops of the 256 px images and serve the whole 256 px image in one pass.
The network's pooled features are then averages over a larger map whose border (padding) share differs from
training's, and a local change such as a swapped face is averaged with more untouched background. Scoring the
training view instead, a grid of crops whose logits are averaged, is the test-time counterpart; it costs
per_side**2 * (crop / size)**2 of a whole-image pass. bench/crop_pooling.py measures whether it pays.
"""

from __future__ import annotations

import numpy as np
import torch

# name -> crops per side (0: the whole image, one pass, as serving scores it; 1: the centre crop)
POOLINGS = {"whole": 0, "centre": 1, "2x2": 2, "3x3": 3}


def grid_offsets(size: int, crop: int, per_side: int) -> list[tuple[int, int]]:
    """(top, left) of per_side x per_side crops spread evenly from edge to edge; one crop sits in the centre."""
    if not 0 < crop <= size:
        raise ValueError(f"crop {crop} must be in 1..{size}")
    if per_side < 1:
        raise ValueError("per_side must be at least 1")
    span = size - crop
    steps = [span // 2] if per_side == 1 else [round(i * span / (per_side - 1)) for i in range(per_side)]
    return [(y, x) for y in steps for x in steps]


def crop_cost(size: int, crop: int, per_side: int) -> float:
    """Compute of a pooling, as a share of one whole-image pass (convolutions scale with pixels)."""
    return 1.0 if per_side == 0 else per_side**2 * (crop / size) ** 2


@torch.no_grad()
def pooled_logits(net: torch.nn.Module, x: torch.Tensor, crop: int, per_side: int) -> torch.Tensor:
    """One logit per image of a normalised (N, 3, S, S) batch: the whole image's (per_side 0) or the mean of
    a grid of crop x crop views' logits."""
    if per_side == 0:
        return net(x).reshape(len(x))
    views = [
        net(x[:, :, y : y + crop, c : c + crop]).reshape(len(x)) for y, c in grid_offsets(x.shape[-1], crop, per_side)
    ]
    return torch.stack(views, 1).mean(1)


def score_poolings(net: torch.nn.Module, pre, images, crop: int, poolings: dict[str, int] = POOLINGS, batch: int = 32):
    """{pooling name: raw logits (N,)} of (N, S, S, 3) uint8 images, each batch normalised once for all poolings."""
    from model.dataset import normalise_batch

    net.eval()
    out: dict[str, list] = {name: [] for name in poolings}
    for i in range(0, len(images), batch):
        x = normalise_batch(images[i : i + batch], pre)
        x = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
        for name, per_side in poolings.items():
            out[name].append(pooled_logits(net, x, crop, per_side).numpy())
    return {name: np.concatenate(v) if v else np.empty(0, np.float32) for name, v in out.items()}
