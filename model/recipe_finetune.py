"""Fine-tuned recipes (configs/*.yaml) measured like the frozen ones of model.recipes, on a short schedule.

    row = finetune_unit(settings, samples, feats, Path("configs/cnn_baseline.yaml"), seed=0, per_group=40)
    folds = finetune_families(settings, samples, feats, recipe, seed=0, per_group=25)

A full fine-tune takes most of an hour on 2 shared cores, so the comparison trains each seed for one epoch
on at most `per_group` images per (source, label) of the train split (model.train.fit, threads 1). The
measures are then taken on the full validation split with the same calibration half as the frozen recipes
(model.leave_out.probe_masks), so only the training differs. These short runs rank the recipes under an
equal, small budget; they are not the figures of a full training.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from model.calibration import apply_calibrator, fit_calibrator, thresholds_at
from model.features import FeatureSet
from model.leave_out import FACE_REAL_SOURCE, FACE_SWAP, MIN_FAMILY, probe_masks
from model.manifest import Sample
from model.recipes import auroc, eval_measures
from model.sources import OTHER, load_sources

FAMILY_SCORE_CAP = 200  # images of a left-out family scored per fold (seeded), to keep a fold to minutes


def short_config(recipe: Path, seed: int, per_group: int, epochs: int = 1, threads: int = 1):
    from model.train import load_config

    return load_config(recipe, epochs=epochs, per_group=per_group, seed=seed, threads=threads)


def _train(settings, cfg, exclude_family: str | None = None):
    """model.train.fit's training, optionally without one generator family's AI images."""
    import random

    import torch

    from model.bundle import DetectorBundle
    from model.dataset import load_arrays
    from model.detectors import build_network
    from model.train import seed_everything, train_network, training_samples

    torch.set_num_threads(cfg.threads or 1)
    rng: random.Random = seed_everything(cfg.seed)
    train_s = training_samples(cfg, settings.manifest, settings.home / "cache")
    if exclude_family:
        table = load_sources()
        train_s = [s for s in train_s if s.source.startswith("rendered-") or table.family_of(s) != exclude_family]
    t0 = time.perf_counter()
    x = load_arrays(train_s, cfg.pre)
    y = np.array([s.target for s in train_s])
    net = build_network(cfg.spec)
    train_network(net, x, y, cfg, rng)
    return DetectorBundle(net=net, spec=cfg.spec, pre=cfg.pre), time.perf_counter() - t0, len(train_s)


def _score(bundle, samples: list[Sample]) -> tuple[np.ndarray, float]:
    from model.bundle import score_arrays
    from model.dataset import load_arrays

    t0 = time.perf_counter()
    raw = score_arrays(bundle, load_arrays(samples, bundle.pre)) if samples else np.empty(0)
    return raw, len(samples) / max(1e-9, time.perf_counter() - t0)


def finetune_unit(
    settings,
    samples: list[Sample],
    feats: FeatureSet,
    recipe: Path,
    seed: int,
    per_group: int,
    rendered_eval: list[Sample],
    val_cap: int | None = None,
) -> dict:
    """In-distribution AUROC, pooled AUROC and non-photo verdicts of one short fine-tune, with its timings.
    `val_cap`: score at most that many val images per (source, label), the same ones for every seed (scoring
    the whole val split costs as much as the short training itself on a loaded 2-core machine)."""
    from model.manifest import subsample

    cfg = short_config(recipe, seed, per_group)
    bundle, train_s, n_train = _train(settings, cfg)
    _, y, _, cal = probe_masks(samples, feats)
    val = np.array([s.split == "val" for s in samples])
    if val_cap:
        keep = {id(s) for s in subsample([s for s in samples if s.split == "val"], val_cap, 0)}
        val &= np.array([id(s) in keep for s in samples])
    vi = np.flatnonzero(val)
    raw_val, ips = _score(bundle, [samples[i] for i in vi])
    raw_re, _ = _score(bundle, rendered_eval)
    cal_v, y_v = cal[vi], y[vi]
    calib = fit_calibrator(raw_val[cal_v], y_v[cal_v], cfg.calibration)
    p_val, p_re = apply_calibrator(calib, raw_val), apply_calibrator(calib, raw_re)
    th = thresholds_at(p_val[cal_v], y_v[cal_v], cfg.target_fpr, cfg.target_fnr)
    ev = ~cal_v
    p_ev, y_ev = p_val[ev], y_v[ev]
    src_ev = np.array([samples[i].source for i in vi])[ev]
    row = {
        "recipe": Path(recipe).stem,
        "seed": seed,
        "per_group": per_group,
        "epochs": cfg.epochs,
        "val_cap": val_cap,
        "n_val_scored": len(vi),
        "n_train": n_train,
        "train_seconds": train_s,
        "threads": cfg.threads,
        "score_images_per_s": ips,
        "thresholds": th,
        **eval_measures(p_ev, y_ev, src_ev, p_re, th),
    }
    return row


def finetune_family(settings, samples: list[Sample], recipe: Path, family: str, seed: int, per_group: int) -> dict:
    """One leave-one-family-out fold of a short fine-tune: trained without `family`, its images (at most
    FAMILY_SCORE_CAP, seeded) scored against real val images (the faces source's for face swaps)."""
    import random

    table = load_sources()
    cfg = short_config(recipe, seed, per_group)
    bundle, train_s, _ = _train(settings, cfg, exclude_family=family)
    pos = [s for s in samples if s.label == "ai" and table.family_of(s) == family]
    n_family = len(pos)
    if len(pos) > FAMILY_SCORE_CAP:
        pos = random.Random(seed).sample(pos, FAMILY_SCORE_CAP)
    neg = [
        s
        for s in samples
        if s.split == "val" and s.label == "real" and (s.source == FACE_REAL_SOURCE or family != FACE_SWAP)
    ]
    s_pos, _ = _score(bundle, pos)
    s_neg, _ = _score(bundle, neg)
    return {
        "recipe": Path(recipe).stem,
        "seed": seed,
        "family": family,
        "auroc": auroc(s_pos, s_neg),
        "n": n_family,
        "n_scored": len(pos),
        "n_real": len(neg),
        "counted": n_family >= MIN_FAMILY,
        "train_seconds": train_s,
    }


def counted_families(samples: list[Sample]) -> list[str]:
    table = load_sources()
    fams: dict[str, int] = {}
    for s in samples:
        if s.label == "ai":
            f = table.family_of(s)
            fams[f] = fams.get(f, 0) + 1
    return sorted(f for f, n in fams.items() if n >= MIN_FAMILY and f != OTHER)
