"""Readable tables of `aidetect evaluate` and of the leave-out benchmark (rich), built from their result dicts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from model.evaluate import group_rows, real_kind_rows, tier_rows


def _ci(v, lo, hi, digits: int = 3) -> str:
    if v != v:
        return "n/a"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def print_evaluation(title: str, result: dict, console: Console | None = None) -> None:
    console = console or Console(width=160)
    t = Table(title=f"{title}: {result['n']} of {result['n_split']} {result['split']} images, 95% bootstrap CI")
    for col in ("group", "n", "AUROC", "AUROC q60", "AP", "TPR@1%FPR", "ECE"):
        t.add_column(col, justify="right" if col != "group" else "left")
    for r in group_rows(result):
        t.add_row(r["group"], f"{r['n']} ({r['n_ai']} AI)", _ci(r["auroc"], r["auroc_lo"], r["auroc_hi"]),
                  "n/a" if r["auroc_q60"] != r["auroc_q60"] else f"{r['auroc_q60']:.3f}",
                  _ci(r["ap"], r["ap_lo"], r["ap_hi"]), _ci(r["tpr_at_1fpr"], r["tpr_at_1fpr_lo"], r["tpr_at_1fpr_hi"]),
                  _ci(r["ece"], r["ece_lo"], r["ece_hi"]))
    console.print(t)
    k = Table(title="real images by kind: share of each verdict (ai_generated = false positive at `high`)")
    for col in ("real images", "n", "ai_generated", "real", "uncertain"):
        k.add_column(col, justify="right" if col != "real images" else "left")
    for r in real_kind_rows(result):
        k.add_row(r["real images"], str(r["n"]), _ci(r["ai_generated"], r["ai_generated_lo"], r["ai_generated_hi"]),
                  f"{r['real']:.3f}", f"{r['uncertain']:.3f}")
    console.print(k)
    if result.get("tier_auroc"):
        r = Table(title="robustness tiers: AUROC after what platforms do to uploads (drop vs as stored)")
        r.add_column("group")
        r.add_column("as stored", justify="right")
        for tier in result["tier_auroc"]:
            r.add_column(tier, justify="right")
        for row in tier_rows(result):
            cells = [f"{row[t]:.3f} ({row[f'{t}_drop']:+.3f})" if row[t] == row[t] else "n/a"
                     for t in result["tier_auroc"]]
            r.add_row(row["group"], "n/a" if row["auroc"] != row["auroc"] else f"{row['auroc']:.3f}", *cells)
        console.print(r)
        console.print("tiers: " + "; ".join(f"{k} = {v}" for k, v in result["tiers"].items()))
    if result.get("operating_points"):
        o = Table(title="threshold targets refitted on the calibration half: verdict shares on the scored half")
        for col in ("fpr / fnr target", "low", "high", "uncertain", "AI called real", "real called AI",
                    "non-photos real / uncertain / AI"):
            o.add_column(col, justify="right")
        for p in result["operating_points"]:
            o.add_row(f"{p['fpr']:.0%} / {p['fnr']:.0%}" + (" (trained)" if p.get("trained") else ""),
                      f"{p['low']:.3f}", f"{p['high']:.3f}", f"{p['uncertain']:.3f}", f"{p['ai_called_real']:.3f}",
                      f"{p['real_called_ai']:.3f}",
                      f"{p['nonphoto_real']:.2f} / {p['nonphoto_uncertain']:.2f} / {p['nonphoto_ai_generated']:.2f}"
                      f" (n={p['nonphoto_n']})")
        console.print(o)
    console.print(f"scored: {result['scored']}")


def print_leave_out(report: dict, console: Console | None = None) -> None:
    console = console or Console(width=160)
    t = Table(title=f"leave-one-family-out on frozen {report['feature']} features ({report['n_images']} images)")
    for col in ("family", "n scored", "real from", "AUROC [95% CI]", "AUROC (val only)", "TPR@1%FPR", "counted"):
        t.add_column(col)
    for r in report["families"]:
        t.add_row(r["fold"], str(r["n_scored"]), r["real_from"], _ci(r["auroc"], *r["auroc_ci"]),
                  f"{r['auroc_val_only']:.3f}", f"{r['tpr_at_1fpr']:.3f}", "yes" if r["counted"] else "< 50")
    console.print(t)
    s = Table(title="leave-one-real-source-out: share of the unseen source at or above `high`")
    for col in ("left-out source", "n", "FPR at high [95% CI]", "called real", "FPR when trained on"):
        s.add_column(col)
    for r in report["real_sources"]:
        s.add_row(r["fold"], str(r["n_scored"]), _ci(r["fpr_at_high"], *r["fpr_at_high_ci"]),
                  f"{r['called_real']:.3f}", f"{r['fpr_at_high_when_trained_on']:.3f}")
    console.print(s)
    console.print({k: v for k, v in report["summary"].items()})
