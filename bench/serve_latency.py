"""Latency and throughput of the detector at 1, 8 and 32 concurrent clients, three ways, in one run.

    python bench/serve_latency.py                       # a quick model trained into a temp store
    python bench/serve_latency.py --home ~/.aidetect    # the production model of a store
    python bench/serve_latency.py --seconds 20 --clients 1 8 32

raw    = the model's batched forward on already-decoded images, no HTTP: c clients keep c images
         ready, so each forward takes min(c, max batch) of them; latency = one forward
server = `aidetect serve` as deployed (decode, dynamic batching, records via the outbox), JPEG bytes
         posted over loopback by c concurrent clients
naive  = the same model behind a plain FastAPI route: decode + one image per forward pass, one worker
Writes bench/results/serve_latency.json (and prints it). Goals: server >= 0.9 x raw images/s, and
server >= 2 x naive images/s at 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import Settings  # noqa: E402
from aidetect.testing import servers  # noqa: E402


def ensure_model(settings: Settings) -> str:
    from model import registry
    from model.jobs import evaluate_and_promote, train_and_register
    from model.train import load_config

    registry.configure(settings)
    if registry.alias_version(settings.model_name, settings.production_alias) is None:
        # Speed depends on the architecture, not on how well it was trained.
        ref, _ = train_and_register(settings, load_config(per_group=8, epochs=1))
        evaluate_and_promote(settings, ref.uri, per_group=4)
    return registry.resolve(settings.resolved_model_uri).uri


def sample_images(settings: Settings, n: int) -> list[bytes]:
    from model.manifest import read_manifest, subsample

    rows = subsample(read_manifest(settings.manifest, split="val"), max(1, n // 6))
    return [r.path.read_bytes() for r in rows][:n]


def summary(lat: list[float], images: int, seconds: float, errors: int = 0) -> dict:
    lat = sorted(lat)
    return {
        "images": images,
        "errors": errors,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
        "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
    }


def bench_raw(bundle, images: list[bytes], clients: int, max_batch: int, seconds: float) -> dict:
    import torch

    from model.preprocess import preprocess

    x = torch.from_numpy(np.stack([preprocess(b, bundle.pre) for b in images]))
    batch = min(clients, max_batch)
    xb = x.repeat((batch // len(x)) + 1, 1, 1, 1)[:batch]
    bundle.score_tensor(xb)  # warm-up
    lat, n, t0 = [], 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        bundle.score_tensor(xb)
        # every image of the batch waited for the whole forward
        lat.extend([time.perf_counter() - t] * batch)
        n += batch
    return {**summary(lat, n, time.perf_counter() - t0), "batch": batch}


async def bench_http(url: str, images: list[bytes], clients: int, seconds: float) -> dict:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=120) as client:
        for b in images[:4]:  # warm-up
            await client.post(url, content=b, headers={"content-type": "image/jpeg"})
        lat: list[float] = []
        errors: list[int] = []
        t0 = time.perf_counter()
        stop_at = t0 + seconds

        async def one_client(k: int) -> None:
            i = k
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                r = await client.post(url, content=images[i % len(images)], headers={"content-type": "image/jpeg"})
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t)
                else:
                    errors.append(r.status_code)
                i += 1

        await asyncio.gather(*[one_client(k) for k in range(clients)])
        return summary(lat, len(lat), time.perf_counter() - t0, len(errors))


def naive_app(home: str, uri: str):
    """The same model behind one plain FastAPI route: one image per forward pass, one at a time."""
    import threading

    import torch
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from model import registry
    from model.preprocess import ImageError, preprocess

    torch.set_grad_enabled(False)
    registry.configure(Settings(home=Path(home)))
    bundle, ref = registry.load_detector(uri)
    lock = threading.Lock()
    app = FastAPI()

    async def detect(request):
        data = await request.body()
        try:
            x = torch.from_numpy(preprocess(data, bundle.pre)[None])
        except ImageError as e:
            return JSONResponse({"detail": e.message}, status_code=e.status)
        with lock:
            score = float(bundle.score_tensor(x)[0])
        return JSONResponse({"score": score, "verdict": bundle.verdicts(np.array([score]))[0], "model": ref.version})

    app.router.add_route("/v1/detect", detect, methods=["POST"])  # a plain Starlette route: no FastAPI parsing
    return app


def run_naive(home: str, uri: str, port: int) -> None:
    import uvicorn

    uvicorn.run(naive_app(home, uri), host="127.0.0.1", port=port, workers=1, log_level="warning")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time per mode and level")
    ap.add_argument("--max-batch-size", type=int, default=Settings().max_batch_size, help="server batch limit")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_latency.json")
    ap.add_argument("--naive-server", nargs=3, metavar=("HOME", "URI", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.naive_server:
        home, uri, port = args.naive_server
        return run_naive(home, uri, int(port))

    import torch

    from model import registry

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=args.home or Path(tmp), max_batch_size=args.max_batch_size)
        uri = ensure_model(settings)
        bundle, ref = registry.load_detector(uri)
        images = sample_images(settings, 24)
        results: dict = {"raw": {}, "server": {}, "naive": {}}

        # raw first, alone on the machine
        torch.set_grad_enabled(False)
        for c in args.clients:
            results["raw"][str(c)] = bench_raw(bundle, images, c, args.max_batch_size, args.seconds)
            print("raw", c, results["raw"][str(c)], file=sys.stderr, flush=True)
        del bundle

        # server: as deployed, records included (SQLite store + outbox under its home)
        port = servers.free_port()
        env = {
            "AIDETECT_HOME": str(settings.home),
            "AIDETECT_PORT": str(port),
            "AIDETECT_MAX_BATCH_SIZE": str(args.max_batch_size),
            "AIDETECT_MODEL_URI": uri,
            "AIDETECT_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        proc = servers.start(servers.aidetect_cmd("serve"), env=env, log=Path(tmp) / "serve.log")
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/health", timeout=300, proc=proc)
            for c in args.clients:
                url = f"http://127.0.0.1:{port}/v1/detect"
                results["server"][str(c)] = asyncio.run(bench_http(url, images, c, args.seconds))
                print("server", c, results["server"][str(c)], file=sys.stderr, flush=True)
        finally:
            servers.stop(proc)

        # naive: a plain FastAPI route, one image per forward, one worker
        port = servers.free_port()
        cmd = [sys.executable, __file__, "--naive-server", str(settings.home), uri, str(port)]
        proc = servers.start(cmd, log=Path(tmp) / "naive.log")
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/docs", timeout=300, proc=proc)
            for c in args.clients:
                url = f"http://127.0.0.1:{port}/v1/detect"
                results["naive"][str(c)] = asyncio.run(bench_http(url, images, c, args.seconds))
                print("naive", c, results["naive"][str(c)], file=sys.stderr, flush=True)
        finally:
            servers.stop(proc)

    def ratio(a: dict, b: dict) -> float | None:
        return round(a["images_per_s"] / b["images_per_s"], 3) if b["images_per_s"] else None

    ratios = {
        str(c): {
            "server_vs_raw": ratio(results["server"][str(c)], results["raw"][str(c)]),
            "server_vs_naive": ratio(results["server"][str(c)], results["naive"][str(c)]),
        }
        for c in args.clients
    }
    at8 = ratios.get("8", {})
    result = {
        "benchmark": "serve_latency",
        "model": uri,
        "max_batch_size": args.max_batch_size,
        "seconds_per_point": args.seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        **results,
        "ratios": ratios,
        "goals": {
            "server_ge_0.9_raw_at_8": (at8.get("server_vs_raw") or 0) >= 0.9 if at8 else None,
            "server_ge_2x_naive_at_8": (at8.get("server_vs_naive") or 0) >= 2.0 if at8 else None,
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
