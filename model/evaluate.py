"""Evaluate a detector on a manifest split: AUROC, AP, TPR at 1% FPR and ECE with bootstrap 95% intervals
per group, and how often real non-photos and unseen kinds of real photo are called AI; as stored and
re-encoded at JPEG q60.

    result = evaluate_bundle(bundle, manifest, out_dir)   # the dict below + PNG plots in out_dir

Groups (model.sources): every two-label source with at least 100 images in the scored part, the
single-label sources pooled (all of them, AI and real together; never one alone, as one label gives no
AUROC), and overall. On the val split only the evaluation half is scored: the other half fitted
calibration and thresholds (model.splits), so no figure is in-sample. Images go through the serving
decode path, and the q60 copies through what a platform does to an upload (JPEG 60, at most 768 px).

Robustness tiers (model.robustness: JPEG 60/75/95, downscale 0.75/0.5, crops of 60-90%, a screenshot
re-render) score every image again after that transform, and report AUROC per tier and group and the
drop against as stored. A separately rendered set of real non-photos (model.nonphoto, `eval` setting: other
fonts, templates and tools than training's) gets its verdict shares as its own kind of real image.
`operating_points` refits the thresholds on the calibration half at other error targets and reports the
review queue and the errors each would give on the scored half (model.calibration.operating_points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from model.bundle import DetectorBundle
from model.calibration import OPERATING_GRID, operating_points, verdict_hits
from model.manifest import Sample, read_manifest
from model.metrics import binary_metrics, metrics_with_ci, per_source_metrics, rate_ci
from model.preprocess import decode_image, encode_jpeg, fit_to_size
from model.robustness import TIERS, Tier
from model.sources import MIN_SOURCE_N, OVERALL, POOLED, group_of_sources, load_sources
from model.splits import calibration_parts

CALIBRATION_SPLIT = "val"  # the split whose calibration half is never scored
N_BOOT = 1000


def recompress(img: Image.Image, quality: int = 60, max_side: int = 768) -> Image.Image:
    """What a platform does to an upload: downscale to max_side, then JPEG at `quality`."""
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return decode_image(encode_jpeg(img, quality))


def load_split(samples: list[Sample], bundle: DetectorBundle, transform=None, on_item=None) -> np.ndarray:
    """Decoded as serving decodes; `transform` (a function of the image, or a robustness Tier, seeded by the
    file name) applied before the serving resize, as it happens to an upload before it reaches us."""
    arrs = []
    for s in samples:
        img = decode_image(s.path.read_bytes(), bundle.pre)
        if isinstance(transform, Tier):
            img = transform.apply(img, s.path.name)
        elif transform is not None:
            img = transform(img)
        arrs.append(np.asarray(fit_to_size(img, bundle.pre)))
        if on_item:
            on_item()
    return np.stack(arrs)


def score_samples(bundle: DetectorBundle, samples: list[Sample], transform=None, on_item=None):
    from model.train import score_arrays

    raw = score_arrays(bundle, load_split(samples, bundle, transform, on_item))
    return raw, bundle.calibrate(raw)


def evaluation_part(samples: list[Sample], images: np.ndarray, split: str) -> tuple[np.ndarray, str]:
    """Which images to score, and the sentence the report gives for it: the same split training made."""
    if split != CALIBRATION_SPLIT:
        return np.ones(len(samples), bool), f"all of split {split!r} (calibration used {CALIBRATION_SPLIT!r})"
    targets = np.array([s.target for s in samples])
    _, ev, how = calibration_parts([s.path.name for s in samples], images, targets)
    if ev.all():
        return ev, f"all of {split!r} ({how})"
    return ev, f"the evaluation half of {split!r}; {how}"


def group_masks(samples: list[Sample], min_n: int = MIN_SOURCE_N) -> dict[str, np.ndarray]:
    """overall, each reportable two-label source, and the single-label pool, as boolean masks."""
    groups = group_of_sources(samples, min_n)
    src = np.array([s.source for s in samples])
    masks = {OVERALL: np.ones(len(samples), bool)}
    for name in sorted({g for g in groups.values() if g and g != POOLED}):
        masks[name] = src == name
    pooled = np.isin(src, [s for s, g in groups.items() if g == POOLED])
    if pooled.any():
        masks[POOLED] = pooled
    return masks


def group_metrics(probs, targets, masks, raw_probs=None, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, dict]:
    out = {}
    for name, sel in masks.items():
        out[name] = metrics_with_ci(probs[sel], targets[sel], None if raw_probs is None else raw_probs[sel],
                                    n_boot=n_boot, seed=seed)
    return out


def real_kind_rates(probs, samples: list[Sample], thresholds: dict, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Shares called ai_generated / real / uncertain on real non-photos and on unseen real-photo sources,
    pooled per kind and per source, each share with its bootstrap interval."""
    table = load_sources()
    src = np.array([s.source for s in samples])
    real = np.array([s.label == "real" for s in samples])
    ai_hit, real_hit = verdict_hits(probs, thresholds)
    kinds = {"non-photo real": table.nonphoto_real, "unseen real photo": table.unseen_real_photo}
    out: dict[str, dict] = {}
    for kind, sources in kinds.items():
        sel = real & np.isin(src, sources)
        out[kind] = _shares(ai_hit[sel], real_hit[sel], n_boot)
        out[kind]["sources"] = {s: _shares(ai_hit[sel & (src == s)], real_hit[sel & (src == s)], n_boot)
                                for s in sources if (sel & (src == s)).any()}
    return out


