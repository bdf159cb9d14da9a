"""Whole image or training-sized crops: does scoring a grid of 160 px crops instead of one pass help AUROC?

    python bench/crop_pooling.py                         # the production model on every val image
    python bench/crop_pooling.py --without face-swap     # (a) trained here without face swaps: that fold too
    python bench/crop_pooling.py --model-uri models:/aidetect/3 --out /tmp/c.json

The fine-tuned recipes train on 160 px crops and serve the whole 256 px image (model/crop_pooling.py says why
that may cost). Each pooling scores the same images: the whole image, the centre crop, and the mean logit of a
2x2 and a 3x3 grid of crops, with its compute as a share of the whole-image pass. AUROC per group as
`aidetect evaluate` groups val (uncalibrated: AUROC needs no calibration). With --without FAMILY, the recipe is
trained here without that family's images, as a leave-out fold at the recipe's own epochs, and the family is
also scored as the fold scores it. Writes bench/results/crop_pooling.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from record import machine, write  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from bench.recipes import FINETUNED, refuse_unknown_families  # noqa: E402
from model.crop_pooling import POOLINGS, crop_cost, score_poolings  # noqa: E402
from model.manifest import read_manifest, subsample  # noqa: E402

RESULT = ROOT / "bench" / "results" / "crop_pooling.json"  # and .png beside it
FOLD = "left-out family"


def group_aurocs(scores: np.ndarray, samples) -> dict[str, float]:
    """AUROC per `aidetect evaluate` group of the scored samples."""
    from model.evaluate import group_masks
    from model.recipes import auroc

    y = np.array([s.target for s in samples]).astype(bool)
    return {g: auroc(scores[m & y], scores[m & ~y]) for g, m in group_masks(samples).items()}


def trained_without(
    settings, samples, recipe: str, family: str, epochs: int | None, seed: int, threads: int, per_group
):
    """(bundle, crop, description, fold images): `recipe` trained without `family`, as bench/recipes.py's folds."""
    from model.recipe_finetune import Schedule, _train, fold_images

    cfg = Schedule("crop-pooling", epochs, per_group, threads).config(FINETUNED[recipe][1], seed)
    bundle, train_s, _ = _train(settings, cfg, exclude_family=family)
    what = f"({recipe}) trained here without {family}, {cfg.epochs} epoch(s), seed {seed}, {train_s:.0f}s"
    return bundle, cfg.aug.crop, what, fold_images(samples, family, seed)[:2]


def plot(rep: dict, path: Path) -> Path:
    """Bars of AUROC per group, one per pooling, zoomed to the hundredths they differ by."""
    from model.plots import paired_bars_plot
    from model.recipe_report import GOALS

    rows = rep["poolings"]
    groups = list(rows["whole"]["auroc"])
    lowest = min(a for r in rows.values() for a in r["auroc"].values() if a == a)  # NaN: a group of one label
    return paired_bars_plot(
        groups,
        {f"{n} ({r['cost']:.2f}x)": [r["auroc"][g] for g in groups] for n, r in rows.items()},
        path,
        "\n".join(textwrap.wrap(f"AUROC by pooling: {rep['model']}", 64)),
        goal=GOALS["family_auroc_worst"] if rep["left_out_family"] else None,
        xlim=(max(0.0, np.floor(lowest * 20) / 20 - 0.05), 1.0),
    )


def scoring_args(ap: argparse.ArgumentParser, result: Path, model_note: str = "") -> None:
    """The options of a benchmark that scores a registered model on the val split and writes `result`."""
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: registry and caches [AIDETECT_HOME]")
    ap.add_argument("--model-uri", help=f"model to score [the production alias]{model_note}")
    ap.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    ap.add_argument("--per-group", type=int, help="smoke runs: at most N images per source/label/split")
    ap.add_argument("--out", type=Path, default=result, help=f"result JSON [{result.relative_to(ROOT)}]")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scoring_args(ap, RESULT, "; ignored with --without")
    ap.add_argument("--without", metavar="FAMILY", help="train --recipe without this generator family instead")
    ap.add_argument("--recipe", choices=sorted(FINETUNED), default="a", help="recipe trained with --without [a]")
    ap.add_argument("--epochs", type=int, help="training epochs with --without [the recipe's own]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crop", type=int, default=160, help="crop side for a registered model [160: aug.crop]")
    args = ap.parse_args(argv)
    import torch

    from model.dataset import load_arrays

    torch.set_num_threads(args.threads)
    settings = get_settings(manifest=args.manifest, home=args.home, model_uri=args.model_uri)
    refuse_unknown_families(ap, "--without", [args.without] if args.without else [], settings.manifest)
    samples = read_manifest(settings.manifest)
    if args.per_group:
        samples = subsample(samples, args.per_group)
    fold = None
    if args.without:
        bundle, crop, what, fold = trained_without(
            settings, samples, args.recipe, args.without, args.epochs, args.seed, args.threads, args.per_group
        )
    else:
        from model.registry import configure, load_detector

        configure(settings)
        bundle, ref = load_detector(settings.resolved_model_uri)
        crop, what = args.crop, ref.uri
    t0 = time.perf_counter()
    val = [s for s in samples if s.split == "val"]
    scores = score_poolings(bundle.net, bundle.pre, load_arrays(val, bundle.pre), crop)
    rows = {
        name: {"cost": crop_cost(bundle.pre.size, crop, k), "auroc": group_aurocs(scores[name], val)}
        for name, k in POOLINGS.items()
    }
    if fold:
        from model.recipes import auroc

        pos, neg = (score_poolings(bundle.net, bundle.pre, load_arrays(part, bundle.pre), crop) for part in fold)
        for name in POOLINGS:
            rows[name]["auroc"][FOLD] = auroc(pos[name], neg[name])
    for name, r in rows.items():
        print(f"{name} ({r['cost']:.2f}x): " + ", ".join(f"{g} {a:.3f}" for g, a in r["auroc"].items()), flush=True)
    write(
        args.out,
        {
            "question": __doc__.splitlines()[0],
            "command": "python bench/crop_pooling.py " + " ".join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "model": what,
            "left_out_family": args.without,
            "n_fold": [len(part) for part in fold] if fold else None,
            "image_size": bundle.pre.size,
            "crop": crop,
            "n_val": len(val),
            "poolings": rows,
            "score_seconds": time.perf_counter() - t0,
            **machine(),
        },
    )
    plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
