"""The Qwen stage's own calibration and thresholds, fitted on the images it will actually see.

    fit = fit_stage_thresholds(margins, targets, uncertain, fit=cal_half, report=eval_half)
    fit["thresholds"]      # {"high", "low", "fpr", "fnr"}: ai_generated at or above high, real below low
    fit["calibrator"]      # Platt map of the answer margin, refitted on the same images
    fit["fitted_on"]       # "fast-uncertain", or "all-val" with fit["fallback"] saying why

In the cascade the Qwen stage only ever scores what the fast stage calls `uncertain`: the hard images.
A threshold fitted on all of val (easy images included) would flag far more than 1% of the real images
that reach it, so calibration and thresholds are refitted on the uncertain validation images, with the
fast stage's rule (model.calibration.thresholds_at: `high` at 1% false positives, `low` at 1% false
negatives). Few images can land in that band; below `min_per_label` real or AI images the fit uses all
validation images instead and the result says so in `fallback` (never silently).

The achieved false-positive and true-positive rates at `high` come with bootstrap 95% intervals, on the
fitting images (in-sample) and, when given, on a held-out part of val chosen the same way.
"""

from __future__ import annotations

import numpy as np

from model.calibration import apply_calibrator, fit_calibrator, thresholds_at, verdicts
from model.metrics import rate_ci

FPR = 0.01  # the fast stage's target (model/train.py TrainConfig.target_fpr)
FNR = 0.01
MIN_PER_LABEL = 50  # real and AI images each needed to fit on the uncertain band alone
FAST_UNCERTAIN, ALL_VAL = "fast-uncertain", "all-val"


def achieved(probs: np.ndarray, targets: np.ndarray, th: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """FPR and TPR at `high`, verdict shares, each rate as [point, low, high] of a 95% bootstrap; and the n."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets).astype(int)
    flagged = probs >= th["high"]
    v = np.array(verdicts(probs, th))
    return {
        "n": int(len(targets)),
        "n_real": int((targets == 0).sum()),
        "n_ai": int((targets == 1).sum()),
        "fpr": list(rate_ci(flagged[targets == 0], n_boot, seed)),
        "tpr": list(rate_ci(flagged[targets == 1], n_boot, seed + 1)),
        "uncertain_share": list(rate_ci(v == "uncertain", n_boot, seed + 2)),
    }


def fit_stage_thresholds(
    margins: np.ndarray,
    targets: np.ndarray,
    uncertain: np.ndarray,
    fit: np.ndarray | None = None,
    report: np.ndarray | None = None,
    fpr: float = FPR,
    fnr: float = FNR,
    min_per_label: int = MIN_PER_LABEL,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Calibrator, thresholds and achieved rates of the Qwen stage; see the module docstring.

    margins: the Qwen answer-token margins (raw, uncalibrated) of every validation image;
    uncertain: True where the fast stage's verdict is `uncertain`;
    fit / report: the calibration and evaluation halves of val (model.splits); default all images, in-sample.
    """
    margins = np.asarray(margins, dtype=np.float64).ravel()
    targets = np.asarray(targets).ravel().astype(int)
    uncertain = np.asarray(uncertain, dtype=bool).ravel()
    n = len(targets)
    if not (len(margins) == len(uncertain) == n):
        raise ValueError(f"margins ({len(margins)}), targets ({n}) and uncertain ({len(uncertain)}) differ in length")
    fit = np.ones(n, bool) if fit is None else np.asarray(fit, dtype=bool)
    report = fit if report is None else np.asarray(report, dtype=bool)

    band = fit & uncertain
    counts = {"real": int((targets[band] == 0).sum()), "ai": int((targets[band] == 1).sum())}
    if min(counts.values()) >= min_per_label:
        chosen, fitted_on, fallback = band, FAST_UNCERTAIN, None
    else:
        chosen, fitted_on = fit, ALL_VAL
        fallback = (
            f"the fast stage called {counts['real']} real and {counts['ai']} AI fitting images uncertain; "
            f"{min_per_label} of each are needed, so calibration and thresholds were fitted on all "
            f"{int(fit.sum())} fitting images of val instead"
        )
    if len(np.unique(targets[chosen])) < 2:
        raise ValueError("the validation images hold only one label; thresholds need both real and AI images")

    cal = fit_calibrator(margins[chosen], targets[chosen], method="platt")
    probs = apply_calibrator(cal, margins)
    th = thresholds_at(probs[chosen], targets[chosen], fpr, fnr)
    out = {
        "calibrator": cal,
        "thresholds": th,
        "fitted_on": fitted_on,
        "fallback": fallback,
        "n_val": n,
        "n_fast_uncertain": int(uncertain.sum()),
        "band_counts": counts,
        "min_per_label": min_per_label,
        "fit": achieved(probs[chosen], targets[chosen], th, n_boot, seed),
        "held_out": None,
    }
    # The same selection on the other half of val: the rates a new image from that band would see.
    held = report & ~fit & (uncertain if fitted_on == FAST_UNCERTAIN else True)
    if held.any() and len(np.unique(targets[held])) == 2:
        out["held_out"] = achieved(probs[held], targets[held], th, n_boot, seed)
    return out


def summary(fit: dict) -> str:
    """One paragraph for the CLI and the run: what was fitted on what, and how well."""

    def rate(r):
        return f"{r[0]:.3f} [{r[1]:.3f}, {r[2]:.3f}]"

    th, f = fit["thresholds"], fit["fit"]
    lines = [
        f"Qwen stage thresholds: high {th['high']:.4f}, low {th['low']:.4f} "
        f"(target FPR {th['fpr']:.0%}, FNR {th['fnr']:.0%})",
        f"fitted on {fit['fitted_on']}: n={f['n']} ({f['n_real']} real, {f['n_ai']} AI) of {fit['n_val']} val images, "
        f"{fit['n_fast_uncertain']} of them uncertain for the fast stage",
        f"on the fitting images: FPR {rate(f['fpr'])}, TPR {rate(f['tpr'])} (95% bootstrap)",
    ]
    if fit["held_out"]:
        h = fit["held_out"]
        lines.append(f"held out (n={h['n']}): FPR {rate(h['fpr'])}, TPR {rate(h['tpr'])}")
    if fit["fallback"]:
        lines.append(f"FALLBACK: {fit['fallback']}")
    return "\n".join(lines)
