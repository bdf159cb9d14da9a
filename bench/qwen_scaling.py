"""1-vs-N-GPU scaling of Qwen2-VL LoRA training under torchrun (DDP), measured, never estimated.

    python bench/qwen_scaling.py                               # 7B shapes, random weights, 1..N GPUs
    python bench/qwen_scaling.py --world-sizes 1,2,4,8 --per-rank-batch 4 --steps 10
    python bench/qwen_scaling.py --size tiny --device cpu      # the same code on CPU ranks (gloo)

For each world size k it launches `torchrun --standalone --nproc-per-node k` on this file in worker
mode. Each rank builds the model with model.qwen.modeling.build_model (LoRA over a bf16 base with
gradient checkpointing; --qlora loads the base in 4-bit NF4 from a random checkpoint saved once),
wraps it in DDP and times forward + backward + AdamW steps of the trainer's loss on a fixed
per-rank batch (weak scaling: the global batch grows with k). Throughput = k * batch / step time;
efficiency(k) = throughput(k) / (k * throughput(1)).

With one GPU only the 1-GPU run is measured and the JSON says so (`multi_gpu_measured: false`);
nothing is extrapolated. Writes bench/results/qwen_scaling_<device>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GIB = 1024**3


# --------------------------------------------------------------------------- worker (one rank)


def worker(args) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from model.qwen.modeling import answer_ids, build_model, encode_batch, instruction_loss, load_tokenizer
    from model.qwen.train import device_for, init_distributed

    d = init_distributed()
    device = device_for(d)
    cfg = bench_config(args)
    if cfg.torch_threads > 0 and device.type == "cpu":
        torch.set_num_threads(cfg.torch_threads)
    tok = load_tokenizer(cfg)
    ids = answer_ids(tok, cfg)
    base_path = args.base_dir if args.qlora else None
    model = build_model(cfg, base_path=base_path)
    if not cfg.load_in_4bit:
        model = model.to(device)
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[d.local_rank] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    rng = np.random.default_rng(d.rank)
    images = [
        Image.fromarray(rng.integers(0, 255, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8))
        for _ in range(args.per_rank_batch)
    ]
    batch = encode_batch(images, [cfg.question] * len(images), tok, cfg).to(device)
    y = torch.tensor([i % 2 for i in range(len(images))], device=device)

    def step() -> None:
        loss = instruction_loss(model, batch, y, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if d.world > 1:
            torch.distributed.barrier()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    # the slowest rank sets the pace: report the max step time and peak memory over ranks
    stats = torch.tensor([statistics.median(times), peak or 0.0], dtype=torch.float64, device=device)
    if d.world > 1:
        torch.distributed.all_reduce(stats, op=torch.distributed.ReduceOp.MAX)
    if d.main:
        step_s = float(stats[0])
        row = {
            "world_size": d.world,
            "per_rank_batch": args.per_rank_batch,
            "global_batch": d.world * args.per_rank_batch,
            "step_s_median": round(step_s, 4),
            "step_s_all_rank0": [round(t, 4) for t in times],
            "images_per_s": round(d.world * args.per_rank_batch / step_s, 3),
            "peak_allocated_gib_max_rank": round(float(stats[1]), 2) if peak is not None else None,
        }
        Path(args.row_out).write_text(json.dumps(row))
    if d.world > 1:
        torch.distributed.destroy_process_group()


def bench_config(args):
    from model.qwen.config import load_config

    if args.size == "tiny":
        return load_config(ROOT / "configs" / "qwen2vl_tiny.yaml", {"lora_dropout": 0.0})
    overrides = {"base_model": "random-7b", "load_in_4bit": bool(args.qlora), "image_size": args.image_size}
    return load_config(ROOT / "configs" / "qwen2vl_qlora.yaml", overrides)


# --------------------------------------------------------------------------- parent


def device_info(device: str) -> dict:
    import torch

    if device == "cuda":
        n = torch.cuda.device_count()
        names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
        return {"device": "cuda", "gpu_count": n, "gpu_names": names, "name": " + ".join(names)}
    return {"device": "cpu", "gpu_count": 0, "cpu_count": os.cpu_count(), "name": platform.processor() or "cpu"}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "device"


def world_sizes(requested: list[int] | None, available: int) -> list[int]:
    if requested:
        return [k for k in requested if k <= available]
    sizes, k = [], 1
    while k <= available:
        sizes.append(k)
        k *= 2
    return sizes + ([available] if available not in sizes else [])


def save_random_base(args, work: Path) -> Path:
    """QLoRA quantises on load, so random 7B weights are written once and loaded 4-bit by every rank."""
    import torch

    from model.qwen.modeling import load_base

    cfg = bench_config(args).override(load_in_4bit=False)
    path = work / "random-7b"
    model = load_base(cfg)
    model.save_pretrained(path)
    del model
    torch.cuda.empty_cache()
    return path


def run_world(k: int, args, work: Path) -> dict:
    row_out = work / f"row_{k}.json"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun) if torchrun.exists() else "torchrun",
        "--standalone",
        f"--nproc-per-node={k}",
        str(Path(__file__).resolve()),
        "--worker",
        "--row-out",
        str(row_out),
        "--size",
        args.size,
        "--per-rank-batch",
        str(args.per_rank_batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--image-size",
        str(args.image_size),
    ]
    if args.qlora:
        cmd += ["--qlora", "--base-dir", str(args.base_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0 or not row_out.is_file():
        return {"world_size": k, "error": (proc.stderr or proc.stdout)[-2000:], "wall_s": round(time.time() - t0, 1)}
    return {**json.loads(row_out.read_text()), "wall_s": round(time.time() - t0, 1)}


def summarise(rows: list[dict]) -> dict:
    one = next((r for r in rows if r.get("world_size") == 1 and "images_per_s" in r), None)
    out = {}
    for r in rows:
        if one and "images_per_s" in r:
            k = r["world_size"]
            out[str(k)] = {
                "speedup": round(r["images_per_s"] / one["images_per_s"], 3),
                "efficiency": round(r["images_per_s"] / (k * one["images_per_s"]), 3),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("7b", "tiny"), default="7b", help="7b: Qwen2-VL-7B shapes; tiny: CPU smoke")
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda if present")
    ap.add_argument("--world-sizes", default=None, help="comma list, e.g. 1,2,4 (default: 1,2,4,..,N)")
    ap.add_argument("--max-cpu-ranks", type=int, default=2, help="CPU mode: largest world size")
    ap.add_argument("--per-rank-batch", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=448, help="7b only; tiny uses its recipe")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--qlora", action="store_true", help="4-bit NF4 base (CUDA only)")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per world size")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/qwen_scaling_<device>.json)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--row-out", help=argparse.SUPPRESS)
    ap.add_argument("--base-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("qwen_scaling: error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    if args.device == "cpu" and (args.size == "7b" or args.qlora):
        print("qwen_scaling: error: 7B shapes and QLoRA need CUDA; use --size tiny on a CPU", file=sys.stderr)
        return 2
    info = device_info(args.device)
    available = info["gpu_count"] if args.device == "cuda" else args.max_cpu_ranks
    requested = [int(x) for x in args.world_sizes.split(",")] if args.world_sizes else None
    sizes = world_sizes(requested, available)
    with tempfile.TemporaryDirectory(prefix="qwen-scaling-") as tmp:
        work = Path(tmp)
        if args.qlora:
            args.base_dir = save_random_base(args, work)
        rows = [run_world(k, args, work) for k in sizes]
    multi = any(r.get("world_size", 1) > 1 and "images_per_s" in r for r in rows)
    result = {
        "benchmark": "qwen2vl_lora_ddp_scaling",
        **info,
        "size": args.size,
        "mode": "qlora_nf4" if args.qlora else "lora_bf16" if args.size == "7b" else "lora_fp32_tiny",
        "image_size": bench_config(args).image_size,
        "scaling": "weak (fixed per-rank batch)",
        "torch": torch.__version__,
        "rows": rows,
        "speedup": summarise(rows),
        "multi_gpu_measured": multi if args.device == "cuda" else None,
        "note": (
            f"only {info['gpu_count']} GPU visible: the 1-GPU run is measured, no multi-GPU number is given"
            if args.device == "cuda" and info["gpu_count"] < 2
            else "CPU ranks on gloo: checks the DDP path, not GPU scaling"
            if args.device == "cpu"
            else ""
        ),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"qwen_scaling_{slug(info['name'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if all("images_per_s" in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
