"""Latency, throughput, CPU and memory of the fast detector at 1, 8 and 32 clients, four ways, in one run.

    python bench/serve_latency.py                       # a quick model trained into a temp store
    python bench/serve_latency.py --home ~/.aidetect    # the production model of a store
    python bench/serve_latency.py --seconds 10 --rounds 3 --clients 1 8 32

raw_torch    = the eager torch model's batched forward on already-decoded images, no HTTP, in the server's
               own process layout (service/workers.py: W processes x T threads, all at once): c clients
               keep c images ready, spread over the processes as the server's queue spreads them
raw_opt      = the same with the optimised runtime (the version's ONNX export): the most this machine gets
               out of the model. Both raw modes share the layout so their ratio compares runtimes only (one
               2-thread eager process on this loaded shared VM fell to 1 image/s: OpenMP threads spin-waiting
               for a descheduled sibling)
server_torch = `aidetect serve --runtime torch` (AIDETECT_RUNTIME=torch), kept for this comparison
server       = `aidetect serve` as deployed (runtime auto: the ONNX export), images posted over loopback by
               c closed-loop clients (bench/load.py: wrk when installed)

Every mode runs once per level in each of --rounds rounds (then the next level), so slow drifts of a
shared VM hit all four alike; after each HTTP phase the benchmark waits until that server has answered
its backlog (bench/quiet.py). Each point also has the CPU it took per image (process CPU time of the
mode's whole process tree over the phase, divided by the images answered) and the resident memory of
one replica (the tree's RSS). Raw modes also run at the served batch limit. Then the capacity search:
the images/s both servers sustain at p95 <= 200 ms on this machine (2 vCPU stand in for one m1.medium),
and from it the vCPU-hours per million images. The JSON keeps every round and reports medians; each
ratio is the median of the per-round ratios. Writes bench/results/serve_latency.json.
Goals (issue 16): raw_opt >= 3 x raw_torch at the batch limit; server >= 0.9 x raw_opt at 8 clients with
CPU-ms per image <= 1.15 x raw_opt's; server >= 3 x server_torch at 8 clients; a lone image <= 12 ms p50
and <= 20 ms p95.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import Settings  # noqa: E402
from aidetect.testing import servers  # noqa: E402
from bench import raw_model  # noqa: E402
from bench.load import Load  # noqa: E402
from bench.quiet import session_cpu_seconds, session_pss_bytes, session_rss_bytes, wait_quiet  # noqa: E402
from service.workers import available_cpus, inference_layout  # noqa: E402

MODES = ("raw_torch", "raw_opt", "server_torch", "server")
SERVERS = {"server_torch": "torch", "server": "auto"}  # mode -> AIDETECT_RUNTIME
P95_BUDGET_MS = 200.0
VCPUS = 2  # this machine stands in for one m1.medium


@dataclasses.dataclass(frozen=True)
class Target:
    url: str
    sid: int  # the server's session: every process it started, for CPU, memory and wait_quiet


def http_phase(load: Load, target: Target, clients: int, seconds: float) -> dict:
    """One closed-loop load with the server tree's CPU over it, then the wait until its backlog is answered."""
    cpu0 = session_cpu_seconds(target.sid)
    out = load.run(target.url, clients, seconds)
    cpu = session_cpu_seconds(target.sid) - cpu0
    out["cpu_s"] = round(cpu, 3)
    out["cpu_ms_per_image"] = round(1000 * cpu / out["images"], 2) if out["images"] else None
    out["rss_mib"] = round(session_rss_bytes(target.sid) / 2**20, 1)
    out["pss_mib"] = round(session_pss_bytes(target.sid) / 2**20, 1)
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


