"""Leave-one-family-out folds of a fine-tuned recipe at its own schedule, beside the one-epoch folds of recipes.json.

    python bench/lofo_schedule.py                      # (a), seed 0: bench/results/lofo_schedule.{json,png}
    python bench/lofo_schedule.py --recipe a e         # both in one table and one plot
    python bench/lofo_schedule.py --recipe e --seed 1 --out /tmp/e1.json
    python bench/lofo_schedule.py --subset 2 --families face-swap --out /tmp/l.json   # a smoke run

The recipe table's fine-tuned folds train one epoch (issue 15's short schedule for fine-tuned leave-outs), a
quarter of what the recipe trains for real, so their family figures may understate what the served model does
on a generator it never saw. This runs every counted family's fold at the config's own epochs (the units are
bench/recipes.py's `--lofo-schedule full` ones, so either command reuses the other's) and sets each beside the
same recipe's one-epoch fold of the same seed from bench/results/recipes.json. Given several recipes, it also
says which the recipe table's rule (best worst family, then best mean) would choose at the full schedule.
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
from bench.recipes import FINETUNED, RESULT, lofo_step, refuse_unknown_families, samples_and_units  # noqa: E402
from model.recipe_finetune import FULL, counted_families, on_subset  # noqa: E402
from model.recipe_report import GOALS, choose  # noqa: E402

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


def recipe_rows(units, recipe: str, seed: int, schedule_name: str, families, ref: dict[str, float]) -> dict:
    """One recipe's full-schedule folds beside its one-epoch ones, with the mean and the worst of each."""
    rows = []
    for f in families:
        u = units.get(f"lofo-{recipe}-{f}-s{seed}-{schedule_name}")
        rows.append(
            {
                "family": f,
                "auroc_full_schedule": u["auroc"],
                "auroc_one_epoch": ref.get(f),
                "n_scored": u["n_scored"],
                "n_real": u["n_real"],
                "train_seconds": u["train_seconds"],
                "schedule_text": u["schedule_text"],
            }
        )
    return {
        "config": str(FINETUNED[recipe][1].relative_to(ROOT)),
        "families": rows,
        "full_schedule": summary({r["family"]: r["auroc_full_schedule"] for r in rows}),
        "one_epoch": summary({r["family"]: r["auroc_one_epoch"] for r in rows if r["auroc_one_epoch"] is not None}),
    }


def chosen(recipes: dict[str, dict]) -> dict | None:
    """The recipe table's rule (model.recipe_report.choose) on the full-schedule folds of one seed: the best
    worst family, recipes within its sampling error tied, the tie going to the best mean. The non-photo
    condition is the recipe table's to check, not this benchmark's."""
    if len(recipes) < 2:
        return None
    eligible = {
        name: {
            "stats": {
                "family_auroc_worst": {"mean": r["full_schedule"]["worst"], "sd": None},
                "family_auroc_mean": {"mean": r["full_schedule"]["mean"]},
            },
            "family_counts": {x["family"]: (x["n_scored"], x["n_real"]) for x in r["families"]},
            "worst_families": [r["full_schedule"]["worst_family"]],
        }
        for name, r in recipes.items()
    }
    best, tied = choose(eligible)
    return {"chosen": best, "tied_on_worst_family": tied}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: fold units and rendered non-photos [AIDETECT_HOME]")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON [{OUT.relative_to(ROOT)}]")
    ap.add_argument("--recipe", nargs="+", choices=sorted(FINETUNED), default=["a"], help="recipes to compare [a]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    ap.add_argument("--families", nargs="*", help="folds to run [every counted family]")
    ap.add_argument("--reference", type=Path, default=RESULT, help="recipe table with the one-epoch folds")
    ap.add_argument("--subset", type=int, help="smoke runs: at most N images per source/label/split")
    args = ap.parse_args(argv)
    recipes = list(dict.fromkeys(args.recipe))
    settings = get_settings(manifest=args.manifest, home=args.home)
    refuse_unknown_families(ap, "--families", args.families, settings.manifest)
    samples, digest, units = samples_and_units(settings, args.subset)
    schedule = on_subset(replace(FULL, threads=args.threads), args.subset)
    families = args.families or counted_families(samples)
    t0 = time.perf_counter()
    lofo_step(settings, samples, units, recipes, [args.seed], schedule, families)
    # a subset's folds are not comparable with the full data's table
    refs = {r: {} if args.subset else one_epoch_folds(args.reference, r, args.seed) for r in recipes}
    table = {r: recipe_rows(units, r, args.seed, schedule.name, families, refs[r]) for r in recipes}
    result = {
        "question": __doc__.splitlines()[0],
        "command": "python bench/lofo_schedule.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seed": args.seed,
        "manifest_digest": digest,
        "subset": args.subset,
        "units": str(units.folder),
        "reference": str(args.reference.relative_to(ROOT)) if any(refs.values()) else None,
        "recipes": table,
        "rule_at_full_schedule": chosen(table),
        "seconds": time.perf_counter() - t0,
        **machine(),
    }
    write(args.out, result)
    from model.plots import paired_bars_plot

    series = {}
    for r in recipes:
        rows = table[r]["families"]
        series[f"({r}) {FULL_TEXT}"] = [x["auroc_full_schedule"] for x in rows]
        series[f"({r}) one epoch (recipes.json)"] = [x["auroc_one_epoch"] for x in rows]
    paired_bars_plot(
        families,
        series,
        args.out.with_suffix(".png"),
        f"{', '.join(f'({r})' for r in recipes)} left out of training: AUROC per generator family, seed {args.seed}",
        goal=GOALS["family_auroc_worst"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
