"""Issue 15's recipe comparison on frozen features: the measures of one recipe and seed, from cached features.

    feats = recipe_features(settings, samples, FROZEN["c"])   # {"data", "rendered_train", "rendered_eval"}
    row = frozen_unit(samples, feats, FROZEN["c"], seed=0)

A frozen recipe is a list of feature sets (model.features: stage means/stds of an ImageNet EfficientNet-lite,
[-1, 1] scaling; or model.hf_features' high-frequency statistics) concatenated, and a logistic head on them
(standardised features), as UnivFD's linear probe. Fine-tuned recipes
(configs/*.yaml) are measured by model/recipe_finetune.py with the same measures; bench/recipes.py runs both
and builds the table.

Seeds: a logistic head on fixed features is deterministic, so a seed draws the training set instead: a
seeded 85% of the training images (near-duplicate groups are already within one split). The spread over
seeds is then the spread from the data a recipe happens to see, which is what a retrain on new data would show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from model.calibration import apply_calibrator
from model.features import FeatureSet, cached_features
from model.leave_out import MIN_FAMILY, HeadConfig, _calibrate, fit_head, fold_real, probe_masks
from model.manifest import Sample
from model.sources import OTHER, load_sources

IN_DISTRIBUTION = ("coco-imagenet-sd", "faces")  # the two-label sources of the old data
TRAIN_FRACTION = 0.85  # share of the training images one seed of a frozen recipe trains on
NONPHOTO_TRAIN_PER_KIND = 60  # rendered non-photos per kind on the real side of training (configs' nonphoto_per_kind)
NONPHOTO_EVAL_PER_KIND = 40  # rendered with other tools, never trained on (model.jobs.NONPHOTO_EVAL_PER_KIND)


@dataclass(frozen=True)
class FrozenRecipe:
    name: str
    title: str
    backbones: tuple[tuple[str, bool], ...]  # (arch, residual input) of each concatenated feature set
    c: float = 0.05  # the head's inverse L2 strength (model.leave_out.HeadConfig)


FROZEN = {
    "c-lite0": FrozenRecipe("c-lite0", "frozen lite0 stages + linear head", (("efficientnet-lite0", False),)),
    "c-lite1": FrozenRecipe("c-lite1", "frozen lite1 stages + linear head", (("efficientnet-lite1", False),)),
    "c-lite2": FrozenRecipe("c-lite2", "frozen lite2 stages + linear head", (("efficientnet-lite2", False),)),
    "c": FrozenRecipe(
        "c",
        "(c) frozen lite0+1+2 stages + linear head (UnivFD-style)",
        (("efficientnet-lite0", False), ("efficientnet-lite1", False), ("efficientnet-lite2", False)),
    ),
    "d": FrozenRecipe(
        "d",
        "(d) fusion: (c) + (b)'s high-frequency traces as hand-made statistics (model.hf_features)",
        (
            ("efficientnet-lite0", False),
            ("efficientnet-lite1", False),
            ("efficientnet-lite2", False),
            ("hf-stats", False),
        ),
    ),
    "d-lite0": FrozenRecipe(
        "d-lite0",
        "lite0 stages + high-frequency statistics",
        (("efficientnet-lite0", False), ("hf-stats", False)),
    ),
}


def backbones_needed(recipes) -> list[tuple[str, bool]]:
    return sorted({b for r in recipes for b in r.backbones})


def rendered_sets(settings, cap: int | None = None) -> dict[str, tuple]:
    """(manifest path, samples) of the rendered non-photo train and eval sets, rendered once into the cache;
    `cap` (smoke runs) renders at most that many per kind."""
    from model.nonphoto import cached_set, set_folder

    cache = settings.home / "cache"
    out = {}
    for name, setting, n in (
        ("rendered_train", "train", min(NONPHOTO_TRAIN_PER_KIND, cap or 10**6)),
        ("rendered_eval", "eval", min(NONPHOTO_EVAL_PER_KIND, cap or 10**6)),
    ):
        samples = cached_set(cache, setting, n, 0, settings.manifest)
        out[name] = (set_folder(cache, setting, n, 0, settings.manifest) / "manifest.csv", samples)
    return out


def backbone_features(
    settings, samples: list[Sample], arch: str, residual: bool, on_item=None, cap: int | None = None
) -> dict:
    """The data's and both rendered sets' features for one backbone, each cached (model.features)."""
    cache = settings.home / "cache" / "features"
    out = {"data": cached_features(settings.manifest, samples, cache, on_item, arch, residual)}
    for name, (manifest, rs) in rendered_sets(settings, cap).items():
        out[name] = cached_features(manifest, rs, cache, on_item, arch, residual)
    return out


def recipe_features(
    settings, samples: list[Sample], recipe: FrozenRecipe, cap: int | None = None
) -> dict[str, FeatureSet]:
    """The recipe's backbones concatenated, for the data and the rendered sets (rows in each set's order)."""
    parts = [backbone_features(settings, samples, a, r, cap=cap) for a, r in recipe.backbones]
    out = {}
    for name in parts[0]:
        # a cache file may hold more images than asked (a subset reads the whole set's): the smallest decides
        first = min((p[name] for p in parts), key=lambda f: len(f.names))
        xs = [p[name].x[p[name].index_names(first.names)] for p in parts]
        out[name] = FeatureSet(
            first.names,
            np.concatenate(xs, axis=1),
            first.thumbs,
            # seconds the features of these images took: each part's per-image time, summed
            computed_seconds=len(first.names) * sum(p[name].computed_seconds / len(p[name].names) for p in parts),
            computed_threads=first.computed_threads,
        )
    return out


# --- the measures ---------------------------------------------------------------------------------------


def verdict_shares(p: np.ndarray, th: dict) -> dict:
    """Shares called ai_generated (>= high), real (< low) and uncertain (between)."""
    ai = p >= th["high"]
    real = (p < th["low"]) & ~ai
    n = max(1, len(p))
    return {
        "n": int(len(p)),
        "ai_generated": float(ai.sum() / n),
        "real": float(real.sum() / n),
        "uncertain": float((~ai & ~real).sum() / n),
    }


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def eval_measures(p_ev: np.ndarray, y_ev: np.ndarray, src_ev: np.ndarray, p_rendered: np.ndarray, th: dict) -> dict:
    """The measures every recipe reports from calibrated scores of the evaluation half of val (p_ev, with
    targets and sources) and of the rendered eval non-photos, at thresholds `th`."""
    table = load_sources()
    out = {"auroc_val": auroc(p_ev[y_ev == 1], p_ev[y_ev == 0])}
    # every evaluation-half image's verdict: `uncertain` is the review queue's load
    out["val_verdicts"] = verdict_shares(p_ev, th)
    for s in IN_DISTRIBUTION:
        m = src_ev == s
        out[f"auroc_{s}"] = auroc(p_ev[m & (y_ev == 1)], p_ev[m & (y_ev == 0)])
    single = ~np.isin(src_ev, [*IN_DISTRIBUTION, "playground"])
    out["auroc_pooled_single_label"] = auroc(p_ev[single & (y_ev == 1)], p_ev[single & (y_ev == 0)])
    out["nonphoto_rendered_eval"] = verdict_shares(p_rendered, th)
    out["nonphoto_shared_val"] = verdict_shares(p_ev[np.isin(src_ev, table.nonphoto_real) & (y_ev == 0)], th)
    out["unseen_real_photo_val"] = verdict_shares(p_ev[np.isin(src_ev, table.unseen_real_photo) & (y_ev == 0)], th)
    return out


def seeded_train(train: np.ndarray, seed: int, fraction: float = TRAIN_FRACTION) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return train & (rng.random(len(train)) < fraction)


def frozen_unit(
    samples: list[Sample], feats: dict[str, FeatureSet], recipe: FrozenRecipe, seed: int, families: bool = True
) -> dict:
    """Every measure of one frozen recipe and seed: in-distribution and pooled AUROC, non-photo verdicts,
    unseen real-photo FPR, and leave-one-family-out AUROC (model.leave_out's protocol)."""
    table = load_sources()
    cfg = HeadConfig(c=recipe.c, seed=seed)
    data, r_train, r_eval = feats["data"], feats["rendered_train"], feats["rendered_eval"]
    x, y, train, cal = probe_masks(samples, data)
    train = seeded_train(train, seed)
    src = np.array([s.source for s in samples])
    fam = np.array([table.family_of(s) for s in samples])
    val = np.array([s.split == "val" for s in samples])
    ev = val & ~cal
    x_rt, x_re = r_train.x, r_eval.x

    def fit(keep):
        return fit_head(np.r_[x[keep], x_rt], np.r_[y[keep], np.zeros(len(x_rt), int)], cfg)

    t0 = time.perf_counter()
    head = fit(train)
    fit_s = time.perf_counter() - t0
    calib, th = _calibrate(head, x[cal], y[cal])

    def prob(xx):
        return apply_calibrator(calib, head.decision_function(xx))

    p_ev = prob(x[ev])
    y_ev, src_ev = y[ev], src[ev]
    row = {
        "recipe": recipe.name,
        "seed": seed,
        "n_train": int(train.sum()) + len(x_rt),
        "head_fit_seconds": fit_s,
        "thresholds": th,
        **eval_measures(p_ev, y_ev, src_ev, prob(x_re), th),
    }
    if families:
        row["families"] = family_folds(x, y, train, val, src, fam, fit)
    return row


def family_folds(x, y, train, val, src, fam, fit) -> dict:
    """Leave-one-generator-family-out AUROC: train without F (`other` always kept), score all of F against
    real val images (the faces source's for face swaps)."""
    out = {}
    for f in sorted({str(v) for v in fam[y == 1]} - {OTHER}):
        head = fit(train & (fam != f))
        neg = val & (y == 0) & fold_real(f, src)
        pos = fam == f
        out[f] = {
            "auroc": auroc(head.decision_function(x[pos]), head.decision_function(x[neg])),
            "n": int(pos.sum()),
            "counted": bool(pos.sum() >= MIN_FAMILY),
        }
    return out


def family_summary(families: dict) -> dict:
    counted = {f: r["auroc"] for f, r in families.items() if r["counted"] and r["auroc"] == r["auroc"]}
    if not counted:
        return {"family_auroc_mean": float("nan"), "family_auroc_worst": float("nan"), "family_worst": None}
    worst = min(counted, key=counted.get)
    return {
        "family_auroc_mean": float(np.mean(list(counted.values()))),
        "family_auroc_worst": counted[worst],
        "family_worst": worst,
    }
