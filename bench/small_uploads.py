"""Uploads smaller than the model's size: enlarged to it, as served, or scored at their own resolution?

    python bench/small_uploads.py                              # the production model on every val image
    python bench/small_uploads.py --model-uri models:/aidetect/3 --out /tmp/s.json

Serving resizes an upload's shorter side to the model's size (model.preprocess.fit_to_size), so a crop or a
downscaled copy of a 256 px image is enlarged back to 256 px, which the fine-tuned recipes' native-resolution
training crops never show: the crop tier loses the most AUROC (docs/model-card.md, robustness tiers). The
network is fully convolutional, so it can also take a small picture as it is: its centre square, no
resampling. This scores the tiers that leave an image smaller than the model's size three ways (as served, at
native resolution, and the mean logit of both: twice the compute, for small uploads only) and reports AUROC
per `aidetect evaluate` group with its drop against the stored images. Writes bench/results/small_uploads.json
and a plot of each policy's worst drop per tier beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from record import machine, write  # noqa: E402

from aidetect.settings import get_settings  # noqa: E402
from bench.crop_pooling import group_aurocs, scoring_args  # noqa: E402
from model.manifest import read_manifest, subsample  # noqa: E402
from model.preprocess import PreprocessConfig, fit_to_size  # noqa: E402

RESULT = ROOT / "bench" / "results" / "small_uploads.json"  # and .png beside it
SMALL_TIERS = ("crop60-90", "down0.75", "down0.5")  # the tiers whose output is smaller than 256 px
POLICIES = ("as served", "native", "mean of both")
TIER_GOAL = 0.03  # issue 15: AUROC drop per robustness tier


def native_square(img, pre: PreprocessConfig):
    """An image smaller than the model's size: its centre square at its own resolution. A larger one: as served."""
    w, h = img.size
    if min(w, h) >= pre.size:
        return fit_to_size(img, pre)
    m = min(w, h)
    left, top = (w - m) // 2, (h - m) // 2
    return img.crop((left, top, left + m, top + m))


def logits(net, pre: PreprocessConfig, images) -> np.ndarray:
    """Raw logit per PIL image, each its own batch: a native square has its own size."""
    import torch

    from model.dataset import normalise_batch

    net.eval()
    with torch.inference_mode():
        return np.array(
            [float(net(normalise_batch(np.array(img)[None], pre)).reshape(-1)[0]) for img in images], dtype=np.float32
        )


def policy_logits(net, pre: PreprocessConfig, images) -> dict[str, np.ndarray]:
    """{policy: raw logit per PIL image}."""
    served = logits(net, pre, [fit_to_size(img, pre) for img in images])
    native = logits(net, pre, [native_square(img, pre) for img in images])
    return {"as served": served, "native": native, "mean of both": (served + native) / 2}


def worst_drops(rep: dict) -> dict[str, dict[str, float]]:
    """{policy: {tier: the largest AUROC drop against as stored over the groups}}."""

    def worst(drops: dict[str, float]) -> float:
        known = [d for d in drops.values() if d == d]  # NaN: a group of one label in a smoke run
        return max(known) if known else float("nan")

    return {p: {t: worst(r["drop"][p]) for t, r in rep["tiers"].items()} for p in POLICIES}


def plot(rep: dict, path: Path) -> Path:
    from model.plots import paired_bars_plot

    drops = worst_drops(rep)
    tiers = list(rep["tiers"])
    known = [d for row in drops.values() for d in row.values() if d == d]
    return paired_bars_plot(
        tiers,
        {p: [drops[p][t] for t in tiers] for p in POLICIES},
        path,
        f"Worst AUROC drop over the groups: {rep['model']}",
        goal=TIER_GOAL,
        xlim=(min(0.0, *known), 1.1 * max(TIER_GOAL, *known)),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scoring_args(ap, RESULT)
    args = ap.parse_args(argv)
    import torch

    from model.preprocess import decode_image
    from model.registry import configure, load_detector
    from model.robustness import tiers_named

    torch.set_num_threads(args.threads)
    settings = get_settings(manifest=args.manifest, home=args.home, model_uri=args.model_uri)
    configure(settings)
    bundle, ref = load_detector(settings.resolved_model_uri)
    samples = read_manifest(settings.manifest)
    if args.per_group:
        samples = subsample(samples, args.per_group)
    val = [s for s in samples if s.split == "val"]
    t0 = time.perf_counter()
    images = [decode_image(s.path.read_bytes(), bundle.pre) for s in val]
    stored = group_aurocs(logits(bundle.net, bundle.pre, [fit_to_size(img, bundle.pre) for img in images]), val)
    tiers = {}
    for tier in tiers_named(SMALL_TIERS):
        changed = [tier.apply(img, s.path.name) for s, img in zip(val, images, strict=True)]  # as evaluate seeds it
        auroc = {p: group_aurocs(x, val) for p, x in policy_logits(bundle.net, bundle.pre, changed).items()}
        tiers[tier.name] = {
            "what": tier.what,
            "auroc": auroc,
            "drop": {p: {g: stored[g] - a for g, a in row.items()} for p, row in auroc.items()},
        }
        print(f"{tier.name}: " + "; ".join(f"{p} {r['overall']:.3f}" for p, r in auroc.items()), flush=True)
    rep = {
        "question": __doc__.splitlines()[0],
        "command": "python bench/small_uploads.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": ref.uri,
        "image_size": bundle.pre.size,
        "n_val": len(val),
        "stored_auroc": stored,
        "tiers": tiers,
        "score_seconds": time.perf_counter() - t0,
        **machine(),
    }
    rep["worst_drop"] = worst_drops(rep)
    write(args.out, rep)
    plot(rep, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
