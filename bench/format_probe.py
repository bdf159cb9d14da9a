"""Upload formats on a registered detector: AUROC per group as stored and re-encoded as PNG, WebP, AVIF, HEIC.

    python bench/format_probe.py --model-uri models:/aidetect/1     # bench/results/format_probe.json

Every shared image is a JPEG (quality 90, 4:2:0), but uploads also arrive as phones' HEIC and platforms' and
CDNs' WebP and AVIF, whose compression leaves other traces. Each format tier (model.robustness.FORMAT_TIERS)
re-encodes the evaluation half of val before the serving resize, and `aidetect evaluate`'s own code scores it
(model.evaluate.evaluate_bundle with these tiers), so the drop is measured as the issue's robustness tiers are.
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

from aidetect.settings import Settings  # noqa: E402
from model.robustness import FORMAT_TIERS  # noqa: E402

RESULT = ROOT / "bench" / "results" / "format_probe.json"


def probe(settings: Settings, model_uri: str, n_boot: int = 200, per_group: int | None = None) -> dict:
    """`per_group`: at most this many val images per source and label (a smoke run), else all of val."""
    from model import registry
    from model.evaluate import evaluate_bundle
    from model.manifest import read_manifest, subsample

    registry.configure(settings)
    bundle, _ = registry.load_detector(model_uri)
    samples = read_manifest(settings.manifest, split="val")
    if per_group:
        samples = subsample(samples, per_group)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = evaluate_bundle(bundle, settings.manifest, Path(tmp), samples=samples, tiers=FORMAT_TIERS, n_boot=n_boot)
    groups = {g: {"n": int(m["n"]), "auroc": m["auroc"]} for g, m in res["groups"].items()}
    return {
        "benchmark": "format_probe",
        "model": model_uri,
        "runtime": bundle.runtime,
        "scored": res["scored"],
        "n_scored": res["n"],
        "tiers": res["tiers"],
        "as_stored": groups,
        "auroc": res["tier_auroc"],
        "drop": res["tier_auroc_drop"],
        "worst_drop": res["worst_tier_drop"],
        "goal_max_drop": 0.03,  # the bound for its robustness tiers, applied here alike
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-uri", default="models:/aidetect@production", help="registered version [production]")
    ap.add_argument("--out", type=Path, default=RESULT, help="result JSON [bench/results/format_probe.json]")
    ap.add_argument("--per-group", type=int, help="at most N val images per source and label [all of val]")
    args = ap.parse_args(argv)
    out = probe(Settings(), args.model_uri, per_group=args.per_group)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for tier, drops in out["drop"].items():
        print(tier, {g: round(d, 3) for g, d in drops.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
