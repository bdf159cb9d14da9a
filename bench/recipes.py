"""Issue 15, item 4: recipes compared in one table over several seeds, and the default chosen by it.

    python bench/recipes.py                              # every step; bench/results/recipes.{json,md,png}
    python bench/recipes.py --steps frozen,report        # one step (each unit is kept, so steps resume)
    python bench/recipes.py --tracking-uri sqlite:///x.db   # also an MLflow run `recipes` (table, plot, JSON)
    python bench/recipes.py --steps finetune,report --finetune a b --seeds 0   # full-schedule fine-tunes
    python bench/recipes.py --schedule short --per-group 4 --lofo-schedule short --lofo-per-group 3 \
        --seeds 0 1 --out /tmp/r.json                    # a smoke run

Recipes: (a) configs/cnn_baseline.yaml and (b) configs/artefact_preserving.yaml, fine-tuned
(model/recipe_finetune.py) on --schedule full (the config's own epochs on every training image, --threads
threads, scored on the whole val split and rendered eval set) or short (one epoch, --per-group images per
source/label, one thread, --val-cap / --eval-cap: a smoke test, its AUROC is an untrained network's); (c) frozen stage
features of EfficientNet-lite0, -lite1 and -lite2 ([-1, 1] scaling) with a linear head, and each backbone
alone; (d) (c) fused with (b)'s high-frequency traces as statistics (model/hf_features.py). Measures per
seed: leave-one-generator-family-out AUROC (worst over families >= 50 images, and mean), rendered and
shared real non-photos called ai_generated / real / uncertain, the share of evaluation-half val images left
uncertain (the review queue's load), in-distribution AUROC, training seconds and images/s on one thread.
Fine-tuned leave-outs cost one training per family, so they run for --lofo-finetune only, on --lofo-seeds,
on --lofo-schedule (epoch: one epoch on every training image; short: as --schedule short; full: the config's
own epochs, as the recipe trains for real). (f) configs/cnn_selfblend.yaml is (a) with self-blended twins of
the real faces (model/self_blend.py; bench/self_blend_probe.py asks whether they teach face swaps).

Every (recipe, seed) unit is stored as JSON under <home>/cache/recipes/<manifest digest>/ as soon as it
finishes: a run stopped by a time limit keeps what it measured, and a rerun does only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from model.features import manifest_digest  # noqa: E402
from model.nonphoto import KINDS  # noqa: E402
from model.recipe_report import build_report, flatten, log_mlflow, markdown_notes, markdown_table, plot  # noqa: E402
from model.recipes import FROZEN, NONPHOTO_TRAIN_PER_KIND, family_summary  # noqa: E402

RESULT = ROOT / "bench" / "results" / "recipes.json"
FINETUNED = {
    "a": ("(a) configs/cnn_baseline.yaml, fine-tuned", ROOT / "configs" / "cnn_baseline.yaml"),
    "b": ("(b) configs/artefact_preserving.yaml, fine-tuned", ROOT / "configs" / "artefact_preserving.yaml"),
    "e": ("(e) configs/cnn_enlarge.yaml, fine-tuned", ROOT / "configs" / "cnn_enlarge.yaml"),
    "f": ("(f) configs/cnn_selfblend.yaml, fine-tuned", ROOT / "configs" / "cnn_selfblend.yaml"),
    "g": ("(g) configs/cnn_splice.yaml, fine-tuned", ROOT / "configs" / "cnn_splice.yaml"),
}
TABLE = ("a", "b", "e", "f")  # the fine-tuned rows of the table; (g) is measured by its face-swap fold alone
STEPS = ("speed", "frozen", "finetune", "lofo", "report")
CONFIGS = {"c-lite0": ROOT / "configs" / "frozen_lite0.yaml", **{n: path for n, (_, path) in FINETUNED.items()}}


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


class Units:
    """One JSON file per finished unit of work."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str):
        p = self.folder / f"{key}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def put(self, key: str, value: dict) -> None:
        tmp = self.folder / f"{key}.tmp"
        tmp.write_text(json.dumps(value, default=float))
        tmp.replace(self.folder / f"{key}.json")

    def run(self, key: str, fn, needs: tuple[str, ...] = ()):
        """fn's unit, from the folder if there; a stored unit without a key of `needs` (a measure added
        since) is run again."""
        if (have := self.get(key)) is not None and all(k in have for k in needs):
            return have
        t0 = time.perf_counter()
        log(f"{key}: running")
        value = fn()
        value["unit_seconds"] = time.perf_counter() - t0
        self.put(key, value)
        log(f"{key}: done in {value['unit_seconds']:.0f}s")
        return value


