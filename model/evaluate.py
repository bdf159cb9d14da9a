"""Evaluate a detector on a manifest split, per source: as stored and re-encoded at JPEG q60.

    result = evaluate_bundle(bundle, manifest, out_dir)   # metrics + ROC / reliability PNGs

Images go through the serving decode path, and the re-encoded copies through the same
recompression a social platform applies (JPEG quality 60, longest side at most 768 px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from model.bundle import DetectorBundle
from model.manifest import Sample, read_manifest
from model.metrics import per_source_metrics
from model.preprocess import decode_image, encode_jpeg, fit_to_size


def recompress(img: Image.Image, quality: int = 60, max_side: int = 768) -> Image.Image:
    """What a platform does to an upload: downscale to max_side, then JPEG at `quality`."""
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return decode_image(encode_jpeg(img, quality))


def load_split(samples: list[Sample], bundle: DetectorBundle, transform=None, on_item=None) -> np.ndarray:
    arrs = []
    for s in samples:
        img = decode_image(s.path.read_bytes(), bundle.pre)
        if transform is not None:
            img = transform(img)
        arrs.append(np.asarray(fit_to_size(img, bundle.pre)))
        if on_item:
            on_item()
    return np.stack(arrs)


def score_samples(bundle: DetectorBundle, samples: list[Sample], transform=None, on_item=None):
    from model.train import score_arrays

    raw = score_arrays(bundle, load_split(samples, bundle, transform, on_item))
    return raw, bundle.calibrate(raw)


def evaluate_bundle(
    bundle: DetectorBundle,
    manifest: Path,
    out_dir: Path,
    split: str = "val",
    samples: list[Sample] | None = None,
    progress=None,
) -> dict:
    from model.plots import reliability_plot, roc_plot
    from model.progress import task_bar

    samples = samples if samples is not None else read_manifest(manifest, split=split)
    if not samples:
        raise ValueError(f"{manifest}: no images in split {split!r}")
    targets = np.array([s.target for s in samples])
    sources = [s.source for s in samples]
    with task_bar(progress, f"evaluating {split}", 2 * len(samples)) as tick:
        raw, probs = score_samples(bundle, samples, on_item=tick)
        raw60, probs60 = score_samples(bundle, samples, transform=recompress, on_item=tick)
    sig = 1 / (1 + np.exp(-raw))
    metrics = per_source_metrics(probs, targets, sources, sig)
    metrics_q60 = per_source_metrics(probs60, targets, sources, 1 / (1 + np.exp(-raw60)))
    fp_rate = float((probs[targets == 0] >= bundle.thresholds["high"]).mean())
    fn_rate = float((probs[targets == 1] < bundle.thresholds["low"]).mean())
    out_dir.mkdir(parents=True, exist_ok=True)
    roc_plot(probs, targets, sources, out_dir / "roc.png")
    reliability_plot(sig, probs, targets, out_dir / "reliability.png")
    return {
        "split": split,
        "n": len(samples),
        "metrics": metrics,
        "metrics_q60": metrics_q60,
        "auroc_drop_q60": {
            k: metrics[k]["auroc"] - metrics_q60[k]["auroc"]
            for k in metrics
            if metrics[k]["auroc"] == metrics[k]["auroc"]
        },
        "thresholds": bundle.thresholds,
        "fp_rate_at_high": fp_rate,
        "fn_rate_below_low": fn_rate,
        "verdict_counts": {v: bundle.verdicts(probs).count(v) for v in ("real", "uncertain", "ai_generated")},
    }
