"""Training of a frozen-feature detector (model.detectors.frozen, recipe (c)): one forward pass over the
training images, then a logistic regression on the standardised features, folded into the network's head.

No augmentation: the features are those bench/recipes.py measured the recipe on (full 256 px images, [-1, 1]
scaling), so the served version is the one the leave-out figures describe.
"""

from __future__ import annotations

import numpy as np
import torch

from model.dataset import normalise_batch


@torch.inference_mode()
def frozen_features(net, images: np.ndarray, pre, batch_size: int = 32, on_step=None) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        x = normalise_batch(images[i : i + batch_size], pre).contiguous(memory_format=torch.channels_last)
        out.append(net.features(x).float().numpy())
        if on_step:
            on_step()
    return np.concatenate(out)


def fit_frozen(net, images: np.ndarray, targets: np.ndarray, cfg, on_step=None) -> list[float]:
    """Fits net's head; returns [training log-loss] (the loop of model.train returns per-step losses)."""
    from model.leave_out import HeadConfig, fit_head

    net.eval().to(memory_format=torch.channels_last)
    feats = frozen_features(net, images, cfg.pre, cfg.batch_size, on_step)
    pipe = fit_head(feats, targets, HeadConfig(c=cfg.head_c))
    scaler, clf = pipe[0], pipe[-1]
    net.set_head(scaler.mean_, scaler.scale_, clf.coef_[0], clf.intercept_[0])
    p = np.clip(pipe.predict_proba(feats)[:, 1], 1e-7, 1 - 1e-7)
    return [float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))]