RENDERED_KIND = "rendered non-photo (eval set)"


def rendered_nonphoto_rates(bundle: DetectorBundle, samples: list[Sample], n_boot: int = N_BOOT) -> dict:
    """Verdict shares on the separately rendered non-photo set, pooled and per kind (chart, meme, ...)."""
    probs = score_samples(bundle, samples)[1]
    ai_hit, real_hit = verdict_hits(probs, bundle.thresholds)
    kinds = np.array([s.origin for s in samples])
    out = _shares(ai_hit, real_hit, n_boot)
    out["sources"] = {k: _shares(ai_hit[kinds == k], real_hit[kinds == k], n_boot) for k in sorted(set(kinds))}
    return out


def band_choices(bundle: DetectorBundle, cal_images, cal_targets, probs, targets, nonphoto) -> list[dict]:
    """model.calibration.operating_points for this model: the band refitted on the calibration half for
    each pair of targets, shares on the scored half (`nonphoto` masks its real non-photos); `trained` marks
    the targets the bundle was fitted with. Empty where no calibration half was set apart (a split other
    than val) or it holds one label."""
    if len(set(np.asarray(cal_targets).tolist())) < 2:
        return []
    from model.train import TrainConfig, score_arrays

    p_cal = bundle.calibrate(score_arrays(bundle, cal_images))
    rows = operating_points(p_cal, cal_targets, probs, targets, nonphoto, OPERATING_GRID)
    # Bundles fitted before the targets were recorded were fitted at training's defaults.
    th = bundle.thresholds
    trained = (th.get("fpr", TrainConfig.target_fpr), th.get("fnr", TrainConfig.target_fnr))
    for r in rows:
        r["trained"] = bool(np.allclose((r["fpr"], r["fnr"]), trained))
    return rows


def tier_metrics(bundle, samples, targets, masks, base: dict, tiers, on_item=None) -> tuple[dict, dict]:
    """AUROC per robustness tier and group, and its drop against as stored (positive = worse)."""
    aurocs, drops = {}, {}
    for tier in tiers:
        probs = score_samples(bundle, samples, transform=tier, on_item=on_item)[1]
        aurocs[tier.name] = {g: binary_metrics(probs[m], targets[m])["auroc"] for g, m in masks.items()}
        drops[tier.name] = {g: base[g]["auroc"] - a for g, a in aurocs[tier.name].items() if a == a}
    return aurocs, drops


def _shares(ai_hit: np.ndarray, real_hit: np.ndarray, n_boot: int) -> dict:
    uncertain = ~ai_hit & ~real_hit
    out: dict = {"n": int(len(ai_hit))}
    for name, hits in (("ai_generated", ai_hit), ("real", real_hit), ("uncertain", uncertain)):
        rate, lo, hi = rate_ci(hits, n_boot)
        out[name], out[f"{name}_ci"] = rate, [lo, hi]
    return out