def speed(settings, samples, name: str, n: int = 48, batch: int = 16) -> dict:
    """Images/s of the recipe's forward pass (eager torch, one thread, 256 px, batch 16) on val images."""
    import torch

    from model.dataset import load_arrays, normalise_batch
    from model.features import TF_SCALING, build_backbone, stage_features

    torch.set_num_threads(1)
    imgs = load_arrays([s for s in samples if s.split == "val"][:n], TF_SCALING)
    x = normalise_batch(imgs, TF_SCALING).contiguous(memory_format=torch.channels_last)
    if name in FINETUNED:
        from model.detectors import build_network
        from model.train import load_config

        net = build_network(load_config(FINETUNED[name][1]).spec).eval()

        def forward(b):
            return net(b)
    else:
        from model.detectors.efficientnet import NeighbourResidual
        from model.features import HF_ARCH
        from model.hf_features import hf_stats

        nets = [
            (build_backbone(a), NeighbourResidual() if r else torch.nn.Identity())
            for a, r in FROZEN[name].backbones
            if a != HF_ARCH
        ]
        hf = any(a == HF_ARCH for a, _ in FROZEN[name].backbones)

        def forward(b):
            out = [stage_features(m, pre(b)) for m, pre in nets]
            if hf:  # the statistics are numpy on uint8 pixels: undo the [-1, 1] scaling
                px = ((b.permute(0, 2, 3, 1).numpy() + 1) * 127.5).astype(np.uint8)
                out.append(torch.from_numpy(np.stack([hf_stats(p) for p in px])))
            return torch.cat(out, dim=1)

    with torch.inference_mode():
        forward(x[:batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            forward(x[i : i + batch])
        dt = time.perf_counter() - t0
    return {"images_per_s": len(x) / dt, "threads": 1, "batch": batch, "load_avg": os.getloadavg()[0]}


def frozen_step(settings, samples, units, names, seeds, cap):
    from model.recipes import frozen_unit, recipe_features

    for name in names:
        feats = None
        for seed in seeds:

            def work(name=name, seed=seed):
                nonlocal feats
                feats = feats or recipe_features(settings, samples, FROZEN[name], cap)
                row = frozen_unit(samples, feats, FROZEN[name], seed)
                # features are the costly part of a frozen recipe's training: their seconds per image (one
                # thread, when the cache was made) times the images trained on, plus the head
                per_img = feats["data"].computed_seconds / len(feats["data"].names)
                row["feature_seconds_per_image"] = per_img
                row["train_seconds"] = per_img * row["n_train"] + row["head_fit_seconds"]
                row["train_seconds_full_estimate"] = row["train_seconds"]
                return row

            units.run(f"frozen-{name}-s{seed}", work, needs=("val_verdicts",))


def finetune_step(settings, samples, units, names, seeds, schedule, cap):
    from model.features import cached_features
    from model.recipe_finetune import finetune_unit
    from model.recipes import rendered_sets

    feats = cached_features(settings.manifest, samples, settings.home / "cache" / "features")  # thumbs, cal half
    rendered_eval = rendered_sets(settings, cap)["rendered_eval"][1]
    n_full = sum(s.split == "train" for s in samples)
    for seed in seeds:  # seed-major: a run cut short still has every recipe at its first seeds
        for name in names:

            def work(name=name, seed=seed):
                from model.train import load_config

                row = finetune_unit(settings, samples, feats, FINETUNED[name][1], seed, schedule, rendered_eval)
                full = load_config(FINETUNED[name][1])
                # a capped schedule's seconds scaled to every training image and the config's epochs
                scale = 1.0 if schedule.per_group is None else n_full / row["n_train"] * full.epochs / row["epochs"]
                row["train_seconds_full_estimate"] = row["train_seconds"] * scale
                return row

            units.run(f"finetune-{name}-s{seed}-{schedule.name}", work, needs=("val_verdicts",))


def samples_and_units(settings, subset: int | None):
    """The manifest's samples (at most `subset` per source/label/split), its digest, and the unit folder of
    that data: a subset's units are kept apart from the full data's."""
    from model.manifest import read_manifest, subsample

    samples = read_manifest(settings.manifest)
    if subset:
        samples = subsample(samples, subset)
    digest = manifest_digest(settings.manifest)
    return (
        samples,
        digest,
        Units(settings.home / "cache" / "recipes" / (digest[:16] + (f"-sub{subset}" if subset else ""))),
    )


def refuse_unknown_families(ap, flag: str, families, manifest: Path) -> None:
    """Exit 2 with one argparse line, before anything trains, when a family to leave out is not one of the
    whole manifest's counted families (a subset counts fewer, and a smoke run may still name them)."""
    from model.manifest import read_manifest
    from model.recipe_finetune import counted_families

    known = counted_families(read_manifest(manifest, check_files=False))
    if unknown := [f for f in families or () if f not in known]:
        ap.error(f"{flag} {' '.join(unknown)}: not a family of at least 50 images here; one of {', '.join(known)}")


def lofo_step(settings, samples, units, names, seeds, schedule, families=None):
    from model.recipe_finetune import counted_families, finetune_family

    for seed in seeds:
        for fam in families or counted_families(samples):
            for name in names:
                units.run(
                    f"lofo-{name}-{fam}-s{seed}-{schedule.name}",
                    lambda name=name, fam=fam, seed=seed: finetune_family(
                        settings, samples, FINETUNED[name][1], fam, seed, schedule
                    ),
                )


def fold_counts(samples, family: str, fold: dict) -> tuple[int, int]:
    """(AI images, real images) a leave-out fold's AUROC was measured on: a fine-tuned fold stores both; a
    frozen one scores every image of the family against the real val images (the faces source's for face
    swaps), as model.recipes.family_folds does."""
    from model.leave_out import fold_real

    if "n_real" in fold:
        return fold["n_scored"], fold["n_real"]
    real = fold_real(family, [s.source for s in samples])
    return fold["n"], int(sum(r and s.split == "val" and s.label == "real" for s, r in zip(samples, real, strict=True)))


def collect(units, samples, frozen, finetuned, seeds, schedule, lofo_seeds, lofo_schedule, speeds, n_full) -> dict:
    """The per-seed rows of every recipe. `speeds`: where the speed units are (the same for a subset: the
    network does not change); `n_full`: images a full-data training sees (train split + rendered non-photos)."""
    from model.recipe_finetune import counted_families

    rows = {}
    lofo_text = lofo_schedule.describe(lofo_schedule.epochs or "the config's", scored=False)
    for name in [*finetuned, *frozen]:
        is_frozen = name in FROZEN
        sp = speeds.get(f"speed-{name}") or {}
        per_seed, fams, worst, partial, sched_text, lofo_texts, counts = [], {}, [], {}, None, set(), {}
        for seed in seeds:
            u = units.get(f"frozen-{name}-s{seed}" if is_frozen else f"finetune-{name}-s{seed}-{schedule.name}")
            if u is None and is_frozen:
                continue
            if is_frozen:
                folds = u["families"]
            else:
                folds = (
                    {f: units.get(f"lofo-{name}-{f}-s{seed}-{lofo_schedule.name}") for f in counted_families(samples)}
                    if seed in lofo_seeds
                    else {}
                )
                folds = {f: r for f, r in folds.items() if r}
                lofo_texts.update(r["schedule_text"] for r in folds.values() if "schedule_text" in r)
                if len(folds) < len(counted_families(samples)):
                    # a worst-family figure needs every counted family; the folds that ran bound it from above
                    partial.update({f: r["auroc"] for f, r in folds.items()})
                    folds = {}
            if u is None:  # folds without the recipe's own unit: only their bound is shown
                continue
            flat = flatten(u) | {"images_per_s": sp.get("images_per_s"), "seed": seed}
            if is_frozen:  # the features of every training image (wall time when cached) and the head
                flat["train_seconds_full_estimate"] = u["feature_seconds_per_image"] * n_full + u["head_fit_seconds"]
            if folds:
                summ = family_summary(folds)
                flat |= {k: summ[k] for k in ("family_auroc_mean", "family_auroc_worst")}
                worst.append(summ["family_worst"])
                for f, r in folds.items():
                    fams.setdefault(f, []).append(r["auroc"])
                    counts.setdefault(f, fold_counts(samples, f, r))
            per_seed.append(flat)
            sched_text = u.get("schedule_text")
        if not per_seed and not partial:
            continue
        title = FROZEN[name].title if is_frozen else FINETUNED[name][0]
        folds_text = " / ".join(sorted(lofo_texts)) or lofo_text  # as the folds that ran say
        n_lofo = len({s["seed"] for s in per_seed if s.get("family_auroc_worst") is not None})
        rows[name] = {
            "title": title,
            "kind": "frozen" if is_frozen else "fine-tuned",
            "seeds": per_seed,
            "families": fams,
            "family_counts": counts,
            "worst_families": worst,
            "lofo_seeds": n_lofo,
            "partial_lofo": partial,  # fine-tuned folds run without the rest: worst-family <= min of these
            "lofo_status": "every counted family"
            if n_lofo
            else f"only {sorted(partial)} (seeds {lofo_seeds}) of {counted_families(samples)}: no worst-family figure"
            if partial
            else "not run",
            "schedule": "logistic head on cached features (85% of train per seed), every counted family's fold"
            if is_frozen
            else f"{sched_text or f'{schedule.name}: did not run'}; leave-out folds: {folds_text}",
        }
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="image manifest [AIDETECT_MANIFEST]")
    ap.add_argument("--home", type=Path, help="aidetect home: caches [AIDETECT_HOME]")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI: log the table and plot there [none: no run]")
    ap.add_argument("--out", type=Path, default=RESULT, help="result JSON; .md and .png beside it")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frozen", nargs="*", default=list(FROZEN), help=f"frozen recipes [{' '.join(FROZEN)}]")
    ap.add_argument(
        "--finetune",
        nargs="*",
        choices=sorted(FINETUNED),
        default=list(TABLE),
        help=f"fine-tuned recipes [{' '.join(TABLE)}]",
    )
    ap.add_argument("--schedule", choices=("full", "short"), default="full", help="fine-tune schedule [full]")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of full and epoch schedules [2]")
    ap.add_argument("--per-group", type=int, default=12, help="short: images per source/label/split [12]")
    ap.add_argument(
        "--lofo-finetune",
        nargs="*",
        choices=sorted(FINETUNED),
        default=list(TABLE),
        help=f"fine-tuned leave-outs for [{' '.join(TABLE)}]",
    )
    ap.add_argument("--lofo-seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--lofo-schedule", choices=("epoch", "short", "full"), default="epoch", help="fine-tuned folds [epoch]"
    )
    ap.add_argument("--lofo-per-group", type=int, default=12, help="short folds: images per source/label [12]")
    ap.add_argument("--lofo-families", nargs="*", help="fine-tuned folds to run, in this order [every counted]")
    ap.add_argument("--val-cap", type=int, default=30, help="short: val images scored per source/label [30]")
    ap.add_argument("--eval-cap", type=int, default=20, help="short: rendered eval images scored per kind [20]")
    ap.add_argument("--note", action="append", default=[], help="a sentence for the JSON's notes (what did not run)")
    ap.add_argument("--subset", type=int, help="smoke runs: at most N images per source/label/split and rendered kind")
    args = ap.parse_args(argv)
    settings = get_settings(manifest=args.manifest, home=args.home)
    refuse_unknown_families(ap, "--lofo-families", args.lofo_families, settings.manifest)
    from model.manifest import read_manifest

    samples, digest, units = samples_and_units(settings, args.subset)
    speeds = Units(settings.home / "cache" / "recipes" / digest[:16])  # a subset runs the same networks
    steps = set(args.steps.split(","))
    from model.recipe_finetune import FULL, on_subset, one_epoch, short

    full = replace(FULL, threads=args.threads)
    schedule = on_subset(
        short(args.per_group, args.val_cap, args.eval_cap) if args.schedule == "short" else full, args.subset
    )
    lofo_schedule = on_subset(
        {"short": short(args.lofo_per_group), "epoch": one_epoch(args.threads), "full": full}[args.lofo_schedule],
        args.subset,
    )
    if "speed" in steps:
        for name in [*args.finetune, *args.frozen]:
            speeds.run(f"speed-{name}", lambda name=name: speed(settings, samples, name))
    if "frozen" in steps:
        frozen_step(settings, samples, units, args.frozen, args.seeds, args.subset)
    if "finetune" in steps:
        finetune_step(settings, samples, units, args.finetune, args.seeds, schedule, args.subset)
    if "lofo" in steps:
        lofo_step(settings, samples, units, args.lofo_finetune, args.lofo_seeds, lofo_schedule, args.lofo_families)
    if "report" not in steps:
        return 0
    n_full = len(read_manifest(settings.manifest, split="train")) + NONPHOTO_TRAIN_PER_KIND * len(KINDS)
    rows = collect(
        units, samples, args.frozen, args.finetune, args.seeds, schedule, args.lofo_seeds, lofo_schedule, speeds, n_full
    )
    meta = {
        "manifest": str(settings.manifest),
        "manifest_digest": digest,
        "n_images": len(samples),
        "seeds": args.seeds,
        "schedule": asdict(schedule),
        "lofo_seeds": args.lofo_seeds,
        "lofo_schedule": asdict(lofo_schedule),
        "lofo_finetune": args.lofo_finetune,
        "subset": args.subset,
        # the recipe `aidetect train` uses now (AIDETECT_RECIPE); the table marks it and the rule's choice apart
        "default": next((n for n, p in CONFIGS.items() if p.resolve() == settings.recipe.resolve()), None),
        "notes": args.note,
        "units": str(units.folder),
        "command": "python bench/recipes.py " + " ".join(argv or sys.argv[1:]),
        "cpus": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
    }
    report = build_report(rows, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md, png = args.out.with_suffix(".md"), args.out.with_suffix(".png")
    args.out.write_text(json.dumps(report, indent=2, default=_json) + "\n")
    md.write_text(markdown_table(report) + "\n" + markdown_notes(report))
    plot(report, png)
    if args.tracking_uri:
        report["run_id"] = log_mlflow(
            settings.model_copy(update={"tracking_uri": args.tracking_uri}), report, [args.out, md, png]
        )
        args.out.write_text(json.dumps(report, indent=2, default=_json) + "\n")
    print(markdown_table(report))
    print(f"chosen: {report['chosen']}  ({report['rule']})")
    return 0


def _json(o):
    return float(o) if isinstance(o, np.floating | np.integer) else str(o)


if __name__ == "__main__":
    sys.exit(main())