def aidetect_server(settings: Settings, uri: str, log_dir: Path, runtime: str = "auto", workers: int = 0):
    """`aidetect serve` on a free loopback port, as deployed: records, outbox and metrics included."""
    port = servers.free_port()
    env = {
        "AIDETECT_WORKERS_PER_DEVICE": str(workers),
        "AIDETECT_HOME": str(settings.home),
        "AIDETECT_PORT": str(port),
        "AIDETECT_MAX_BATCH_SIZE": str(settings.max_batch_size),
        "AIDETECT_MODEL_URI": uri,
        "AIDETECT_RUNTIME": runtime,
        # Capacity is measured, not the per-client limiter (every client here is 127.0.0.1).
        "AIDETECT_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    log = log_dir / f"serve-{runtime}-{workers}.log"
    return running(servers.aidetect_cmd("serve"), "/health", port, log, env)


@dataclasses.dataclass
class Setup:
    """What every serving benchmark measures against: one model, its images, the eager model in this
    process, the optimised runtime in the server's layout, the load generator and both servers."""

    settings: Settings
    uri: str
    workers: int
    threads: int
    load: Load
    per_core: dict[str, raw_model.PerCore]  # raw mode -> its processes
    servers: dict[str, Target]
    export: dict | None


def set_up(stack: contextlib.ExitStack, tmp: Path, home: Path | None, max_batch_size: int) -> Setup:
    from model import registry

    settings = Settings(home=home or tmp, max_batch_size=max_batch_size)
    uri = ensure_model(settings)
    workers, threads = inference_layout(settings.workers_per_device, settings.torch_threads, available_cpus())
    bundle, _ = registry.load_detector(uri)
    if bundle.onnx is None:
        raise SystemExit(f"{uri} has no ONNX export: run `aidetect models export` for it first")
    images = sample_images(settings, 24)
    load = Load(images)
    stack.callback(load.close)
    per_core = {}
    for mode, runtime in (("raw_torch", "torch"), ("raw_opt", "onnx")):
        per_core[mode] = raw_model.PerCore(settings.home, uri, workers, threads, images, runtime=runtime)
        stack.callback(per_core[mode].close)
    targets = {m: stack.enter_context(aidetect_server(settings, uri, tmp, rt)) for m, rt in SERVERS.items()}
    for t in targets.values():
        load.warm_up(t.url)
    return Setup(settings, uri, workers, threads, load, per_core, targets, bundle.export_info)


def measure_level(b: Setup, mode: str, clients: int, max_batch: int, seconds: float) -> dict:
    if mode in b.per_core:
        return b.per_core[mode].measure(clients, max_batch, seconds)
    return http_phase(b.load, b.servers[mode], clients, seconds)


def median_of(rounds: list[dict]) -> dict:
    """One summary from several rounds: medians of the rates, latencies, CPU and memory, every round's rate kept."""
    out = dict(rounds[0])
    for k in ("images_per_s", "p50_ms", "p95_ms", "cpu_ms_per_image", "rss_mib", "pss_mib"):
        vals = [r[k] for r in rounds if r.get(k) is not None]
        out[k] = round(statistics.median(vals), 2) if vals else None
    out["images"] = sum(r["images"] for r in rounds)
    out["errors"] = sum(r["errors"] for r in rounds)
    out["seconds"] = round(sum(r["seconds"] for r in rounds), 3)
    out["images_per_s_by_round"] = [r["images_per_s"] for r in rounds]
    return out


def paired_ratio(a: list[dict], b: list[dict], key: str = "images_per_s") -> dict:
    """Median and range of a/b (images/s unless `key` says) over rounds, pairing each round with itself."""
    rs = [x[key] / y[key] for x, y in zip(a, b, strict=True) if y.get(key) and x.get(key) is not None]
    if not rs:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(rs), 3), "min": round(min(rs), 3), "max": round(max(rs), 3)}


