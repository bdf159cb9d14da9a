"""Train the fast CPU detector, calibrate it on the validation split, log and register it.

    aidetect train                                   # configs/cnn_baseline.yaml (AIDETECT_RECIPE)
    aidetect train --epochs 1 --per-group 20         # a quick small run

One pass reads top to bottom: load data -> build network -> train -> score val ->
calibrate + thresholds -> metrics per source -> MLflow (params, metrics, model, version).
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml

from model.bundle import DetectorBundle, score_arrays
from model.calibration import fit_calibrator, thresholds_at
from model.dataset import AugmentConfig, augment, load_arrays, normalise_batch
from model.detectors import DetectorSpec, build_network
from model.detectors.efficientnet import logits as net_logits
from model.manifest import Sample, read_manifest, subsample
from model.metrics import per_source_metrics
from model.preprocess import PreprocessConfig
from model.self_blend import BlendConfig, add_twins, self_blend, splice
from model.splits import calibration_parts

log = logging.getLogger(__name__)
# The default recipe (AIDETECT_RECIPE overrides it for `aidetect train`); bench/recipes.py chose it, and
# configs/ keeps the others (frozen_lite0, artefact_preserving, frozen_multiscale).
RECIPE = Path(__file__).resolve().parent.parent / "configs" / "cnn_baseline.yaml"


@dataclass
class TrainConfig:
    epochs: int = 4  # passes over the train split
    batch_size: int = 32  # images per optimiser step
    lr: float = 1e-3  # peak AdamW learning rate (one-cycle schedule)
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup_frac: float = 0.1  # share of steps spent warming up
    seed: int = 0  # python, numpy and torch seed
    per_group: int | None = None  # cap per (source, label, split): small runs for tests
    train_split: str = "train"  # manifest split to learn from
    val_split: str = "val"  # manifest split: one half fits calibration and thresholds, the other is reported
    calibration: str = "platt"  # "platt" or "isotonic"
    target_fpr: float = 0.01  # share of real images allowed above the high threshold
    target_fnr: float = 0.01  # share of AI images allowed below the low threshold
    bf16: bool = True  # bfloat16 autocast where the CPU supports it (about 1.5x faster here)
    threads: int | None = None  # torch threads; default: all cores
    nonphoto_per_kind: int = 0  # rendered real non-photos per kind (model.nonphoto, train setting); 0 = none
    head_c: float = 0.05  # frozen recipes (spec.frozen): inverse L2 strength of the logistic head
    recipe: str = ""  # the recipe file the config came from (configs/<recipe>.yaml), logged with each run
    spec: DetectorSpec = field(default_factory=DetectorSpec)
    pre: PreprocessConfig = field(default_factory=PreprocessConfig)
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)  # self-blended pseudo-fakes (model.self_blend)


def load_config(path: Path | None = RECIPE, **overrides) -> TrainConfig:
    """Defaults <- recipe YAML <- keyword overrides (None means 'not given')."""
    data = yaml.safe_load(path.read_text()) if path and Path(path).is_file() else {}
    data = data or {}
    nested = {"spec": DetectorSpec, "pre": PreprocessConfig, "aug": AugmentConfig, "blend": BlendConfig}
    kw = {}
    for f in fields(TrainConfig):
        if f.name in nested and isinstance(data.get(f.name), dict):
            sub = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data[f.name].items()}
            kw[f.name] = nested[f.name](**sub)
        elif f.name in data:
            kw[f.name] = data[f.name]
    kw["recipe"] = str(path) if path and Path(path).is_file() else ""
    kw.update({k: v for k, v in overrides.items() if v is not None})
    cfg = TrainConfig(**kw)
    if cfg.aug.crop > cfg.pre.size:
        raise ValueError(f"aug.crop {cfg.aug.crop} is larger than pre.size {cfg.pre.size}")
    if cfg.blend.sources and cfg.spec.frozen:  # a frozen head sees each image once, unaugmented: no blend
        raise ValueError("blend.sources needs a fine-tuned recipe: spec.frozen takes no self-blended twins")
    return cfg


def flat_params(cfg: TrainConfig) -> dict:
    """The resolved config as flat MLflow params: aug.crop=160, ..."""
    out = {}
    for k, v in asdict(cfg).items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup_frac * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> random.Random:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return random.Random(seed)


def train_network(
    net: torch.nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    cfg: TrainConfig,
    rng: random.Random,
    on_step=None,
    blend: np.ndarray | None = None,
) -> list[float]:
    """Plain training loop; `on_step(step, total, loss, lr)` reports progress. Returns losses. Images
    marked in `blend` are self-blended or spliced afresh (model.self_blend) before each augmentation."""
    net.train()
    net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(images) // cfg.batch_size)  # drop the ragged last batch
    total = steps_per_epoch * cfg.epochs
    use_bf16 = cfg.bf16 and bf16_supported()
    losses, step = [], 0
    y_all = torch.from_numpy(targets.astype(np.float32))

    # Splices (blend.donor "ai") take their generated region from the AI images being trained on.
    donors = np.flatnonzero((targets == 1) & ~blend) if blend is not None and cfg.blend.donor == "ai" else []

    def view(i: int) -> np.ndarray:
        if blend is None or not blend[i]:
            return images[i]
        if len(donors):
            return splice(images[i], images[rng.choice(donors)], cfg.blend, rng)
        return self_blend(images[i], cfg.blend, rng)

    for _epoch in range(cfg.epochs):
        order = list(range(len(images)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = np.stack([augment(view(i), cfg.aug, rng) for i in idx])
            x = normalise_batch(batch, cfg.pre).contiguous(memory_format=torch.channels_last)
            y = y_all[idx]
            for g in opt.param_groups:
                g["lr"] = lr = lr_at(step, total, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                out = net_logits(net, x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if on_step:
                on_step(step, total, losses[-1], lr)
        recent = losses[-steps_per_epoch:]
        log.info("epoch %d/%d: mean loss %.4f, lr %.2e", _epoch + 1, cfg.epochs, float(np.mean(recent)), lr)
    net.eval()
    return losses


def select(manifest: Path, split: str, per_group: int | None, seed: int) -> list[Sample]:
    samples = read_manifest(manifest, split=split)
    if not samples:
        raise ValueError(f"{manifest}: no images in split {split!r}")
    return subsample(samples, per_group, seed) if per_group else samples


def rendered_nonphotos(cfg: TrainConfig, manifest: Path, cache: Path | None) -> list[Sample]:
    """The train setting of model.nonphoto, rendered once into `cache` (default AIDETECT_HOME/cache).
    Charts, screenshots, quote cards, memes and documents on the real side keep the net from learning
    that graphics mean AI; small runs (per_group) get no more per kind than per_group."""
    from model.nonphoto import cached_set

    n = min(cfg.nonphoto_per_kind, cfg.per_group or cfg.nonphoto_per_kind)
    if n <= 0:
        return []
    if cache is None:
        from aidetect.settings import get_settings

        cache = get_settings().home / "cache"
    return cached_set(cache, "train", n, cfg.seed, manifest)


def training_samples(cfg: TrainConfig, manifest: Path, cache: Path | None = None) -> list[Sample]:
    """What the net learns from: the manifest's train split plus the rendered real non-photos."""
    return select(manifest, cfg.train_split, cfg.per_group, cfg.seed) + rendered_nonphotos(cfg, manifest, cache)


