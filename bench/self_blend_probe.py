"""Do self-blended twins teach face swaps? Recipe (f) against (a), each trained without the face-swap family.

    python bench/self_blend_probe.py                    # writes bench/results/self_blend_probe.json
    python bench/self_blend_probe.py --epochs 1 --recipes f    # the leave-out folds' short schedule

Face swaps are every recipe's worst leave-out family, near chance. Recipe (f) (configs/cnn_selfblend.yaml)
adds a self-blended pseudo-fake twin of each real face (model/self_blend.py, after Self-Blended Images). Each
recipe here trains for --epochs without any face swap and is scored twice against the faces source's real
val images: on its val face swaps (the leave-out figure) and on fresh self-blends of those real images
(whether the twins were learned at all). Both recipes get the same blends, so (a)'s second figure is the
chance level a model that never saw a blend gets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from record import machine, write  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from bench.recipes import FINETUNED  # noqa: E402
from model.manifest import read_manifest, subsample  # noqa: E402
from model.recipe_finetune import self_blend_probe  # noqa: E402

RESULT = ROOT / "bench" / "results" / "self_blend_probe.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: rendered non-photo cache [AIDETECT_HOME]")
    ap.add_argument("--out", type=Path, default=RESULT, help=f"result JSON [{RESULT.relative_to(ROOT)}]")
    ap.add_argument("--recipes", nargs="+", choices=sorted(FINETUNED), default=["f", "a"], help="[f a]")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs [4: the recipes' own schedule]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    ap.add_argument("--per-group", type=int, help="smoke runs: at most N images per source/label/split")
    args = ap.parse_args(argv)
    settings = get_settings(manifest=args.manifest, home=args.home)
    samples = read_manifest(settings.manifest)
    if args.per_group:
        samples = subsample(samples, args.per_group)
    rows = []
    for name in args.recipes:
        t0 = time.perf_counter()
        rows.append(
            {
                "name": name,
                **self_blend_probe(
                    settings, samples, FINETUNED[name][1], args.seed, args.epochs, args.threads, args.per_group
                ),
            }
        )
        print(
            f"{name}: {rows[-1]['auroc_face_swaps']:.3f} on face swaps, {rows[-1]['auroc_self_blends']:.3f} on "
            f"self-blends ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    write(
        args.out,
        {
            "question": __doc__.splitlines()[0],
            "command": "python bench/self_blend_probe.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "manifest": str(settings.manifest),
            "rows": rows,
            **machine(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
