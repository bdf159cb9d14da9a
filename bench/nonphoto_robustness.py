"""Does training on rendered non-photos lower their false-positive rate, and what do platform transforms
cost? Trains the default recipe twice on the same subset, with and without `nonphoto_per_kind`, and
evaluates both like `aidetect evaluate` does: groups, robustness tiers, verdict shares on real non-photos
and on the separately rendered `eval` non-photo set.

    python bench/nonphoto_robustness.py                                  # small: 40 per group, 2 epochs
    python bench/nonphoto_robustness.py --per-group 0 --epochs 4         # the full default recipe (slow)

A benchmark, not a test: it trains. Writes bench/results/nonphoto_robustness.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import get_settings  # noqa: E402
from model.jobs import evaluate_and_promote, train_and_register  # noqa: E402
from model.train import load_config  # noqa: E402

RESULT = ROOT / "bench" / "results" / "nonphoto_robustness.json"


def arm(manifest: Path, home: Path, per_group: int | None, epochs: int, threads: int, nonphoto: int | None,
        eval_per_group: int | None) -> dict:
    settings = get_settings(manifest=manifest, home=home)
    cfg = load_config(per_group=per_group, epochs=epochs, threads=threads, nonphoto_per_kind=nonphoto)
    t0 = time.perf_counter()
    ref, report = train_and_register(settings, cfg)
    t_train = time.perf_counter() - t0
    t1 = time.perf_counter()
    _, res = evaluate_and_promote(settings, ref.uri, per_group=eval_per_group)
    keep = ("n", "n_split", "scored", "tiers", "tier_auroc", "tier_auroc_drop", "worst_tier_drop", "real_kinds",
            "thresholds", "verdict_counts")
    return {
        "nonphoto_per_kind": cfg.nonphoto_per_kind,
        "n_train": report["n_train"],
        "n_rendered_nonphoto": report["n_rendered_nonphoto"],
        "train_and_register_seconds": round(t_train, 1),
        "evaluate_seconds": round(time.perf_counter() - t1, 1),
        "groups": {g: {k: m[k] for k in ("n", "n_ai", "auroc", "auroc_ci", "ece")} for g, m in res["groups"].items()},
        **{k: res[k] for k in keep},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--per-group", type=int, default=40, help="train on at most N per source/label/split; 0 = all")
    ap.add_argument("--eval-per-group", type=int, default=0, help="evaluate on at most N per source/label; 0 = all")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads [1: a shared machine]")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    manifest = get_settings(manifest=args.manifest).manifest
    out = {"manifest": str(manifest), "per_group": args.per_group or None, "epochs": args.epochs,
           "threads": args.threads, "eval_per_group": args.eval_per_group or None, "arms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in (("with_rendered_nonphotos", None), ("without", 0)):
            out["arms"][name] = arm(manifest, Path(tmp) / name, args.per_group or None, args.epochs, args.threads,
                                    n, args.eval_per_group or None)
            args.out.write_text(json.dumps(out, indent=2, default=float))
            print(json.dumps({name: {"groups": out["arms"][name]["groups"],
                                     "worst_tier_drop": out["arms"][name]["worst_tier_drop"],
                                     "rendered": out["arms"][name]["real_kinds"].get("rendered non-photo (eval set)",
                                                                                     {}).get("ai_generated")}},
                             default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
