"""ROC and reliability plots (PNG), logged as MLflow artifacts by evaluation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402


def roc_plot(probs: np.ndarray, targets: np.ndarray, sources: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    src = np.asarray(sources)
    groups = [("overall", np.ones(len(targets), bool))] + [(s, src == s) for s in sorted(set(sources))]
    for name, sel in groups:
        if len(np.unique(targets[sel])) < 2:
            continue
        f, t, _ = roc_curve(targets[sel], probs[sel])
        ax.plot(f, t, label=f"{name} (AUROC {roc_auc_score(targets[sel], probs[sel]):.3f}, n={sel.sum()})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.axvline(0.01, color="grey", lw=0.6, ls="--")
    ax.set(xlabel="false positive rate (real called AI)", ylabel="true positive rate", title="ROC per source")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_plot(raw: np.ndarray, calibrated: np.ndarray, targets: np.ndarray, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in (("before calibration", raw), ("after calibration", calibrated)):
        frac, mean = calibration_curve(targets, p, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect")
    ax.set(xlabel="predicted P(AI)", ylabel="observed share AI", title="Reliability (validation)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