def capacity(load: Load, target: Target, levels: list[int], seconds: float) -> dict:
    """The most images/s the server sustains with p95 <= 200 ms, over closed-loop client counts.

    Client counts rise until p95 passes the budget twice in a row (one noisy point on a shared VM
    does not end the search); the best point within budget is the capacity."""
    points, over = [], 0
    for c in levels:
        pt = {"clients": c, **http_phase(load, target, c, seconds)}
        points.append(pt)
        within = pt["errors"] == 0 and pt["p95_ms"] is not None and pt["p95_ms"] <= P95_BUDGET_MS
        over = 0 if within else over + 1
        if over >= 2:
            break
    ok = [p for p in points if p["errors"] == 0 and p["p95_ms"] is not None and p["p95_ms"] <= P95_BUDGET_MS]
    best = max(ok, key=lambda p: p["images_per_s"]) if ok else None
    ips = best["images_per_s"] if best else None
    return {
        "p95_budget_ms": P95_BUDGET_MS,
        "vcpus": VCPUS,
        "images_per_s": ips,
        "at": best,
        # a replica reserves the whole machine's vCPUs while it serves at this rate
        "vcpu_hours_per_million_images": round(VCPUS * 1e6 / ips / 3600, 2) if ips else None,
        "points": points,
    }


def pod_replica(b: Setup, tmp: Path, workers: int, seconds: float) -> dict:
    """The replica the cluster runs: its CPU limit of 1 core gives it one worker (service/workers.py), so its
    memory (gitops requests) and its rate at p95 <= 200 ms (KEDA's target) are measured in that layout."""
    with aidetect_server(b.settings, b.uri, tmp, "auto", workers) as target:
        b.load.warm_up(target.url)
        idle = {"rss_mib": round(session_rss_bytes(target.sid) / 2**20, 1),
                "pss_mib": round(session_pss_bytes(target.sid) / 2**20, 1)}  # fmt: skip
        cap = capacity(b.load, target, [1, 2, 3, 4, 6, 8, 12, 16], seconds)
    peak = {k: max(p[k] for p in cap["points"]) for k in ("rss_mib", "pss_mib")}
    return {"workers": workers, "idle": idle, "peak_under_load": peak, "capacity": cap}


def machine(torch) -> dict:
    import onnxruntime

    return {
        "cpus": os.cpu_count(),
        "available_cpus": available_cpus(),
        "shared": "yes: other work ran on the same 2 cores during the run (load averages below)",
        "load_avg_at_start": LOAD_AT_START,
        "load_avg_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
    }


LOAD_AT_START = os.getloadavg()


def run_header(benchmark: str, b: Setup, max_batch: int, args) -> dict:
    """What every serving benchmark's JSON starts with: the model, the layout, the load and the machine."""
    import torch

    return {
        "benchmark": benchmark,
        "model": b.uri,
        "export": b.export,
        "max_batch_size": max_batch,
        "server_layout": {"workers": b.workers, "threads_each": b.threads},
        "load_generator": b.load.tool,
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "machine": machine(torch),
    }


def cpu_hours(ms: float | None) -> float | None:
    """vCPU-hours per million images at `ms` CPU-milliseconds each: the cost with no idle headroom."""
    return None if ms is None else round(ms * 1e6 / 1000 / 3600, 2)


