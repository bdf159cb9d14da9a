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


def group_ci_plot(groups: dict[str, dict], path: Path, metrics=("auroc", "ap", "tpr_at_1fpr")) -> Path:
    """One panel per metric: the value of each group with its bootstrap 95% interval as an error bar."""
    names = [g for g in groups if groups[g].get("auroc") == groups[g].get("auroc")] or list(groups)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(names) + 1.6), sharey=True)
    y = np.arange(len(names))
    for ax, m in zip(np.atleast_1d(axes), metrics, strict=True):
        val = np.array([groups[g].get(m, np.nan) for g in names], dtype=float)
        ci = np.array([groups[g].get(f"{m}_ci", [np.nan, np.nan]) for g in names], dtype=float).reshape(-1, 2)
        err = np.abs(np.vstack([val - ci[:, 0], ci[:, 1] - val]))
        ax.errorbar(val, y, xerr=np.nan_to_num(err), fmt="o", capsize=3)
        ax.set(xlabel=f"{m} (95% CI)", xlim=(min(0.5, np.nanmin(ci) - 0.02) if np.isfinite(ci).any() else 0, 1.0))
        ax.grid(axis="x", lw=0.4)
    ax0 = np.atleast_1d(axes)[0]
    ax0.set_yticks(y, [f"{g} (n={groups[g]['n']:.0f})" for g in names])
    ax0.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def leave_out_plot(rows: list[dict], path: Path, title: str, key: str = "auroc", goal: float | None = None) -> Path:
    """Horizontal bars of one leave-out figure per fold, with its interval when the row has `<key>_ci`."""
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(rows) + 1.4))
    y = np.arange(len(rows))
    val = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    ci = np.array([r.get(f"{key}_ci", [np.nan, np.nan]) for r in rows], dtype=float).reshape(-1, 2)
    ax.barh(y, np.nan_to_num(val), color=["C0" if r.get("counted", True) else "0.7" for r in rows])
    err = np.abs(np.vstack([val - ci[:, 0], ci[:, 1] - val]))
    ax.errorbar(np.nan_to_num(val), y, xerr=np.nan_to_num(err), fmt="none", ecolor="k", capsize=3)
    if goal is not None:
        ax.axvline(goal, color="C3", ls="--", lw=0.8)
    ax.set_yticks(y, [f"{r['fold']} (n={r.get('n_scored', r.get('n', '?'))})" for r in rows])
    ax.invert_yaxis()
    ax.set(xlabel=key, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def paired_bars_plot(
    labels: list[str],
    series: dict[str, list[float | None]],
    path: Path,
    title: str,
    goal: float | None = None,
    xlim: tuple[float, float] = (0, 1),
) -> Path:
    """Horizontal bars of two or more figures per label side by side (a missing one is left out); a narrower
    `xlim` shows differences of a few hundredths."""
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(labels) * max(1, len(series) / 2) + 1.4))
    y = np.arange(len(labels))
    h = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        v = np.array([np.nan if x is None else x for x in vals], dtype=float)
        ax.barh(y + (i - (len(series) - 1) / 2) * h, np.nan_to_num(v), height=h, label=name, color=f"C{i}")
    if goal is not None:
        ax.axvline(goal, color="C3", ls="--", lw=0.8, label=f"goal {goal:g}")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(title=title, xlim=xlim)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=8, ncol=2, frameon=False)  # clear of the bars
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def operating_points_plot(rows: list[dict], path: Path) -> Path:
    """The review queue against the errors it lets through, one bar group per pair of threshold targets:
    what choosing other targets at training (`aidetect train --target-fpr/--target-fnr`) would do."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    x = np.arange(len(rows))
    series = (
        ("uncertain", "review queue (all images)"),
        ("nonphoto_uncertain", "real non-photos uncertain"),
        ("ai_called_real", "AI called real"),
        ("real_called_ai", "real called AI"),
    )
    w = 0.8 / len(series)
    for i, (key, label) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, np.nan_to_num([r[key] for r in rows]), w, label=label)
    ax.set_xticks(
        x, [f"fpr {r['fpr']:.0%}\nfnr {r['fnr']:.0%}" + ("\n(trained)" if r.get("trained") else "") for r in rows]
    )
    ax.set(ylabel="share of images", ylim=(0, 1), title="threshold targets: review queue vs errors (scored half)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", lw=0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
