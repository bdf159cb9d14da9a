"""Throughput of the detector: the raw batched model vs the LitServe server, measured in one run.

    python bench/serve_throughput.py                      # quick model trained into a temp store
    python bench/serve_throughput.py --home ~/.aidetect   # the production model of a store
    python bench/serve_throughput.py --clients 16 --seconds 8 --rounds 3

raw          = DetectorBundle forward on already-decoded, normalised images in one process with torch's
               own threads, at batch 1..16 (the server's batch limit and the best batch are reported)
raw_per_core = the same forward in the server's worker layout (W processes x T threads at once)
server       = `aidetect serve` as a real process; concurrent clients post image bytes over loopback
Each round measures raw (every batch), raw_per_core and the server back to back; medians over rounds
are reported, ratios are medians of per-round ratios. Writes bench/results/serve_throughput.json.
Goal: server >= 0.9 x raw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import Settings  # noqa: E402
from bench import raw_model  # noqa: E402
from bench.serve_latency import (  # noqa: E402
    http_phase,
    machine,
    median_of,
    paired_ratio,
    set_up,
)

RAW_BATCHES = (1, 2, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    ap.add_argument("--seconds", type=float, default=5.0, help="measuring time per phase and round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every phase (medians reported)")
    ap.add_argument(
        "--max-batch-size", type=int, default=Settings().max_batch_size, help="server's dynamic batch limit"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_throughput.json")
    args = ap.parse_args()

    import torch

    torch.set_grad_enabled(False)
    batches = sorted({*RAW_BATCHES, args.max_batch_size})
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        b = set_up(stack, Path(tmp), args.home, args.max_batch_size)

        curve: dict[int, list[dict]] = {b: [] for b in batches}
        pc, server = [], []
        for r in range(args.rounds):
            # Per-image cost on a CPU depends on the batch (cache effects): every batch size is measured.
            for n in batches:
                curve[n].append(raw_model.measure(b.bundle, b.x, n, args.seconds / 2))
            pc.append(b.per_core.measure(args.clients, args.max_batch_size, args.seconds))
            server.append({"clients": args.clients, **http_phase(b.load, b.server, args.clients, args.seconds)})
            raw_now = curve[args.max_batch_size][-1]["images_per_s"]
            print(
                f"round {r + 1}/{args.rounds}: raw@{args.max_batch_size} {raw_now}"
                f" per-core {pc[-1]['images_per_s']} server {server[-1]['images_per_s']} images/s",
                file=sys.stderr,
                flush=True,
            )

    raw_by_batch = {n: median_of(rs) for n, rs in curve.items()}
    best = max(batches, key=lambda n: raw_by_batch[n]["images_per_s"])
    result = {
        "benchmark": "serve_throughput",
        "model": b.uri,
        "max_batch_size": args.max_batch_size,
        "server_layout": {"workers": b.workers, "torch_threads_each": b.threads},
        "load_generator": b.load.tool,
        "rounds": args.rounds,
        "machine": machine(torch),
        "raw": raw_by_batch[args.max_batch_size],
        "raw_best": raw_by_batch[best],
        "raw_by_batch": {str(n): r["images_per_s"] for n, r in raw_by_batch.items()},
        "raw_per_core": median_of(pc),
        "server": median_of(server),
        "ratios": {
            "server_vs_raw": paired_ratio(server, curve[args.max_batch_size]),
            "server_vs_raw_best": paired_ratio(server, curve[best]),
            "server_vs_raw_per_core": paired_ratio(server, pc),
        },
        "goal": "server >= 0.9 x raw (raw at the server's batch limit; best batch and per-core layout also given)",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["goal_met"] = result["ratios"]["server_vs_raw"]["median"] >= 0.9
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