def fit(cfg: TrainConfig, manifest: Path, progress=None, cache: Path | None = None) -> tuple[DetectorBundle, dict]:
    """Train + calibrate; returns the bundle and a report (metrics per source, timings)."""
    from model.progress import task_bar

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = seed_everything(cfg.seed)
    train_s = training_samples(cfg, manifest, cache)
    val_s = select(manifest, cfg.val_split, cfg.per_group, cfg.seed)
    t0 = time.perf_counter()
    with task_bar(progress, "decoding images", len(train_s) + len(val_s)) as tick:
        x_train = load_arrays(train_s, cfg.pre, tick)
        x_val = load_arrays(val_s, cfg.pre, tick)
    y_train = np.array([s.target for s in train_s])
    x_train, y_train, blend = add_twins(train_s, x_train, y_train, cfg.blend)
    y_val = np.array([s.target for s in val_s])
    t_load = time.perf_counter() - t0
    log.info("loaded %d train and %d val images in %.1fs", len(train_s), len(val_s), t_load)

    net = build_network(cfg.spec)
    frozen = bool(cfg.spec.frozen)  # recipe (c): one pass for features, then a linear head (model.train_frozen)
    steps = -(-len(x_train) // cfg.batch_size) if frozen else max(1, len(x_train) // cfg.batch_size) * cfg.epochs
    t1 = time.perf_counter()
    with task_bar(progress, "training", steps) as tick:
        if frozen:
            from model.train_frozen import fit_frozen

            losses = fit_frozen(net, x_train, y_train, cfg, on_step=tick)
        else:
            losses = train_network(net, x_train, y_train, cfg, rng, on_step=lambda *a: tick(), blend=blend)
    t_train = time.perf_counter() - t1

    bundle = DetectorBundle(net=net, spec=cfg.spec, pre=cfg.pre)
    # Exported before calibration, so calibration and thresholds are fitted on what will serve.
    bundle.export()
    with task_bar(progress, "scoring validation", 1) as tick:
        raw = score_arrays(bundle, x_val)
        tick()
    # One half of val (near-duplicate groups kept whole) fits calibration and thresholds, the other is
    # reported on, so ECE and TPR at 1% FPR are not measured on the images they were fitted to.
    cal, ev, cal_how = calibration_parts([s.path.name for s in val_s], x_val, y_val)
    bundle.calibration = fit_calibrator(raw[cal], y_val[cal], cfg.calibration)
    probs = bundle.calibrate(raw)
    bundle.thresholds = thresholds_at(probs[cal], y_val[cal], cfg.target_fpr, cfg.target_fnr)
    ev_sources = [s.source for s, e in zip(val_s, ev, strict=True) if e]
    metrics = per_source_metrics(probs[ev], y_val[ev], ev_sources, 1 / (1 + np.exp(-raw[ev])))
    report = {
        "metrics": metrics,
        "calibration_split": cal_how,
        "n_calibration": int(cal.sum()),
        "n_train": len(train_s),
        "n_self_blended": int(blend.sum()),
        "n_rendered_nonphoto": sum(s.source.startswith("rendered-nonphoto") for s in train_s),
        "n_val": len(val_s),
        "load_seconds": t_load,
        "train_seconds": t_train,
        "final_loss": float(np.mean(losses[-10:])),
        "losses": losses,
        "bf16": bool(cfg.bf16 and bf16_supported()),
        "threads": torch.get_num_threads(),
    }
    bundle.info = {"val_metrics": metrics["overall"], "train_seconds": round(t_train, 1), "calibration_split": cal_how}
    return bundle, report
