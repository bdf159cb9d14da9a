"""Calibration of raw detector logits into probabilities, and the two decision thresholds.

    cal = fit_calibrator(val_logits, val_targets, method="platt")
    p = apply_calibrator(cal, logits)
    th = thresholds_at(p, val_targets, fpr=0.01, fnr=0.01)
    verdict(p, th)  # "ai_generated" | "real" | "uncertain"

Calibrators are fitted with scikit-learn and stored as plain JSON (no pickles), so a model
version carries them and serving rebuilds them exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

METHODS = ("platt", "isotonic")


def fit_calibrator(logits: np.ndarray, targets: np.ndarray, method: str = "platt") -> dict:
    logits = np.asarray(logits, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel()
    if len(np.unique(targets)) < 2:
        raise ValueError("calibration needs both real and AI images in the calibration split")
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # Platt scaling: a temperature plus a bias on the logit; two parameters cannot overfit a val split.
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(logits[:, None], targets)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(logits, targets)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    raise ValueError(f"unknown calibration method {method!r}; use one of {METHODS}")


def apply_calibrator(cal: dict | None, logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if cal is None:
        return expit(logits)
    if cal["method"] == "platt":
        return expit(cal["a"] * logits + cal["b"])
    if cal["method"] == "isotonic":
        return np.interp(logits, np.asarray(cal["x"]), np.asarray(cal["y"]))
    raise ValueError(f"unknown calibration method {cal['method']!r}")


def thresholds_at(scores: np.ndarray, targets: np.ndarray, fpr: float = 0.01, fnr: float = 0.01) -> dict:
    """high: the lowest score at which at most `fpr` of real images are called AI.
    low: the highest score below which at most `fnr` of AI images are called real."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    real = np.sort(scores[targets == 0])
    ai = np.sort(scores[targets == 1])
    if len(real) == 0 or len(ai) == 0:
        raise ValueError("thresholds need both real and AI images")
    # Allowed count of real images at or above `high`; `high` sits just above the next one down.
    k = int(np.floor(fpr * len(real)))
    high = float(np.nextafter(real[len(real) - 1 - k], np.inf))
    m = int(np.floor(fnr * len(ai)))
    low = float(ai[m])  # at most m AI images lie strictly below
    return {"high": min(high, 1.0), "low": low, "fpr": fpr, "fnr": fnr}


def verdict(score: float, th: dict) -> str:
    if score >= th["high"]:
        return "ai_generated"
    if score < th["low"] or th["low"] > th["high"]:
        return "real"
    return "uncertain"


def verdicts(scores: np.ndarray, th: dict) -> list[str]:
    return [verdict(float(s), th) for s in np.asarray(scores).ravel()]


def verdict_hits(probs: np.ndarray, thresholds: dict) -> tuple[np.ndarray, np.ndarray]:
    """(called ai_generated, called real) per image, as `verdict` decides; the rest is uncertain."""
    probs = np.asarray(probs)
    ai_hit = probs >= thresholds["high"]
    real_hit = (probs < thresholds["low"]) & ~ai_hit if thresholds["low"] <= thresholds["high"] else ~ai_hit
    return ai_hit, real_hit


# (fpr, fnr) targets an operator might choose instead of training's: the review queue against the errors.
OPERATING_GRID = ((0.01, 0.01), (0.02, 0.02), (0.01, 0.05), (0.02, 0.05), (0.05, 0.05), (0.05, 0.10))


def operating_points(p_cal, y_cal, p_ev, y_ev, nonphoto_ev=None, grid=OPERATING_GRID) -> list[dict]:
    """What each pair of threshold targets would do: both edges refitted on the calibration half
    (thresholds_at), verdict shares measured on the evaluation half. `uncertain` is the review queue's
    share of all images; `ai_called_real` and `real_called_ai` are the errors that get through at once;
    `nonphoto_*` are the shares of real non-photos (when `nonphoto_ev` marks them)."""
    p_ev, y_ev = np.asarray(p_ev), np.asarray(y_ev)
    nonphoto = np.zeros(len(p_ev), bool) if nonphoto_ev is None else np.asarray(nonphoto_ev, bool)

    def share(hit, sel):
        return float(hit[sel].mean()) if sel.any() else float("nan")

    rows = []
    for fpr, fnr in grid:
        th = thresholds_at(p_cal, y_cal, fpr, fnr)
        ai, real = verdict_hits(p_ev, th)
        rows.append({
            "fpr": fpr, "fnr": fnr, "low": th["low"], "high": th["high"],
            "uncertain": share(~ai & ~real, np.ones(len(p_ev), bool)),
            "ai_called_real": share(real, y_ev == 1), "real_called_ai": share(ai, y_ev == 0),
            "nonphoto_n": int(nonphoto.sum()), "nonphoto_real": share(real, nonphoto),
            "nonphoto_uncertain": share(~ai & ~real, nonphoto), "nonphoto_ai_generated": share(ai, nonphoto),
        })
    return rows
