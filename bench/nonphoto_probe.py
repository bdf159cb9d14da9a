"""Rendered non-photos on the frozen-feature probe: with and without them in training, how many of a set
rendered with other tools (model.nonphoto's `eval` setting) are called AI, real or uncertain?

    python bench/nonphoto_probe.py          # writes bench/results/nonphoto_probe.json

The probe is bench/leave_out.py's (frozen EfficientNet-lite0 stage features, cached; a logistic head; Platt
calibration and thresholds at 1% FPR / 1% FNR on the calibration half of val), so this runs in minutes on a
busy machine where two fine-tuning runs would take an hour. It measures whether the features can tell a
rendered chart from an AI image once the head has seen some, not what the fine-tuned default does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from model.calibration import apply_calibrator  # noqa: E402
from model.features import compute_features  # noqa: E402
from model.leave_out import HeadConfig, _calibrate, fit_head, probe_data, probe_masks  # noqa: E402
from model.metrics import rate_ci  # noqa: E402
from model.nonphoto import cached_set  # noqa: E402
from model.sources import load_sources  # noqa: E402

RESULT = ROOT / "bench" / "results" / "nonphoto_probe.json"


def shares(p: np.ndarray, th: dict) -> dict:
    ai = p >= th["high"]
    real = (p < th["low"]) & ~ai
    out = {"n": int(len(p))}
    for name, hit in (("ai_generated", ai), ("real", real), ("uncertain", ~ai & ~real)):
        r, lo, hi = rate_ci(hit, 1000, 0)
        out[name], out[f"{name}_ci"] = r, [lo, hi]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-per-kind", type=int, default=60)
    ap.add_argument("--eval-per-kind", type=int, default=40)
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    settings = get_settings()
    t0 = time.perf_counter()
    samples, feats = probe_data(settings)
    x, y, train, cal = probe_masks(samples, feats)
    src = np.array([s.source for s in samples])
    val = np.array([s.split == "val" for s in samples])
    ev = val & ~cal

    cache = settings.home / "cache"
    r_train = cached_set(cache, "train", args.train_per_kind, 0, settings.manifest)
    r_eval = cached_set(cache, "eval", args.eval_per_kind, 0, settings.manifest)
    x_rt, _ = compute_features(r_train)
    x_re, _ = compute_features(r_eval)
    kinds = np.array([s.origin for s in r_eval])
    nonphoto = np.isin(src, load_sources().nonphoto_real) & (y == 0)

    cfg = HeadConfig()
    arms = {}
    for name, (xt, yt) in {
        "without_rendered": (x[train], y[train]),
        "with_rendered_train_set": (np.r_[x[train], x_rt], np.r_[y[train], np.zeros(len(x_rt), int)]),
    }.items():
        head = fit_head(xt, yt, cfg)
        calib, th = _calibrate(head, x[cal], y[cal])
        p_ev = apply_calibrator(calib, head.decision_function(x[ev]))
        p_re = apply_calibrator(calib, head.decision_function(x_re))
        from sklearn.metrics import roc_auc_score

        arms[name] = {
            "val_auroc": float(roc_auc_score(y[ev], p_ev)),
            "rendered_eval_set": shares(p_re, th) | {"by_kind": {k: shares(p_re[kinds == k], th)
                                                                  for k in sorted(set(kinds))}},
            "shared_nonphoto_real_val": shares(p_ev[nonphoto[ev]], th),
            "thresholds": th,
        }
    out = {"probe": "lite0-stages-v1 + logistic head (bench/leave_out.py)",
           "n_rendered_train": len(r_train), "n_rendered_eval": len(r_eval), "arms": arms,
           "seconds": round(time.perf_counter() - t0, 1)}
    args.out.write_text(json.dumps(out, indent=2))
    for name, a in arms.items():
        r = a["rendered_eval_set"]
        print(f"{name}: val AUROC {a['val_auroc']:.3f}; rendered eval set ai {r['ai_generated']:.3f} "
              f"real {r['real']:.3f} uncertain {r['uncertain']:.3f}; shared non-photo val ai "
              f"{a['shared_nonphoto_real_val']['ai_generated']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
