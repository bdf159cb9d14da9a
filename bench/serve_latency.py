"""Latency and throughput of the detector at 1, 8 and 32 concurrent clients, four ways, in one run.

    python bench/serve_latency.py                       # a quick model trained into a temp store
    python bench/serve_latency.py --home ~/.aidetect    # the production model of a store
    python bench/serve_latency.py --seconds 10 --rounds 3 --clients 1 8 32

raw          = the model's batched forward on already-decoded images, no HTTP, in one process with torch's
               own threads: c clients keep c images ready, so each forward takes min(c, max batch) of them
raw_per_core = the same forward in the server's worker layout (service/workers.py: W processes x T
               threads, all at once): the most this machine gets out of the model without HTTP
server       = `aidetect serve` as deployed (decode, dynamic batching, records via the outbox), images
               posted over loopback by c closed-loop clients (bench/load.py: wrk when installed)
naive        = the same model behind a plain FastAPI route: decode + one image per forward pass, one worker

Every mode runs once per level in each of --rounds rounds (raw, raw_per_core, server, naive, then the
next level), so slow drifts of a shared VM hit all four alike; after each HTTP phase the benchmark waits
until that server has answered its backlog (bench/quiet.py). The JSON keeps every round and reports
medians, and each ratio is the median of the per-round ratios. Writes bench/results/serve_latency.json.
Goals at 8 clients: server >= 0.9 x raw images/s, and server >= 2 x naive.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import Settings  # noqa: E402
from aidetect.testing import servers  # noqa: E402
from bench import raw_model  # noqa: E402
from bench.load import Load  # noqa: E402
from bench.quiet import wait_quiet  # noqa: E402
from service.workers import available_cpus, inference_layout  # noqa: E402

MODES = ("raw", "raw_per_core", "server", "naive")


@dataclasses.dataclass(frozen=True)
class Target:
    url: str
    sid: int  # the server's session: every process it started, for wait_quiet


def http_phase(load: Load, target: Target, clients: int, seconds: float) -> dict:
    """One closed-loop load, then the wait until the server has answered its backlog."""
    out = load.run(target.url, clients, seconds)
    out["settle_s"] = round(wait_quiet(target.sid), 2)
    return out


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


@contextlib.contextmanager
def running(cmd: list[str], ready_path: str, port: int, log: Path, env: dict | None = None):
    """A server process on a loopback port for the length of a `with`, as a Target."""
    url = f"http://127.0.0.1:{port}"
    proc = servers.start_ready(cmd, url + ready_path, env=env, log=log, timeout=300)
    try:
        yield Target(f"{url}/v1/detect", proc.pid)
    finally:
        servers.stop(proc)


def aidetect_server(settings: Settings, uri: str, log_dir: Path):
    """`aidetect serve` on a free loopback port, as deployed: records, outbox and metrics included."""
    port = servers.free_port()
    env = {
        "AIDETECT_HOME": str(settings.home),
        "AIDETECT_PORT": str(port),
        "AIDETECT_MAX_BATCH_SIZE": str(settings.max_batch_size),
        "AIDETECT_MODEL_URI": uri,
        # Capacity is measured, not the per-client limiter (every client here is 127.0.0.1).
        "AIDETECT_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    return running(servers.aidetect_cmd("serve"), "/health", port, log_dir / "serve.log", env)


def naive_server(settings: Settings, uri: str, log_dir: Path):
    port = servers.free_port()
    cmd = [sys.executable, __file__, "--naive-server", str(settings.home), uri, str(port)]
    return running(cmd, "/docs", port, log_dir / "naive.log")


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


@dataclasses.dataclass
class Setup:
    """What every serving benchmark measures against: one model, its images, the raw forward in both
    layouts, the load generator and `aidetect serve`, all started for one run."""

    settings: Settings
    uri: str
    workers: int
    threads: int
    bundle: object
    x: object  # the images decoded and normalised, for the raw forward
    load: Load
    per_core: raw_model.PerCore
    server: Target


def set_up(stack: contextlib.ExitStack, tmp: Path, home: Path | None, max_batch_size: int) -> Setup:
    from model import registry

    settings = Settings(home=home or tmp, max_batch_size=max_batch_size)
    uri = ensure_model(settings)
    workers, threads = inference_layout(settings.workers_per_device, settings.torch_threads, available_cpus())
    bundle, _ = registry.load_detector(uri)
    images = sample_images(settings, 24)
    load = Load(images)
    stack.callback(load.close)
    per_core = raw_model.PerCore(settings.home, uri, workers, threads, images)
    stack.callback(per_core.close)
    server = stack.enter_context(aidetect_server(settings, uri, tmp))
    load.warm_up(server.url)
    return Setup(settings, uri, workers, threads, bundle, raw_model.inputs(bundle, images), load, per_core, server)


def median_of(rounds: list[dict]) -> dict:
    """One summary from several rounds: medians of the rates and latencies, every round's rate kept."""
    out = dict(rounds[0])
    for k in ("images_per_s", "p50_ms", "p95_ms"):
        vals = [r[k] for r in rounds if r.get(k) is not None]
        out[k] = round(statistics.median(vals), 2) if vals else None
    out["images"] = sum(r["images"] for r in rounds)
    out["errors"] = sum(r["errors"] for r in rounds)
    out["seconds"] = round(sum(r["seconds"] for r in rounds), 3)
    out["images_per_s_by_round"] = [r["images_per_s"] for r in rounds]
    return out


