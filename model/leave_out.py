"""Leave-out measures on frozen features: how the detector fares on generators and kinds of real photo it
never trained on. Run by `bench/leave_out.py` and `aidetect evaluate --leave-out`.

    feats = cached_features(manifest, samples, cache_dir)          # once per manifest (model.features)
    report = leave_out(samples, feats)                              # dict: baseline, families, real_sources

A logistic-regression head is fitted per fold on frozen EfficientNet-lite0 features (UnivFD's linear
probe), so a fold costs seconds, not a fine-tune:

- leave-one-generator-family-out: train without family F (`other` is always trained on), score every
  image of F (none was trained on) against real validation images: the `faces` source's real ones for
  face swaps (a face swap is judged against face photos), every real source's for the rest. AUROC with a
  bootstrap interval; the worst-family figure counts only families of at least MIN_FAMILY images.
- leave-one-real-source-out for the single-label real photo sources: train without source R, calibrate
  and set `high` (1% false positives) on the calibration half of val without R, then report the share
  of R's images at or above `high`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from model.calibration import apply_calibrator, fit_calibrator, thresholds_at
from model.features import FEATURE_VERSION, FeatureSet
from model.manifest import Sample
from model.metrics import bootstrap_metrics, rate_ci, tpr_at_fpr
from model.sources import OTHER, load_sources
from model.splits import calibration_mask, near_duplicate_groups

MIN_FAMILY = 50  # images a family needs before its figure counts towards the worst-family goal
FACE_SWAP = "face-swap"
FACE_REAL_SOURCE = "faces"


def fold_real(family: str, sources) -> np.ndarray:
    """Which real images a left-out family is scored against, as a mask over their `sources`: the faces
    source's for face swaps (a swap keeps the rest of a real face photo, so other real photos would make it
    easy), every source's for the other families. Callers add the split and label conditions."""
    sources = np.asarray(sources)
    return sources == FACE_REAL_SOURCE if family == FACE_SWAP else np.ones(len(sources), bool)


@dataclass(frozen=True)
class HeadConfig:
    c: float = 0.05  # inverse L2 strength of the logistic regression on standardised features
    max_iter: int = 3000  # lbfgs iterations
    balanced: bool = True  # weight classes equally (the data is 1:1 only per source, not overall)
    n_boot: int = 1000  # bootstrap resamples for each interval
    seed: int = 0


def fit_head(x: np.ndarray, y: np.ndarray, cfg: HeadConfig):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, class_weight="balanced" if cfg.balanced else None)
    return make_pipeline(StandardScaler(), clf).fit(x, y)


def auroc_row(scores_ai: np.ndarray, scores_real: np.ndarray, cfg: HeadConfig) -> dict:
    from sklearn.metrics import roc_auc_score

    s = np.r_[scores_ai, scores_real]
    t = np.r_[np.ones(len(scores_ai), int), np.zeros(len(scores_real), int)]
    if len(scores_ai) == 0 or len(scores_real) == 0:
        return {"auroc": float("nan"), "auroc_ci": [float("nan")] * 2, "tpr_at_1fpr": float("nan")}
    ci = bootstrap_metrics(s, t, cfg.n_boot, cfg.seed)
    return {"auroc": float(roc_auc_score(t, s)), "auroc_ci": list(ci["auroc"]), "tpr_at_1fpr": tpr_at_fpr(s, t)}


def _calibrate(head, x_cal, y_cal, fpr: float = 0.01) -> tuple[dict, dict]:
    raw = head.decision_function(x_cal)
    cal = fit_calibrator(raw, y_cal, "platt")
    return cal, thresholds_at(apply_calibrator(cal, raw), y_cal, fpr, fpr)


def probe_data(settings) -> tuple[list[Sample], FeatureSet]:
    """The manifest's samples and their frozen features, from the cache under the home (made once)."""
    from model.features import cached_features
    from model.manifest import read_manifest

    samples = read_manifest(settings.manifest)
    return samples, cached_features(settings.manifest, samples, settings.home / "cache" / "features")


