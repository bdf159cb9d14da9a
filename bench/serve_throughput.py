"""Throughput of the detector by batch size, eager torch vs the optimised runtime, and the four serving
modes at 1, 8 and 32 clients, measured in one run.

    python bench/serve_throughput.py                      # quick model trained into a temp store
    python bench/serve_throughput.py --home ~/.aidetect   # the production model of a store
    python bench/serve_throughput.py --clients 8 32 --seconds 8 --rounds 3

by batch     = raw_torch (eager) and raw_opt (the ONNX export), both in the server's layout (W processes x
               T threads, every one at that batch), at batch 1..16
levels       = raw_torch, raw_opt, server_torch, server as bench/serve_latency.py measures them (images/s,
               p50/p95, CPU-ms per image, RSS per replica) at each --clients level
Each round measures every batch and every mode and level back to back; medians over rounds are
reported, ratios are medians of per-round ratios. The p95 <= 200 ms capacity search is serve_latency.py's
(`--capacity-clients` runs it here too). Writes bench/results/serve_throughput.json.
Goals: raw_opt >= 3 x raw_torch at the served batch limit; server >= 0.9 x raw_opt at 8 clients.
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
from bench.serve_latency import (  # noqa: E402
    MODES,
    SERVERS,
    capacity,
    measure_level,
    median_of,
    paired_ratio,
    run_header,
    set_up,
    summarise,
)

RAW_BATCHES = (1, 2, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent HTTP clients")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per phase and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every phase (medians reported)")
    ap.add_argument("--batches", type=int, nargs="+", default=list(RAW_BATCHES), help="raw batch sizes")
    ap.add_argument(
        "--max-batch-size", type=int, default=Settings().max_batch_size, help="server's dynamic batch limit"
    )
    ap.add_argument("--capacity-clients", type=int, nargs="*", default=[], help="as serve_latency.py (default: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_throughput.json")
    args = ap.parse_args()

    import torch

    torch.set_grad_enabled(False)
    mb = args.max_batch_size
    batches = sorted({*args.batches, mb})
    levels = [str(c) for c in args.clients]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        b = set_up(stack, Path(tmp), args.home, mb)
        curve = {m: {n: [] for n in batches} for m in ("raw_torch", "raw_opt")}
        by_round: dict = {m: {c: [] for c in levels} for m in MODES}
        for r in range(args.rounds):
            # Per-image cost on a CPU depends on the batch (cache effects): every batch size is measured.
            for n in batches:
                for m in curve:
                    curve[m][n].append(b.per_core[m].measure(n * b.workers, n, args.seconds / 2))
            for c in args.clients:
                for m in MODES:
                    by_round[m][str(c)].append(measure_level(b, m, c, mb, args.seconds))
            now = {m: by_round[m][levels[-1]][-1]["images_per_s"] for m in MODES}
            print(f"round {r + 1}/{args.rounds} at {levels[-1]} clients: {now} images/s", file=sys.stderr, flush=True)
        if args.capacity_clients:
            caps = {m: capacity(b.load, b.servers[m], args.capacity_clients, args.seconds) for m in SERVERS}
        else:
            caps = {m: {"skipped": "see serve_latency.json", "vcpu_hours_per_million_images": None} for m in SERVERS}

    by_batch = {m: {str(n): median_of(rs) for n, rs in c.items()} for m, c in curve.items()}
    result = {
        **run_header("serve_throughput", b, mb, args),
        "by_batch": {m: {n: r["images_per_s"] for n, r in d.items()} for m, d in by_batch.items()},
        "by_batch_detail": by_batch,
        "raw_opt_vs_raw_torch_by_batch": {
            str(n): paired_ratio(curve["raw_opt"][n], curve["raw_torch"][n]) for n in batches
        },
        **summarise(by_round, {m: curve[m][mb] for m in curve}, caps, levels, mb),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