def evaluate_bundle(
    bundle: DetectorBundle,
    manifest: Path,
    out_dir: Path,
    split: str = "val",
    samples: list[Sample] | None = None,
    progress=None,
    n_boot: int = N_BOOT,
    min_source_n: int = MIN_SOURCE_N,
    tiers: tuple[Tier, ...] = TIERS,
    nonphoto: list[Sample] | None = None,
) -> dict:
    from model.plots import group_ci_plot, operating_points_plot, reliability_plot, roc_plot
    from model.progress import task_bar
    from model.train import score_arrays

    samples = samples if samples is not None else read_manifest(manifest, split=split)
    if not samples:
        raise ValueError(f"{manifest}: no images in split {split!r}")
    with task_bar(progress, f"decoding {split}", len(samples)) as tick:
        images = load_split(samples, bundle, on_item=tick)
    part, part_text = evaluation_part(samples, images, split)
    n_split = len(samples)
    cal_images, cal_targets = images[~part], np.array([s.target for s, p in zip(samples, part, strict=True) if not p])
    samples, images = [s for s, p in zip(samples, part, strict=True) if p], images[part]
    targets = np.array([s.target for s in samples])
    sources = [s.source for s in samples]
    with task_bar(progress, f"evaluating {split}", (2 + len(tiers)) * len(samples)) as tick:
        raw = score_arrays(bundle, images)
        for _ in samples:
            tick()
        raw60, probs60 = score_samples(bundle, samples, transform=recompress, on_item=tick)
        probs = bundle.calibrate(raw)
        sig, sig60 = 1 / (1 + np.exp(-raw)), 1 / (1 + np.exp(-raw60))
        masks = group_masks(samples, min_source_n)
        groups = group_metrics(probs, targets, masks, sig, n_boot)
        tier_auroc, tier_drop = tier_metrics(bundle, samples, targets, masks, groups, tiers, tick)
    real_kinds = real_kind_rates(probs, samples, bundle.thresholds, n_boot)
    with task_bar(progress, "refitting the band on the calibration half", 1) as tick:
        nonphoto_real = (targets == 0) & np.isin(sources, load_sources().nonphoto_real)
        points = band_choices(bundle, cal_images, cal_targets, probs, targets, nonphoto_real)
        tick()
    if nonphoto:
        with task_bar(progress, "scoring rendered non-photos", 1) as tick:
            real_kinds[RENDERED_KIND] = rendered_nonphoto_rates(bundle, nonphoto, n_boot)
            tick()
    groups_q60 = {k: binary_metrics(probs60[m], targets[m]) for k, m in masks.items()}
    metrics = per_source_metrics(probs, targets, sources, sig)
    metrics_q60 = per_source_metrics(probs60, targets, sources, sig60)
    th = bundle.thresholds
    fp_rate = float((probs[targets == 0] >= th["high"]).mean()) if (targets == 0).any() else float("nan")
    fn_rate = float((probs[targets == 1] < th["low"]).mean()) if (targets == 1).any() else float("nan")
    out_dir.mkdir(parents=True, exist_ok=True)
    roc_plot(probs, targets, sources, out_dir / "roc.png")
    if points:
        operating_points_plot(points, out_dir / "operating_points.png")
    reliability_plot(sig, probs, targets, out_dir / "reliability.png")
    group_ci_plot(groups, out_dir / "groups_ci.png")
    return {
        "split": split,
        "n": len(samples),
        "n_split": n_split,
        "scored": part_text,
        "groups": groups,
        "groups_q60": groups_q60,
        "metrics": metrics,
        "metrics_q60": metrics_q60,
        "auroc_drop_q60": {
            k: groups[k]["auroc"] - groups_q60[k]["auroc"] for k in groups if groups[k]["auroc"] == groups[k]["auroc"]
        },
        "tiers": {t.name: t.what for t in tiers},
        "tier_auroc": tier_auroc,
        "tier_auroc_drop": tier_drop,
        "worst_tier_drop": {g: max((d[g] for d in tier_drop.values() if g in d), default=float("nan"))
                            for g in groups},
        "real_kinds": real_kinds,
        "thresholds": th,
        "fp_rate_at_high": fp_rate,
        "fn_rate_below_low": fn_rate,
        "verdict_counts": {v: bundle.verdicts(probs).count(v) for v in ("real", "uncertain", "ai_generated")},
        "operating_points": points,
        "bootstrap": {"resamples": n_boot, "seed": 0, "level": 0.95, "stratified_by": "label"},
    }


