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


# --- bootstrap confidence intervals ------------------------------------------------------------------
# Every resample keeps the number of real and of AI images (stratified by label), so each one has both
# labels and the positives can sit in the first columns of every row: the metrics below are then plain
# array operations over a (resamples, n) matrix, with no Python loop over resamples.

CI_METRICS = ("auroc", "ap", "tpr_at_1fpr", "ece")


def stratified_resamples(targets: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, int]:
    """(n_boot, n) indices: the first n_pos columns drawn from AI images, the rest from real ones."""
    targets = np.asarray(targets).ravel().astype(int)
    pos, neg = np.flatnonzero(targets == 1), np.flatnonzero(targets == 0)
    rng = np.random.default_rng(seed)
    parts = [p[rng.integers(0, len(p), (n_boot, len(p)))] for p in (pos, neg) if len(p)]
    return np.concatenate(parts, axis=1), len(pos)


def _auroc_rows(s: np.ndarray, n_pos: int) -> np.ndarray:
    from scipy.stats import rankdata

    n_neg = s.shape[1] - n_pos
    ranks = rankdata(s, axis=1)  # ties get their average rank, as the Mann-Whitney U statistic wants
    return (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _ap_rows(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Average precision per row, with ties grouped exactly as scikit-learn groups them."""
    order = np.argsort(-s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, axis=1)
    yy = y[order]
    tp = np.cumsum(yy, axis=1)
    n = s.shape[1]
    is_end = np.ones_like(ss, dtype=bool)
    is_end[:, :-1] = ss[:, :-1] != ss[:, 1:]
    end = np.where(is_end, np.arange(n), n)
    end = np.minimum.accumulate(end[:, ::-1], axis=1)[:, ::-1]  # last index of each tie group
    precision = np.take_along_axis(tp, end, axis=1) / (end + 1)
    return (precision * yy).sum(axis=1) / yy.sum(axis=1)


def _tpr_rows(s: np.ndarray, n_pos: int, fpr: float) -> np.ndarray:
    neg = np.sort(s[:, n_pos:], axis=1)[:, ::-1]
    k = int(np.floor(fpr * neg.shape[1] + 1e-12))  # negatives allowed at or above the threshold
    v = neg[:, k][:, None]  # the highest negative score that must stay below it
    return (s[:, :n_pos] > v).mean(axis=1)


def _ece_rows(s: np.ndarray, y: np.ndarray, bins: int = 15) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1], right=True), 0, bins - 1)
    rows = np.arange(s.shape[0])[:, None] * bins
    flat = (idx + rows).ravel()
    size = s.shape[0] * bins
    conf = np.bincount(flat, weights=s.ravel(), minlength=size).reshape(-1, bins)
    acc = np.bincount(flat, weights=np.broadcast_to(y, s.shape).ravel(), minlength=size).reshape(-1, bins)
    return np.abs(acc - conf).sum(axis=1) / s.shape[1]


def bootstrap_metrics(
    probs: np.ndarray, targets: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of AUROC, AP, TPR at 1% FPR and ECE; NaN intervals without both labels."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel().astype(int)
    nan = (float("nan"), float("nan"))
    if len(np.unique(targets)) < 2:
        idx, _ = stratified_resamples(targets, n_boot, seed)
        s, y = probs[idx], targets[idx[0]]
        ece = _ece_rows(s, y)
        q = np.quantile(ece, [(1 - level) / 2, (1 + level) / 2])
        return {"auroc": nan, "ap": nan, "tpr_at_1fpr": nan, "ece": (float(q[0]), float(q[1]))}
    idx, n_pos = stratified_resamples(targets, n_boot, seed)
    s, y = probs[idx], targets[idx[0]]
    rows = {
        "auroc": _auroc_rows(s, n_pos),
        "ap": _ap_rows(s, y),
        "tpr_at_1fpr": _tpr_rows(s, n_pos, 0.01),
        "ece": _ece_rows(s, y),
    }
    lo, hi = (1 - level) / 2, (1 + level) / 2
    return {k: (float(np.quantile(v, lo)), float(np.quantile(v, hi))) for k, v in rows.items()}


def rate_ci(hits: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """A share (e.g. false positives) and its bootstrap interval: (rate, low, high); NaNs when empty."""
    hits = np.asarray(hits, dtype=np.float64).ravel()
    if len(hits) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), (n_boot, len(hits)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(hits.mean()), float(lo), float(hi)


def metrics_with_ci(
    probs: np.ndarray, targets: np.ndarray, raw_probs: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0
) -> dict:
    """binary_metrics plus `<metric>_ci: [low, high]` for AUROC, AP, TPR at 1% FPR and ECE."""
    out = binary_metrics(probs, targets, raw_probs)
    for k, (lo, hi) in bootstrap_metrics(probs, targets, n_boot, seed).items():
        out[f"{k}_ci"] = [lo, hi]
    return out
