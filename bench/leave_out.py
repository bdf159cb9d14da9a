"""Leave-one-generator-family-out and leave-one-real-source-out on frozen EfficientNet-lite0 features.

    python bench/leave_out.py                      # the shared data; writes bench/results/leave_out.json
    python bench/leave_out.py --per-group 6        # a tiny smoke run
    aidetect evaluate --leave-out                  # the same through the CLI

Features of every image are computed once and cached under <home>/cache/features (keyed by the
manifest's sha256), so a rerun only refits the logistic-regression heads (seconds each). Each run is also
logged to MLflow (tables, plots, the family table). What the folds are: model/leave_out.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import get_settings  # noqa: E402
from model.leave_out import HeadConfig, run_leave_out  # noqa: E402

RESULT = ROOT / "bench" / "results" / "leave_out.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: feature cache and MLflow store [AIDETECT_HOME]")
    ap.add_argument("--out", type=Path, default=RESULT, help=f"result JSON [{RESULT.relative_to(ROOT)}]")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the features [1: a shared machine]")
    ap.add_argument("--per-group", type=int, help="at most N images per source/label/split (smoke runs)")
    ap.add_argument("--c", type=float, default=HeadConfig.c, help=f"head's inverse L2 strength [{HeadConfig.c}]")
    ap.add_argument("--no-mlflow", action="store_true", help="skip the MLflow run")
    args = ap.parse_args(argv)
    settings = get_settings(manifest=args.manifest, home=args.home)
    report = run_leave_out(settings, args.out, args.threads, args.per_group, cfg=HeadConfig(c=args.c),
                           log_mlflow=not args.no_mlflow)
    print(json.dumps({"summary": report["summary"], "out": str(args.out)}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
