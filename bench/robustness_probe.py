"""Robustness tiers on the frozen-feature probe: AUROC per tier and group, and the drop against as stored.

    python bench/robustness_probe.py        # writes bench/results/robustness_probe.json

The tiers are model.robustness's (what `aidetect evaluate` applies to a registered version); the model is
bench/leave_out.py's probe (cached EfficientNet-lite0 stage features + a logistic head fitted on the train
split), because fine-tuning the default does not fit a busy 2-core machine. Scored: the evaluation half of
val, grouped as `aidetect evaluate` groups it. Each tier recomputes the features of its transformed images.
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
import torch  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from model.dataset import normalise_batch  # noqa: E402
from model.evaluate import group_masks  # noqa: E402
from model.features import TF_SCALING, build_backbone, stage_features  # noqa: E402
from model.leave_out import HeadConfig, fit_head, probe_data, probe_masks  # noqa: E402
from model.preprocess import decode_image, fit_to_size  # noqa: E402
from model.robustness import TIERS  # noqa: E402

RESULT = ROOT / "bench" / "results" / "robustness_probe.json"


def tier_features(net, samples, tier, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(samples), batch):
        arrs = np.stack([np.asarray(fit_to_size(tier.apply(decode_image(s.path.read_bytes()), s.path.name),
                                                TF_SCALING)) for s in samples[i : i + batch]])
        x = normalise_batch(arrs, TF_SCALING).contiguous(memory_format=torch.channels_last)
        out.append(stage_features(net, x).numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    settings = get_settings()
    t0 = time.perf_counter()
    samples, feats = probe_data(settings)
    x, y, train, cal = probe_masks(samples, feats)
    val = np.array([s.split == "val" for s in samples])
    ev_idx = np.flatnonzero(val & ~cal)
    ev = [samples[i] for i in ev_idx]
    head = fit_head(x[train], y[train], HeadConfig())
    masks = group_masks(ev)
    y_ev = y[ev_idx]

    def aurocs(scores):
        return {g: float(roc_auc_score(y_ev[m], scores[m])) if len(set(y_ev[m])) == 2 else float("nan")
                for g, m in masks.items()}

    base = aurocs(head.decision_function(x[ev_idx]))
    net = build_backbone()
    tiers = {}
    for tier in TIERS:
        t = time.perf_counter()
        a = aurocs(head.decision_function(tier_features(net, ev, tier)))
        tiers[tier.name] = {"what": tier.what, "auroc": a, "drop": {g: base[g] - v for g, v in a.items()},
                            "seconds": round(time.perf_counter() - t, 1)}
        print(tier.name, {g: round(base[g] - v, 3) for g, v in a.items()}, flush=True)
    out = {"probe": "lite0-stages-v1 + logistic head (bench/leave_out.py)", "n_scored": len(ev),
           "groups": {g: int(m.sum()) for g, m in masks.items()}, "as_stored": base, "tiers": tiers,
           "worst_drop": {g: max(tiers[t]["drop"][g] for t in tiers) for g in base},
           "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1)}
    args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