def probe_masks(samples: list[Sample], feats: FeatureSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, targets, train mask, calibration-half mask) of `samples`: what every frozen-feature
    probe starts from. Calibration takes the near-duplicate-grouped half of val (model.splits); the
    other half of val is the one reported."""
    idx = feats.index(samples)
    x, thumbs = feats.x[idx], feats.thumbs[idx]
    y = np.array([s.target for s in samples])
    train = np.array([s.split == "train" for s in samples])
    vi = np.flatnonzero([s.split == "val" for s in samples])
    cal = np.zeros(len(samples), bool)
    cal[vi] = calibration_mask([samples[i].path.name for i in vi], near_duplicate_groups(thumbs[vi]))
    return x, y, train, cal


def leave_out(samples: list[Sample], feats: FeatureSet, cfg: HeadConfig = HeadConfig()) -> dict:
    table = load_sources()
    x, y, train, cal = probe_masks(samples, feats)
    fam = np.array([table.family_of(s) for s in samples])
    src = np.array([s.source for s in samples])
    val = np.array([s.split == "val" for s in samples])
    real_val = val & (y == 0)
    t0 = time.perf_counter()

    # The reference: a head trained on every training image, scored on the evaluation half of val.
    head = fit_head(x[train], y[train], cfg)
    cal_th = _calibrate(head, x[cal], y[cal])
    ev = val & ~cal
    p_ev = apply_calibrator(cal_th[0], head.decision_function(x[ev]))
    baseline = {"families": {}, "real_kind_fpr": {}}
    for f in sorted(set(fam[(y == 1) & ev])):
        neg = fold_real(f, src)
        baseline["families"][f] = auroc_row(p_ev[fam[ev] == f], p_ev[(y[ev] == 0) & neg[ev]], cfg)
        baseline["families"][f]["n_scored"] = int((fam[ev] == f).sum())
    for kind, sources in (("non-photo real", table.nonphoto_real), ("unseen real photo", table.unseen_real_photo)):
        hits = p_ev[(y[ev] == 0) & np.isin(src[ev], sources)] >= cal_th[1]["high"]
        rate, lo, hi = rate_ci(hits, cfg.n_boot, cfg.seed)
        baseline["real_kind_fpr"][kind] = {"n": int(len(hits)), "fpr_at_high": rate, "fpr_at_high_ci": [lo, hi]}
    baseline.update(auroc_row(p_ev[y[ev] == 1], p_ev[y[ev] == 0], cfg))
    baseline["thresholds"] = cal_th[1]

    families = []
    for f in sorted({str(v) for v in fam[y == 1]} - {OTHER}):
        t_fold = time.perf_counter()
        keep = train & (fam != f)
        head = fit_head(x[keep], y[keep], cfg)
        neg = real_val & fold_real(f, src)
        pos = fam == f
        s_pos, s_neg = head.decision_function(x[pos]), head.decision_function(x[neg])
        row = {"fold": f, "family": table.family_names.get(f, f), "n_scored": int(pos.sum()),
               "n_val": int((pos & val).sum()), "n_real": int(neg.sum()),
               "real_from": FACE_REAL_SOURCE if f == FACE_SWAP else "every real source (val)",
               "counted": bool(pos.sum() >= MIN_FAMILY), **auroc_row(s_pos, s_neg, cfg)}
        row["auroc_val_only"] = auroc_row(head.decision_function(x[pos & val]), s_neg, cfg)["auroc"]
        row["seconds"] = round(time.perf_counter() - t_fold, 2)
        families.append(row)

    real_sources = []
    for r in table.unseen_real_photo:
        if not (src == r).any():
            continue
        keep = train & (src != r)
        head = fit_head(x[keep], y[keep], cfg)
        c = cal & (src != r)
        calib, th = _calibrate(head, x[c], y[c])
        p_r = apply_calibrator(calib, head.decision_function(x[src == r]))
        rate, lo, hi = rate_ci(p_r >= th["high"], cfg.n_boot, cfg.seed)
        base_hits = p_ev[src[ev] == r] >= baseline["thresholds"]["high"]
        real_sources.append({
            "fold": r, "n_scored": int((src == r).sum()), "fpr_at_high": rate, "fpr_at_high_ci": [lo, hi],
            "high": th["high"], "called_real": float((p_r < th["low"]).mean()),
            "fpr_at_high_when_trained_on": float(base_hits.mean()) if len(base_hits) else float("nan"),
        })

    counted = [r for r in families if r["counted"] and r["auroc"] == r["auroc"]]
    all_aurocs = [r["auroc"] for r in families if r["auroc"] == r["auroc"]]
    worst = min(counted, key=lambda r: r["auroc"]) if counted else None
    summary = {
        "family_auroc_mean": float(np.mean(all_aurocs)) if all_aurocs else float("nan"),
        "family_auroc_mean_counted": float(np.mean([r["auroc"] for r in counted])) if counted else float("nan"),
        "family_auroc_worst": worst["auroc"] if worst else float("nan"),
        "family_worst": worst["fold"] if worst else None,
        "real_source_fpr_mean": float(np.mean([r["fpr_at_high"] for r in real_sources])) if real_sources else None,
        "real_source_fpr_worst": max((r["fpr_at_high"] for r in real_sources), default=None),
        "min_family_images": MIN_FAMILY,
    }
    return {
        "feature": FEATURE_VERSION,
        "feature_dims": int(x.shape[1]),
        "n_images": len(samples),
        "unmapped_origins": table.unmapped(samples),  # counted as `other`: configs/sources.yaml lists them not
        "head": asdict(cfg),
        "baseline": baseline,
        "families": families,
        "real_sources": real_sources,
        "summary": summary,
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }


# --- the job: features from the cache, folds, JSON, MLflow ------------------------------------------


def run_leave_out(settings, out_json=None, threads: int = 1, per_group: int | None = None, progress=None,
                  cfg: HeadConfig = HeadConfig(), log_mlflow: bool = True) -> dict:
    """Features (cached under <home>/cache/features), every fold, then JSON and an MLflow run."""
    import json
    from pathlib import Path

    import torch

    from model.features import cached_features, manifest_digest
    from model.manifest import read_manifest, subsample
    from model.progress import task_bar

    torch.set_num_threads(threads)
    samples = read_manifest(settings.manifest)
    if per_group:
        samples = subsample(samples, per_group)
    cache = Path(settings.home) / "cache" / "features"
    t0 = time.perf_counter()
    with task_bar(progress, "frozen features", len(samples)) as tick:
        feats = cached_features(settings.manifest, samples, cache, tick)
    t_feat = time.perf_counter() - t0
    report = leave_out(samples, feats, cfg)
    report.update({
        "manifest": str(settings.manifest), "manifest_digest": manifest_digest(settings.manifest),
        "per_group": per_group, "threads": threads, "feature_seconds": round(t_feat, 1),
        "feature_computed_seconds": round(feats.seconds, 1), "feature_cache": str(cache),
        "feature_cache_made_seconds": round(feats.computed_seconds, 1),
        "feature_cache_made_threads": feats.computed_threads,
        "feature_images_per_s": round(len(samples) / feats.computed_seconds, 2) if feats.computed_seconds else None,
        "goals": {"family_auroc_mean": 0.90, "family_auroc_worst": 0.80, "real_fpr_at_high": 0.05},
    })
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(_clean(report), indent=2) + "\n")
    if log_mlflow:
        report["run_id"] = _log_mlflow(settings, report)
    return report


def _clean(d):
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_clean(v) for v in d]
    return None if isinstance(d, float) and d != d else d


def _log_mlflow(settings, report: dict) -> str:
    import tempfile
    from pathlib import Path

    import mlflow
    import pandas as pd

    from model import registry
    from model.plots import leave_out_plot
    from model.sources import SOURCES_TABLE

    registry.configure(settings)
    exp_id = registry.ensure_experiment(settings)
    with mlflow.start_run(experiment_id=exp_id, run_name="leave-out") as run:
        mlflow.set_tags({"aidetect.manifest.sha256": report["manifest_digest"], "benchmark": "leave_out"})
        mlflow.log_params({"feature": report["feature"], "feature_dims": report["feature_dims"],
                           "n_images": report["n_images"], "per_group": report["per_group"],
                           **{f"head.{k}": v for k, v in report["head"].items()}})
        s = report["summary"]
        mlflow.log_metrics({f"leave_out_{k}": float(v) for k, v in s.items()
                            if isinstance(v, int | float) and v == v})
        mlflow.log_metrics({f"leave_out_family_{r['fold']}_auroc": r["auroc"] for r in report["families"]
                            if r["auroc"] == r["auroc"]})
        mlflow.log_metrics({f"leave_out_real_{r['fold']}_fpr": r["fpr_at_high"] for r in report["real_sources"]})
        cols = ["fold", "family", "n_scored", "n_val", "n_real", "real_from", "counted", "auroc", "auroc_ci",
                "auroc_val_only", "tpr_at_1fpr"]
        mlflow.log_table(pd.DataFrame([{c: r.get(c) for c in cols} for r in report["families"]]),
                         "leave_out/families.json")
        mlflow.log_table(pd.DataFrame(report["real_sources"]), "leave_out/real_sources.json")
        mlflow.log_dict(_clean(report), "leave_out/leave_out.json")
        mlflow.log_artifact(str(SOURCES_TABLE), "leave_out")
        with tempfile.TemporaryDirectory() as tmp:
            leave_out_plot(report["families"], Path(tmp) / "families_auroc.png",
                           "leave-one-family-out AUROC (grey: < 50 images)", "auroc", goal=0.80)
            leave_out_plot(report["real_sources"], Path(tmp) / "real_sources_fpr.png",
                           "leave-one-real-source-out: FPR at high", "fpr_at_high", goal=0.05)
            for png in Path(tmp).glob("*.png"):
                mlflow.log_artifact(str(png), "leave_out")
    return run.info.run_id
