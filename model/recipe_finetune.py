"""Fine-tuned recipes (configs/*.yaml) measured like the frozen ones of model.recipes, on a given schedule.

    row = finetune_unit(settings, samples, feats, Path("configs/cnn_baseline.yaml"), 0, FULL, rendered_eval)
    fold = finetune_family(settings, samples, recipe, "face-swap", seed=0, schedule=one_epoch())

Two schedules (Schedule): `short(per_group)`, one epoch on at most `per_group` images per (source, label) of
the train split on one thread and a capped val set, a smoke test that ranks nothing (its AUROC is an
untrained network's); and FULL, the config's own epochs on every training image on two threads, scored on
the whole validation split and the whole rendered eval set: the figures a real training gives. Leave-out
folds can also run `one_epoch()`: every training image, one epoch. Either way the measures are taken with the
same calibration half as the frozen recipes (model.leave_out.probe_masks) and model.recipes.eval_measures,
so only the training differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from model.calibration import apply_calibrator, fit_calibrator, thresholds_at
from model.features import FeatureSet
from model.leave_out import MIN_FAMILY, fold_real, probe_masks
from model.manifest import Sample
from model.recipes import auroc, eval_measures
from model.sources import OTHER, load_sources

FAMILY_SCORE_CAP = 200  # images of a left-out family scored per fold (seeded), to keep a fold to minutes


@dataclass(frozen=True)
class Schedule:
    """How a fine-tuned recipe is trained and scored. `name` keys its cached units (bench/recipes.py), so
    units of different schedules never mix."""

    name: str
    epochs: int | None  # None: the config's own
    per_group: int | None  # train images per (source, label); None: every one
    threads: int
    val_cap: int | None = None  # val images scored per (source, label); None: the whole split
    eval_cap: int | None = None  # rendered eval images scored per kind; None: all

    def config(self, recipe: Path, seed: int):
        from model.train import load_config

        return load_config(recipe, epochs=self.epochs, per_group=self.per_group, seed=seed, threads=self.threads)

    def describe(self, epochs: int | str, scored: bool = True) -> str:
        imgs = "every training image" if self.per_group is None else f"<= {self.per_group} per source/label"
        text = f"{epochs} epoch(s), {imgs}, {self.threads} thread(s)"
        if not scored:  # a leave-out fold scores its family against real val, whatever the caps
            return text
        val = "full val" if self.val_cap is None else f"val <= {self.val_cap} per source/label"
        ev = "full rendered eval" if self.eval_cap is None else f"rendered eval <= {self.eval_cap} per kind"
        return f"{text}; scored on {val}, {ev}"


def short(per_group: int, val_cap: int | None = 30, eval_cap: int | None = 20) -> Schedule:
    return Schedule(f"p{per_group}", 1, per_group, 1, val_cap, eval_cap)


FULL = Schedule("full", None, None, 2)


def one_epoch(threads: int = 2) -> Schedule:
    return Schedule("e1", 1, None, threads)


def on_subset(schedule: Schedule, subset: int | None) -> Schedule:
    """A smoke run's schedule: training capped like the --subset the rest of the run sees."""
    return replace(schedule, per_group=subset) if subset and schedule.per_group is None else schedule


def _train(settings, cfg, exclude_family: str | None = None):
    """model.train.fit's training, optionally without one generator family's AI images."""
    import random

    import torch

    from model.bundle import DetectorBundle
    from model.dataset import load_arrays
    from model.detectors import build_network
    from model.self_blend import add_twins
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
    x, y, blend = add_twins(train_s, x, y, cfg.blend)
    net = build_network(cfg.spec)
    loaded = time.perf_counter()

    def progress(step, total, loss, lr):  # long runs show where they are and how fast they go
        if step % 25 == 0 or step == total:
            per = (time.perf_counter() - loaded) / step
            print(f"  step {step}/{total} loss {loss:.3f} {per:.2f}s/step", flush=True)

    train_network(net, x, y, cfg, rng, on_step=progress, blend=blend)
    return DetectorBundle(net=net, spec=cfg.spec, pre=cfg.pre), time.perf_counter() - t0, len(y)  # twins too


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
    schedule: Schedule,
    rendered_eval: list[Sample],
) -> dict:
    """In-distribution AUROC, pooled AUROC, non-photo verdicts and the review-queue share of one fine-tune,
    with its timings. The schedule's val_cap scores at most that many val images per (source, label), the
    same ones for every seed; its eval_cap the first that many rendered eval images of each kind."""
    from model.manifest import subsample

    cfg = schedule.config(recipe, seed)
    bundle, train_s, n_train = _train(settings, cfg)
    _, y, _, cal = probe_masks(samples, feats)
    val = np.array([s.split == "val" for s in samples])
    if schedule.val_cap:
        keep = {id(s) for s in subsample([s for s in samples if s.split == "val"], schedule.val_cap, 0)}
        val &= np.array([id(s) in keep for s in samples])
    if schedule.eval_cap:
        rendered_eval = [s for s in rendered_eval if int(s.path.stem.rsplit("-", 1)[1]) < schedule.eval_cap]
    vi = np.flatnonzero(val)
    t0 = time.perf_counter()
    raw_val, ips = _score(bundle, [samples[i] for i in vi])
    raw_re, _ = _score(bundle, rendered_eval)
    score_s = time.perf_counter() - t0
    cal_v, y_v = cal[vi], y[vi]
    calib = fit_calibrator(raw_val[cal_v], y_v[cal_v], cfg.calibration)
    p_val, p_re = apply_calibrator(calib, raw_val), apply_calibrator(calib, raw_re)
    th = thresholds_at(p_val[cal_v], y_v[cal_v], cfg.target_fpr, cfg.target_fnr)
    ev = ~cal_v
    p_ev, y_ev = p_val[ev], y_v[ev]
    src_ev = np.array([samples[i].source for i in vi])[ev]
    return {
        "recipe": Path(recipe).stem,
        "seed": seed,
        "schedule": schedule.name,
        "schedule_text": schedule.describe(cfg.epochs),
        "per_group": cfg.per_group,
        "epochs": cfg.epochs,
        "val_cap": schedule.val_cap,
        "eval_cap": schedule.eval_cap,
        "n_val_scored": len(vi),
        "n_rendered_eval_scored": len(rendered_eval),
        "n_train": n_train,
        "train_seconds": train_s,
        "seconds_per_epoch": train_s / cfg.epochs,
        "score_seconds": score_s,
        "threads": cfg.threads,
        "score_images_per_s": ips,
        "thresholds": th,
        **eval_measures(p_ev, y_ev, src_ev, p_re, th),
    }