def group_rows(result: dict) -> list[dict]:
    """One flat row per group: the table printed by the CLI and logged to MLflow."""
    rows = []
    for g, m in result["groups"].items():
        row = {"group": g, "n": int(m["n"]), "n_ai": int(m["n_ai"])}
        for k in ("auroc", "ap", "tpr_at_1fpr", "ece"):
            row[k], (row[f"{k}_lo"], row[f"{k}_hi"]) = m[k], m[f"{k}_ci"]
        row["auroc_q60"] = result["groups_q60"][g]["auroc"]
        rows.append(row)
    return rows


def tier_rows(result: dict) -> list[dict]:
    """One row per group: AUROC as stored, then AUROC and drop per robustness tier."""
    rows = []
    for g, m in result["groups"].items():
        row = {"group": g, "auroc": m["auroc"]}
        for tier, by_group in result.get("tier_auroc", {}).items():
            row[tier] = by_group.get(g, float("nan"))
            row[f"{tier}_drop"] = result["tier_auroc_drop"][tier].get(g, float("nan"))
        rows.append(row)
    return rows


def real_kind_rows(result: dict) -> list[dict]:
    rows = []
    for kind, r in result["real_kinds"].items():
        for name, m in [(kind, r), *[(f"  {s}", v) for s, v in r["sources"].items()]]:
            rows.append({"real images": name, "n": m["n"], **{k: m[k] for k in ("ai_generated", "real", "uncertain")},
                         "ai_generated_lo": m["ai_generated_ci"][0], "ai_generated_hi": m["ai_generated_ci"][1]})
    return rows


def flat_group_metrics(result: dict, prefix: str = "val") -> dict[str, float]:
    """MLflow metric names: val_group_<group>_<metric>[_lo|_hi], val_nonphoto_real_ai_generated, ..."""
    out = {}
    for row in group_rows(result):
        tag = row["group"].replace(" ", "_")
        out.update({f"{prefix}_group_{tag}_{k}": float(v) for k, v in row.items()
                    if k not in ("group",) and isinstance(v, int | float) and v == v})
    for tier, drops in result.get("tier_auroc_drop", {}).items():
        out.update({f"{prefix}_tier_{tier}_{g.replace(' ', '_')}_auroc_drop": float(v) for g, v in drops.items()})
    for kind, r in result["real_kinds"].items():
        tag = kind.replace(" ", "_").replace("-", "").replace("(", "").replace(")", "")
        out.update({f"{prefix}_{tag}_{k}": float(r[k]) for k in ("ai_generated", "real", "uncertain") if r[k] == r[k]})
    return out


def log_to_mlflow(result: dict, plots_dir: Path | None = None) -> None:
    """Into the active MLflow run: group metrics with their intervals, the tables and the plots."""
    import mlflow
    import pandas as pd

    from model.sources import SOURCES_TABLE

    mlflow.log_metrics(flat_group_metrics(result, result["split"]))
    mlflow.log_table(pd.DataFrame(group_rows(result)), "evaluation/groups.json")
    mlflow.log_table(pd.DataFrame(real_kind_rows(result)), "evaluation/real_kinds.json")
    mlflow.log_table(pd.DataFrame(tier_rows(result)), "evaluation/robustness_tiers.json")
    if result.get("operating_points"):
        mlflow.log_table(pd.DataFrame(result["operating_points"]), "evaluation/operating_points.json")
    mlflow.log_param("scored", result["scored"][:480])
    mlflow.log_artifact(str(SOURCES_TABLE), "evaluation")
    for png in sorted(Path(plots_dir).glob("*.png")) if plots_dir else []:
        mlflow.log_artifact(str(png), "plots")
