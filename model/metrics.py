"""Detection metrics, overall and per source: AUROC, AP, accuracy, ECE, TPR at a fixed FPR.

Pure functions over numpy arrays; scikit-learn does the curves.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width bins of P(ai)."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(probs, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(targets[sel].mean() - probs[sel].mean())
    return float(ece)


def tpr_at_fpr(scores: np.ndarray, targets: np.ndarray, fpr: float = 0.01) -> float:
    """Share of AI images caught when at most `fpr` of real images are flagged."""
    f, t, _ = roc_curve(targets, scores)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def binary_metrics(probs: np.ndarray, targets: np.ndarray, raw_probs: np.ndarray | None = None) -> dict:
    """Metrics of calibrated probabilities; `raw_probs` (uncalibrated) adds ece_before."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel().astype(int)
    out: dict[str, float] = {"n": float(len(targets)), "n_ai": float(targets.sum())}
    both = len(np.unique(targets)) == 2
    out["auroc"] = float(roc_auc_score(targets, probs)) if both else float("nan")
    out["ap"] = float(average_precision_score(targets, probs)) if both else float("nan")
    out["tpr_at_1fpr"] = tpr_at_fpr(probs, targets, 0.01) if both else float("nan")
    out["accuracy"] = float(accuracy_score(targets, probs >= 0.5))
    out["ece"] = expected_calibration_error(probs, targets)
    if raw_probs is not None:
        out["ece_before"] = expected_calibration_error(raw_probs, targets)
    return out


def per_source_metrics(
    probs: np.ndarray, targets: np.ndarray, sources: list[str], raw_probs: np.ndarray | None = None
) -> dict[str, dict]:
    """{'overall': {...}, '<source>': {...}, ...}"""
    probs, targets = np.asarray(probs), np.asarray(targets)
    src = np.asarray(sources)
    raw = None if raw_probs is None else np.asarray(raw_probs)
    report = {"overall": binary_metrics(probs, targets, raw)}
    for s in sorted(set(sources)):
        sel = src == s
        report[s] = binary_metrics(probs[sel], targets[sel], None if raw is None else raw[sel])
    return report
