"""qwen_gpu bench, phase serve: service/qwen_api.py as a real process (bench/qwen_gpu.py --serve-child)
under concurrent clients."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time
from pathlib import Path

from bench.qwen_gpu_env import ROOT, jpeg, synthetic_images

SCRIPT = ROOT / "bench" / "qwen_gpu.py"
STUB_ENV = "AIDETECT_BENCH_STUB_REGISTRY"  # set for the server child only (see stub_registry_without_mlflow)


# --------------------------------------------------------------------------- phase: serve


def serve_child(argv: list[str]) -> None:
    """Run service/qwen_api.py's server on a bundle folder (this script re-executed as the server)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--max-batch-size", type=int, required=True)
    ap.add_argument("--batch-timeout", type=float, required=True)
    a = ap.parse_args(argv)
    from service.qwen_api import run_server

    run_server(
        a.bundle,
        host="127.0.0.1",
        port=a.port,
        max_batch_size=a.max_batch_size,
        batch_timeout=a.batch_timeout,
        timeout=300.0,
    )


def stub_registry_without_mlflow() -> None:
    """QwenAPI.setup calls model.registry.configure, which imports mlflow; a bundle folder never needs
    the registry, so where mlflow is not installed (the GPU image) a no-op configure stands in.

    Installed at import when STUB_ENV is set: LitServe's inference workers are spawned processes that
    re-run this script as __mp_main__ before they unpickle the API, so they get the stub too."""
    import importlib.util
    import types

    if importlib.util.find_spec("mlflow") is not None:
        return
    import model

    stub = types.ModuleType("model.registry")
    stub.configure = lambda settings: None
    sys.modules["model.registry"] = stub
    model.registry = stub


async def _client(client, url, bodies, stop_at, lat, errors, offset):
    i = offset
    while time.perf_counter() < stop_at:
        t = time.perf_counter()
        r = await client.post(url, json={"image_b64": bodies[i % len(bodies)]})
        (lat.append(time.perf_counter() - t) if r.status_code == 200 else errors.append(r.status_code))
        i += 1


async def _load(url: str, bodies: list[str], clients: int, seconds: float) -> dict:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=300) as client:
        # warm-up: two rounds of full batches (CUDA kernels, allocator, uvicorn workers)
        for _ in range(2):
            rs = await asyncio.gather(*[client.post(url, json={"image_b64": b}) for b in bodies[:clients]])
            bad = [r.status_code for r in rs if r.status_code != 200]
            if bad:
                raise RuntimeError(f"server answered {bad[0]} during warm-up: {rs[0].text[:200]}")
        lat: list[float] = []
        errors: list[int] = []
        t0 = time.perf_counter()
        await asyncio.gather(*[_client(client, url, bodies, t0 + seconds, lat, errors, i) for i in range(clients)])
        dt = time.perf_counter() - t0
    lat.sort()
    return {
        "clients": clients,
        "images": len(lat),
        "errors": len(errors),
        "seconds": round(dt, 3),
        "images_per_s": round(len(lat) / dt, 3),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
        "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
    }


def bench_server(bundle: Path, mode: str, batch: int, args, work: Path, image_size: int) -> dict:
    from aidetect.testing import servers

    port = servers.free_port()
    log = work / f"serve-{mode}-{batch}.log"
    cmd = [
        sys.executable,
        str(SCRIPT),  # the entry point: its main() runs serve_child, its import installs the stub
        "--serve-child",
        str(bundle),
        "--port",
        str(port),
        "--max-batch-size",
        str(batch),
        "--batch-timeout",
        str(args.batch_timeout),
    ]
    # keep the caller's PYTHONPATH: on the GPU machine the carried wheels are installed there
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {"AIDETECT_HOME": str(work / "home"), "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", STUB_ENV: "1"}
    clients = max(1, args.clients_per_batch * batch)
    bodies = [base64.b64encode(jpeg(im)).decode() for im in synthetic_images(max(clients, 4), image_size, 7)]
    t0 = time.perf_counter()
    proc = servers.start(cmd, env=env, log=log)
    try:
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/health", timeout=args.server_start_timeout, proc=proc)
        except (RuntimeError, TimeoutError) as e:
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"Qwen server did not start ({e}); log tail:\n{tail}") from None
        start_s = time.perf_counter() - t0
        res = asyncio.run(_load(f"http://127.0.0.1:{port}/v1/qwen", bodies, clients, args.serve_seconds))
    finally:
        servers.stop(proc)
    return {
        "mode": mode,
        "batch": batch,
        "max_batch_size": batch,
        "batch_timeout_s": args.batch_timeout,
        "start_seconds": round(start_s, 2),
        **res,
    }