def summarise(by_round: dict, at_limit: dict, caps: dict, levels: list[str], max_batch: int) -> dict:
    results = {m: {c: median_of(by_round[m][c]) for c in levels} for m in MODES}
    ratios = {
        c: {
            "server_vs_raw_opt": paired_ratio(by_round["server"][c], by_round["raw_opt"][c]),
            "server_cpu_ms_vs_raw_opt": paired_ratio(
                by_round["server"][c], by_round["raw_opt"][c], key="cpu_ms_per_image"
            ),
            "server_vs_server_torch": paired_ratio(by_round["server"][c], by_round["server_torch"][c]),
            "raw_opt_vs_raw_torch": paired_ratio(by_round["raw_opt"][c], by_round["raw_torch"][c]),
        }
        for c in levels
    }
    limit = {m: median_of(at_limit[m]) for m in at_limit}
    ratios["batch_limit"] = {"raw_opt_vs_raw_torch": paired_ratio(at_limit["raw_opt"], at_limit["raw_torch"])}
    at8 = ratios.get("8")

    def med(key: str):
        return None if at8 is None else at8[key]["median"]

    lone = results["server"].get("1")
    at_lim = ratios["batch_limit"]["raw_opt_vs_raw_torch"]["median"]
    goals = {
        "raw_opt_ge_3x_raw_torch_at_batch_limit": None if at_lim is None else at_lim >= 3.0,
        "server_ge_0.9_raw_opt_at_8": None if med("server_vs_raw_opt") is None else med("server_vs_raw_opt") >= 0.9,
        "server_cpu_ms_le_1.15_raw_opt_at_8": None
        if med("server_cpu_ms_vs_raw_opt") is None
        else med("server_cpu_ms_vs_raw_opt") <= 1.15,
        "server_ge_3x_server_torch_at_8": None
        if med("server_vs_server_torch") is None
        else med("server_vs_server_torch") >= 3.0,
        "lone_image_le_12ms_p50_20ms_p95": None if lone is None else lone["p50_ms"] <= 12 and lone["p95_ms"] <= 20,
    }
    cost = {
        m: {
            "at_p95_200ms": caps[m]["vcpu_hours_per_million_images"],
            "cpu_only_at_8": cpu_hours(results[m]["8"]["cpu_ms_per_image"]) if "8" in results[m] else None,
        }
        for m in caps
    }
    return {
        **results,
        "batch_limit": {"batch": max_batch, **limit},
        "capacity": caps,
        "vcpu_hours_per_million_images": cost,
        "ratios": ratios,
        "goals": goals,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="aidetect home with a production model (default: a temp store)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    ap.add_argument("--seconds", type=float, default=4.0, help="measuring time per mode, level and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every mode and level (medians reported)")
    ap.add_argument("--max-batch-size", type=int, default=Settings().max_batch_size, help="server batch limit")
    ap.add_argument(
        "--capacity-clients",
        type=int,
        nargs="*",
        default=[2, 4, 6, 8, 12, 16, 24, 32],
        help="client counts the p95 <= 200 ms search tries, rising (none: skip the search)",
    )
    ap.add_argument(
        "--pod-workers",
        type=int,
        default=1,
        help="also measure a server with this many workers, as the cluster's pod runs it (0: skip)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_latency.json")
    args = ap.parse_args()

    import torch

    torch.set_grad_enabled(False)
    mb = args.max_batch_size
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        b = set_up(stack, Path(tmp), args.home, mb)
        by_round: dict = {m: {str(c): [] for c in args.clients} for m in MODES}
        at_limit: dict = {"raw_torch": [], "raw_opt": []}
        for r in range(args.rounds):
            # at the served batch limit: every worker's forward takes a full batch
            for m in at_limit:
                at_limit[m].append(b.per_core[m].measure(mb * b.workers, mb, args.seconds))
            for c in args.clients:
                got = {m: measure_level(b, m, c, mb, args.seconds) for m in MODES}
                for m, v in got.items():
                    by_round[m][str(c)].append(v)
                rates = {m: v["images_per_s"] for m, v in got.items()}
                print(f"round {r + 1}/{args.rounds} clients {c}: {rates}", file=sys.stderr, flush=True)
        caps = {}
        if args.capacity_clients:
            for m in ("server", "server_torch"):
                caps[m] = capacity(b.load, b.servers[m], args.capacity_clients, args.seconds)
                print(f"capacity {m}: {caps[m]['images_per_s']} images/s at p95 <= 200 ms", file=sys.stderr)
        else:
            caps = {m: {"skipped": "--capacity-clients empty", "vcpu_hours_per_million_images": None} for m in SERVERS}
        pod = pod_replica(b, Path(tmp), args.pod_workers, args.seconds) if args.pod_workers else None

    result = {
        **run_header("serve_latency", b, mb, args),
        **summarise(by_round, at_limit, caps, [str(c) for c in args.clients], mb),
        "pod_replica": pod,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
