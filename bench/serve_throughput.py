"""Throughput of the detector: the raw batched model vs the LitServe server, measured in one run.

    python bench/serve_throughput.py                      # quick model trained into a temp store
    python bench/serve_throughput.py --home ~/.aidetect   # the production model of a store
    python bench/serve_throughput.py --clients 8 --seconds 20

raw    = DetectorBundle forward on already-decoded, normalised images, at batch 1..16 (the server's
         batch limit and the raw model's best batch are both reported)
server = `aidetect serve` as a real process; concurrent clients post JPEG bytes over loopback
Writes bench/results/serve_throughput.json (and prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import Settings  # noqa: E402
from aidetect.testing import servers  # noqa: E402
from bench import serve_latency  # noqa: E402  (model set-up, image sample and HTTP load are shared)
from bench.serve_latency import ensure_model, sample_images  # noqa: E402

RAW_BATCHES = (1, 2, 4, 8, 16)


def bench_raw(bundle, images: list[bytes], batch: int, seconds: float) -> dict:
    return serve_latency.bench_raw(bundle, images, clients=batch, max_batch=batch, seconds=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    ap.add_argument("--seconds", type=float, default=15.0, help="measuring time per phase")
    ap.add_argument(
        "--max-batch-size", type=int, default=Settings().max_batch_size, help="server's dynamic batch limit"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_throughput.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=args.home or Path(tmp), max_batch_size=args.max_batch_size)
        uri = ensure_model(settings)
        from model import registry

        bundle, ref = registry.load_detector(uri)
        images = sample_images(settings, 24)

        port = servers.free_port()
        env = {
            "AIDETECT_HOME": str(settings.home),
            "AIDETECT_PORT": str(port),
            "AIDETECT_MAX_BATCH_SIZE": str(args.max_batch_size),
            "AIDETECT_MODEL_URI": ref.uri,
            # Capacity is measured, not the per-client limiter (every client here is 127.0.0.1).
            "AIDETECT_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        proc = servers.start(servers.aidetect_cmd("serve"), env=env, log=Path(tmp) / "serve.log")
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/health", timeout=300, proc=proc)
            # Raw first with the server idle, then the server: one run, same machine, same model.
            # Per-image cost on CPU depends on the batch (cache effects), so the raw model is measured
            # at every batch size: at the server's batch limit and at its own best.
            curve = {b: bench_raw(bundle, images, b, args.seconds / 2) for b in RAW_BATCHES}
            curve.setdefault(args.max_batch_size, bench_raw(bundle, images, args.max_batch_size, args.seconds / 2))
            raw = curve[args.max_batch_size]
            best = max(curve.values(), key=lambda r: r["images_per_s"])
            del bundle
            url = f"http://127.0.0.1:{port}/v1/detect"
            server = {
                "clients": args.clients,
                **asyncio.run(serve_latency.bench_http(url, images, args.clients, args.seconds)),
            }
        finally:
            servers.stop(proc)

    result = {
        "benchmark": "serve_throughput",
        "model": ref.uri,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
        "raw": raw,
        "raw_best": best,
        "raw_by_batch": {str(b): round(r["images_per_s"], 2) for b, r in sorted(curve.items())},
        "server": server,
        "server_vs_raw": server["images_per_s"] / raw["images_per_s"],
        "server_vs_raw_best": server["images_per_s"] / best["images_per_s"],
        "goal": "server >= 0.9 x raw (raw at the server's batch limit, and at the raw model's best batch)",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
