"""Leave-one-family-out folds of a fine-tuned recipe at its own schedule, beside the one-epoch folds of recipes.json.

    python bench/lofo_schedule.py                      # (a), seed 0: bench/results/lofo_schedule.{json,png}
    python bench/lofo_schedule.py --recipe e --seed 1
    python bench/lofo_schedule.py --subset 2 --families face-swap --out /tmp/l.json   # a smoke run

The recipe table's fine-tuned folds train one epoch (issue 15's short schedule for fine-tuned leave-outs), a
quarter of what the recipe trains for real, so their family figures may understate what the served model does
on a generator it never saw. This runs every counted family's fold at the config's own epochs (the units are
bench/recipes.py's `--lofo-schedule full` ones, so either command reuses the other's) and sets each beside the
same recipe's one-epoch fold of the same seed from bench/results/recipes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from record import machine, write  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from bench.recipes import FINETUNED, RESULT, lofo_step, samples_and_units  # noqa: E402
from model.recipe_finetune import FULL, counted_families, on_subset  # noqa: E402
from model.recipe_report import GOALS  # noqa: E402

OUT = ROOT / "bench" / "results" / "lofo_schedule.json"  # and .png beside it
FULL_TEXT = "the config's epochs"


def one_epoch_folds(recipes_json: Path, recipe: str, seed: int) -> dict[str, float]:
    """The recipe's one-epoch fold AUROC per family for `seed`, as the committed recipe table holds them."""
    if not recipes_json.is_file():
        return {}
    rep = json.loads(recipes_json.read_text())
    row = rep.get("recipes", {}).get(recipe, {})
    seeds = rep.get("lofo_seeds", [])
    if seed not in seeds or rep.get("lofo_schedule", {}).get("name") != "e1":
        return {}
    i = seeds.index(seed)
    return {f: v[i] for f, v in row.get("families", {}).items() if len(v) > i}


def summary(aurocs: dict[str, float]) -> dict:
    if not aurocs:
        return {"mean": None, "worst": None, "worst_family": None}
    worst = min(aurocs, key=aurocs.get)
    return {"mean": sum(aurocs.values()) / len(aurocs), "worst": aurocs[worst], "worst_family": worst}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: fold units and rendered non-photos [AIDETECT_HOME]")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON [{OUT.relative_to(ROOT)}]")
    ap.add_argument("--recipe", choices=sorted(FINETUNED), default="a")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    ap.add_argument("--families", nargs="*", help="folds to run [every counted family]")
    ap.add_argument("--reference", type=Path, default=RESULT, help="recipe table with the one-epoch folds")
    ap.add_argument("--subset", type=int, help="smoke runs: at most N images per source/label/split")
    args = ap.parse_args(argv)
    settings = get_settings(manifest=args.manifest, home=args.home)
    samples, digest, units = samples_and_units(settings, args.subset)
    schedule = on_subset(replace(FULL, threads=args.threads), args.subset)
    families = args.families or counted_families(samples)
    t0 = time.perf_counter()
    lofo_step(settings, samples, units, [args.recipe], [args.seed], schedule, families)
    full = {f: units.get(f"lofo-{args.recipe}-{f}-s{args.seed}-{schedule.name}") for f in families}
    # a subset's folds are not comparable with the full data's table
    ref = {} if args.subset else one_epoch_folds(args.reference, args.recipe, args.seed)
    rows = [
        {
            "family": f,
            "auroc_full_schedule": u["auroc"],
            "auroc_one_epoch": ref.get(f),
            "n_scored": u["n_scored"],
            "n_real": u["n_real"],
            "train_seconds": u["train_seconds"],
            "schedule_text": u["schedule_text"],
        }
        for f, u in full.items()
    ]
    result = {
        "question": __doc__.splitlines()[0],
        "command": "python bench/lofo_schedule.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "recipe": args.recipe,
        "config": str(FINETUNED[args.recipe][1].relative_to(ROOT)),
        "seed": args.seed,
        "manifest_digest": digest,
        "subset": args.subset,
        "units": str(units.folder),
        "reference": str(args.reference.relative_to(ROOT)) if ref else None,
        "families": rows,
        "full_schedule": summary({r["family"]: r["auroc_full_schedule"] for r in rows}),
        "one_epoch": summary({r["family"]: r["auroc_one_epoch"] for r in rows if r["auroc_one_epoch"] is not None}),
        "seconds": time.perf_counter() - t0,
        **machine(),
    }
    write(args.out, result)
    from model.plots import paired_bars_plot

    paired_bars_plot(
        [r["family"] for r in rows],
        {
            f"{FULL_TEXT} (seed {args.seed})": [r["auroc_full_schedule"] for r in rows],
            f"one epoch (seed {args.seed}, recipes.json)": [r["auroc_one_epoch"] for r in rows],
        },
        args.out.with_suffix(".png"),
        f"({args.recipe}) left out of training: AUROC per generator family",
        goal=GOALS["family_auroc_worst"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