def fold_images(samples: list[Sample], family: str, seed: int) -> tuple[list[Sample], list[Sample], int]:
    """What a fold trained without `family` is scored on: (that family's AI images, at most FAMILY_SCORE_CAP
    of them, seeded; the real val images it is set against, the faces source's for face swaps; how many
    images the family has in all)."""
    import random

    table = load_sources()
    pos = [s for s in samples if s.label == "ai" and table.family_of(s) == family]
    n_family = len(pos)
    if len(pos) > FAMILY_SCORE_CAP:
        pos = random.Random(seed).sample(pos, FAMILY_SCORE_CAP)
    real = fold_real(family, [s.source for s in samples])
    neg = [s for s, r in zip(samples, real, strict=True) if r and s.split == "val" and s.label == "real"]
    return pos, neg, n_family


def finetune_family(settings, samples: list[Sample], recipe: Path, family: str, seed: int, schedule: Schedule) -> dict:
    """One leave-one-family-out fold of a fine-tune: trained without `family`, its images (at most
    FAMILY_SCORE_CAP, seeded) scored against real val images (the faces source's for face swaps)."""
    cfg = schedule.config(recipe, seed)
    bundle, train_s, n_train = _train(settings, cfg, exclude_family=family)
    pos, neg, n_family = fold_images(samples, family, seed)
    s_pos, _ = _score(bundle, pos)
    s_neg, _ = _score(bundle, neg)
    return {
        "recipe": Path(recipe).stem,
        "seed": seed,
        "family": family,
        "schedule": schedule.name,
        "schedule_text": schedule.describe(cfg.epochs, scored=False),
        "n_train": n_train,
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


def self_blend_probe(
    settings,
    samples: list[Sample],
    recipe: Path,
    seed: int,
    epochs: int,
    threads: int = 2,
    per_group: int | None = None,
) -> dict:
    """Whether self-blended twins (model.self_blend) teach face swaps: `recipe` trained for `epochs` without the
    face-swap family, then scored on the val face swaps and on self-blends of the faces source's real val images,
    each against those real images. The blends use `recipe`'s blend settings, or the faces source's default
    ones for a recipe without any, so every recipe is asked the same question."""
    import random

    from model.bundle import score_arrays
    from model.dataset import load_arrays
    from model.leave_out import FACE_REAL_SOURCE, FACE_SWAP
    from model.self_blend import BlendConfig, self_blend

    table = load_sources()
    cfg = Schedule("probe", epochs, per_group, threads).config(recipe, seed)
    bundle, train_s, n_train = _train(settings, cfg, exclude_family=FACE_SWAP)
    swaps = [s for s in samples if s.split == "val" and s.label == "ai" and table.family_of(s) == FACE_SWAP]
    real = [s for s in samples if s.split == "val" and s.label == "real" and s.source == FACE_REAL_SOURCE]
    x_real = load_arrays(real, bundle.pre)
    blend = cfg.blend if cfg.blend.sources else BlendConfig(sources=(FACE_REAL_SOURCE,))
    rng = random.Random(seed + 1000)  # not the training stream: these blends were never seen
    s_real = score_arrays(bundle, x_real)
    s_blend = score_arrays(bundle, np.stack([self_blend(x, blend, rng) for x in x_real]))
    s_swap, _ = _score(bundle, swaps)
    return {
        "recipe": Path(recipe).stem,
        "seed": seed,
        "epochs": epochs,
        "n_train": n_train,  # self-blended twins included
        "per_group": per_group,
        "train_seconds": train_s,
        "n_face_swaps": len(swaps),
        "n_real_faces": len(real),
        "auroc_face_swaps": auroc(s_swap, s_real),
        "auroc_self_blends": auroc(s_blend, s_real),
    }