def paired_ratio(a: list[dict], b: list[dict]) -> dict:
    """Median and range of a/b images/s over rounds, pairing each round with itself."""
    rs = [x["images_per_s"] / y["images_per_s"] for x, y in zip(a, b, strict=True) if y["images_per_s"]]
    if not rs:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(rs), 3), "min": round(min(rs), 3), "max": round(max(rs), 3)}


def machine(torch) -> dict:
    return {
        "cpus": os.cpu_count(),
        "available_cpus": available_cpus(),
        "load_avg_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per mode, level and round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every mode and level (medians reported)")
    ap.add_argument("--max-batch-size", type=int, default=Settings().max_batch_size, help="server batch limit")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_latency.json")
    ap.add_argument("--naive-server", nargs=3, metavar=("HOME", "URI", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.naive_server:
        home, uri, port = args.naive_server
        return run_naive(home, uri, int(port))

    import torch

    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        b = set_up(stack, Path(tmp), args.home, args.max_batch_size)
        load = b.load
        naive = stack.enter_context(naive_server(b.settings, b.uri, Path(tmp)))
        load.warm_up(naive.url)

        by_round: dict = {m: {str(c): [] for c in args.clients} for m in MODES}
        for r in range(args.rounds):
            for c in args.clients:
                got = {
                    "raw": raw_model.measure(b.bundle, b.x, min(c, args.max_batch_size), args.seconds),
                    "raw_per_core": b.per_core.measure(c, args.max_batch_size, args.seconds),
                    "server": http_phase(load, b.server, c, args.seconds),
                    "naive": http_phase(load, naive, c, args.seconds),
                }
                for m, v in got.items():
                    by_round[m][str(c)].append(v)
                rates = {m: v["images_per_s"] for m, v in got.items()}
                print(f"round {r + 1}/{args.rounds} clients {c}: {rates}", file=sys.stderr, flush=True)

    levels = [str(c) for c in args.clients]
    results = {m: {c: median_of(by_round[m][c]) for c in levels} for m in MODES}
    ratios = {
        c: {
            "server_vs_raw": paired_ratio(by_round["server"][c], by_round["raw"][c]),
            "server_vs_raw_per_core": paired_ratio(by_round["server"][c], by_round["raw_per_core"][c]),
            "server_vs_naive": paired_ratio(by_round["server"][c], by_round["naive"][c]),
            # The most any server could reach over naive here: the model's own ceiling, with no HTTP at all.
            "raw_per_core_vs_naive": paired_ratio(by_round["raw_per_core"][c], by_round["naive"][c]),
        }
        for c in levels
    }
    at8 = ratios.get("8")

    def goal(key: str, target: float):
        return None if at8 is None or at8[key]["median"] is None else at8[key]["median"] >= target

    result = {
        "benchmark": "serve_latency",
        "model": b.uri,
        "max_batch_size": args.max_batch_size,
        "server_layout": {"workers": b.workers, "torch_threads_each": b.threads},
        "load_generator": load.tool,
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "machine": machine(torch),
        **results,
        "ratios": ratios,
        "goals": {
            "server_ge_0.9_raw_at_8": goal("server_vs_raw", 0.9),
            "server_ge_0.9_raw_per_core_at_8": goal("server_vs_raw_per_core", 0.9),
            "server_ge_2x_naive_at_8": goal("server_vs_naive", 2.0),
            "raw_per_core_ge_2x_naive_at_8": goal("raw_per_core_vs_naive", 2.0),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
