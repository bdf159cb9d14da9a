"""GPU measurements of the Qwen2-VL detector: QLoRA/LoRA training, scoring, and the LitServe server.

    python bench/qwen_gpu.py --size 7b                        # everything, Qwen2-VL-7B shapes, random weights
    python bench/qwen_gpu.py --size 7b --phases train         # one phase (each fits a 10-minute slot)
    python bench/qwen_gpu.py --size 7b --phases score,serve --merge --work-dir /tmp/qb
    python bench/qwen_gpu.py --size 7b --base /models/Qwen2-VL-7B-Instruct   # a real local checkpoint
    python bench/qwen_gpu.py --size tiny                      # 2-layer random model: proves the path on a CPU

train  forward + backward + AdamW step of build_model(cfg) on a batch already on the device:
       QLoRA (NF4 base, LoRA r16, gradient checkpointing) and plain LoRA over a bf16 base.
score  one forward pass per batch (answer-token logits) of the detector loaded from a bundle,
       raw model on encoded inputs and QwenDetector.score on PIL images (preprocessing included).
serve  service/qwen_api.py as a real process on a loopback port (max batch = the batch measured),
       2 x batch concurrent clients posting JPEGs; compared with raw scoring in the same run.

Random weights (none can be downloaded): the 7B architecture is built from the config below directly
on the GPU in bf16, saved once with save_pretrained into the work dir, and every mode then loads it
through the project's own build_model/load_bundle_model; the 4-bit modes quantise it on load with
BitsAndBytesConfig(nf4) exactly as the QLoRA recipe does with a real checkpoint.
Never estimates: without CUDA, --size 7b exits 2, and phases that need CUDA are recorded as skipped.
Writes bench/results/qwen_gpu_<device>.json (and prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "configs" / "qwen2vl_qlora.yaml"
GIB = 1024**3
NEEDS_CUDA = "bitsandbytes NF4 needs CUDA"
REFERENCE = {
    "card": "H100, random weights (from the issue)",
    "raw_bf16_images_per_s": {"1": 15.7, "8": 55.0, "32": 66.0},
    "raw_bf16_peak_gib_batch32": 17.5,
    "qlora_r16_batch8": {"s_per_step": 1.1, "peak_gib": 12.1},
}
STUB_ENV = "AIDETECT_BENCH_STUB_REGISTRY"  # set for the server child only (see _stub_registry_without_mlflow)
GOALS = {"qlora_peak_gib_batch8_max": 12.0, "server_vs_raw_min": 0.9}
# Distributions whose versions every result names (absent ones are recorded as null).
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "safetensors",
    "litserve",
    "fastapi",
    "uvicorn",
    "pydantic",
    "numpy",
    "pillow",
)


# --------------------------------------------------------------------------- model shapes


def hf_config(size: str):
    """Qwen2-VL-7B-Instruct's architecture (model/qwen/modeling.py) or the 2-layer CPU model."""
    from model.qwen.modeling import qwen2vl_7b_config, tiny_qwen2vl_config

    return qwen2vl_7b_config() if size == "7b" else tiny_qwen2vl_config()


def architecture(hf_cfg) -> dict:
    t, v = hf_cfg.text_config, hf_cfg.vision_config
    keys_t = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "rope_parameters",
    )
    keys_v = (
        "depth",
        "embed_dim",
        "hidden_size",
        "num_heads",
        "patch_size",
        "spatial_merge_size",
        "temporal_patch_size",
    )
    return {"text": {k: getattr(t, k) for k in keys_t}, "vision": {k: getattr(v, k) for k in keys_v}}


def bench_config(args, device: str):
    """The QLoRA recipe at the benchmark's shapes; the mode functions override dtype/4-bit per run."""
    from model.qwen.config import load_config

    overrides = {
        "image_size": args.image_size or (448 if args.size == "7b" else 56),
        "lora_dropout": 0.0 if args.size == "tiny" else None,
        "torch_threads": args.threads or None,
    }
    if device == "cpu":
        overrides.update(dtype="float32", gradient_checkpointing=False)  # bf16 matmuls crawl on CPUs
    return load_config(RECIPE, overrides)


# --------------------------------------------------------------------------- environment


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvidia_smi() -> dict:
    try:
        out = (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            .stdout.strip()
            .splitlines()
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [[c.strip() for c in line.split(",")] for line in out if line.strip()]
    return {"gpus": [{"name": r[0], "driver": r[1], "memory": r[2]} for r in rows if len(r) == 3]}


def environment() -> dict:
    import torch

    env: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {p: _version(p) for p in PACKAGES},
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "git_commit": _git_commit(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        smi = nvidia_smi()
        env.update(
            device=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / GIB, 2),
            compute_capability=f"{props.major}.{props.minor}",
            driver=(smi.get("gpus") or [{}])[0].get("driver"),
            nvidia_smi=smi.get("gpus"),
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env.update(device="cpu", gpu_count=0, driver=None)
    return env


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def slug(device: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"


# --------------------------------------------------------------------------- helpers


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def reset_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def memory(device: str) -> dict:
    import torch

    if device != "cuda":
        return {"peak_allocated_gib": None, "peak_reserved_gib": None, "note": "no CUDA allocator on CPU"}
    return {
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
    }


def allocated_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.memory_allocated() / GIB, 3) if device == "cuda" else None


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def synthetic_images(n: int, size: int, seed: int = 0):
    """Smooth colour fields with noise: photo-like JPEG sizes, no data set needed on the GPU machine."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        base = np.stack([np.sin(xx * rng.uniform(1, 6) + rng.uniform(0, 3)) for _ in range(3)], axis=-1)
        arr = (127 + 100 * base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        out.append(Image.fromarray(arr))
    return out


def jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def timed(fn, warmup: int, steps: int, device: str) -> float:
    """Mean seconds per call of fn over `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


# --------------------------------------------------------------------------- base model and bundles


def make_base(args, cfg, device: str, work: Path) -> tuple[Path, Path, dict]:
    """Random weights in the benchmark's architecture and a fresh adapter over them, saved once
    (safetensors) and reused from work/ by later runs."""

    out, adapter = work / f"base-{args.size}", work / f"adapter-{args.size}"
    info_path = out / "bench_info.json"
    if info_path.is_file() and adapter.is_dir():
        return out, adapter, {**json.loads(info_path.read_text()), "reused": True}
    from model.qwen.modeling import RANDOM_7B, TINY, load_base

    hf_cfg = hf_config(args.size)
    dtype = "bfloat16" if device == "cuda" else "float32"
    t0 = time.perf_counter()
    # the project's random base: built directly on the GPU in bf16, no fp32 copy of 8B weights
    model = load_base(
        cfg.override(base_model=RANDOM_7B if args.size == "7b" else TINY, dtype=dtype, tiny_seed=args.seed)
    )
    sync(device)
    created = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    model.save_pretrained(out)
    info = {
        "source": f"random weights (seed {args.seed}) built on {device} in {dtype} by modeling.load_base",
        "parameters": params,
        "architecture": architecture(hf_cfg),
        "create_seconds": round(created, 2),
        "save_seconds": round(time.perf_counter() - t0, 2),
        "bytes_on_disk": sum(f.stat().st_size for f in out.iterdir() if f.is_file()),
    }
    save_adapter(model, cfg, adapter)
    info_path.write_text(json.dumps(info, indent=1))  # last: marks base and adapter complete
    del model
    reset_memory(device)
    return out, adapter, {**info, "reused": False}


def real_base(cfg, device: str, work: Path) -> tuple[Path, dict]:
    """A local checkpoint as the base; the fresh adapter is made over it once (loaded on the device)."""
    from transformers import Qwen2VLConfig

    from model.qwen.modeling import load_base

    path = Path(cfg.base_model)
    adapter = work / f"adapter-{slug(path.name)}"
    if not adapter.is_dir():
        model = load_base(cfg).to(device)
        save_adapter(model, cfg, adapter)
        del model
        reset_memory(device)
    return adapter, {
        "source": f"local checkpoint {path}",
        "architecture": architecture(Qwen2VLConfig.from_pretrained(path)),
    }


class _SavedAdapter:
    """Stands in for the peft model in save_bundle: copies an adapter folder saved earlier."""

    def __init__(self, path: Path):
        self.path = path

    def save_pretrained(self, out) -> None:
        shutil.copytree(self.path, out, dirs_exist_ok=True)


def save_adapter(model, cfg, out: Path) -> Path:
    """A fresh LoRA adapter (the recipe's) over the in-memory base, saved like a trained one."""
    from peft import get_peft_model

    from model.qwen.modeling import lora_config

    get_peft_model(model, lora_config(cfg)).save_pretrained(out)
    return out


def write_bundles(cfg, adapter: Path, modes: list[str], work: Path) -> dict[str, Path]:
    """One bundle per scoring mode: same adapter and base; qwen_config.json differs in 4-bit/dtype."""
    from model.prompts import load_bank
    from model.qwen.bundle import save_bundle
    from model.qwen.modeling import load_tokenizer

    tok = load_tokenizer(cfg)
    bank = load_bank(None)
    return {
        mode: save_bundle(
            work / f"bundle-{mode}",
            _SavedAdapter(adapter),
            tok,
            mode_config(cfg, mode),
            None,
            bank,
            {"note": "random weights: for shapes, memory and speed only"},
        )
        for mode in modes
    }


def mode_config(cfg, mode: str):
    """Train modes: qlora_nf4 | lora_bf16; score modes: nf4 | bf16 (float32 stays float32 on CPU)."""
    quant = mode in ("qlora_nf4", "nf4")
    dtype = "bfloat16" if cfg.dtype != "float32" or quant else "float32"
    return cfg.override(load_in_4bit=quant, dtype=dtype)


def skip_reason(mode: str, device: str) -> str | None:
    return NEEDS_CUDA if mode in ("qlora_nf4", "nf4") and device != "cuda" else None


# --------------------------------------------------------------------------- phase: train


def train_step(model, opt, params, batch, y, ids, losses) -> None:
    import torch

    from model.qwen.modeling import instruction_loss

    loss = instruction_loss(model, batch, y, ids)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(loss.detach())


def train_mode(cfg, mode: str, batches: list[int], tok, ids, images, args, device: str) -> list[dict]:
    """One model (QLoRA or LoRA) built as the trainer builds it, timed at every batch size."""
    import torch

    from model.qwen.modeling import build_model, encode_batch

    mcfg = mode_config(cfg, mode)
    reset_memory(device)
    t0 = time.perf_counter()
    model = build_model(mcfg)
    if not mcfg.load_in_4bit:
        model = model.to(device)
    model.train()
    load_s = time.perf_counter() - t0
    weights_gib = allocated_gib(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=mcfg.lr)
    rows = []
    for b in batches:
        batch = encode_batch(images[:b], [mcfg.question] * b, tok, mcfg).to(device)
        losses: list = []
        step = partial(train_step, model, opt, params, batch, torch.arange(b, device=device) % 2, ids, losses)
        reset_memory(device)
        row = {
            "mode": mode,
            "batch": b,
            "dtype": mcfg.dtype,
            "load_in_4bit": mcfg.load_in_4bit,
            "gradient_checkpointing": mcfg.gradient_checkpointing,
            "lora_r": mcfg.lora_r,
            "trainable_parameters": sum(p.numel() for p in params),
            "load_seconds": round(load_s, 2),
            "weights_gib": weights_gib,
        }
        try:
            s = timed(step, args.warmup, args.steps, device)
            row.update(
                s_per_step=round(s, 4),
                images_per_s=round(b / s, 3),
                **memory(device),
                loss_finite=bool(torch.isfinite(torch.stack(losses)).all()),
            )
        except RuntimeError as e:
            if not is_oom(e):
                raise
            row.update(error="out of memory", **memory(device))
        opt.zero_grad(set_to_none=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_train(cfg, modes: list[str], batches: list[int], args, device: str) -> dict:
    from model.qwen.modeling import answer_ids, load_tokenizer

    tok = load_tokenizer(cfg)
    ids = answer_ids(tok, cfg)
    images = synthetic_images(max(batches), cfg.image_size, args.seed)
    rows, skipped = [], []
    for mode in modes:
        reason = skip_reason(mode, device)
        if reason:
            skipped.append({"mode": mode, "reason": reason})
            continue
        rows += train_mode(cfg, mode, batches, tok, ids, images, args, device)
        reset_memory(device)  # the mode's model is gone with its frame
    return {
        "rows": rows,
        "skipped": skipped,
        "measures": "forward + backward + clip + AdamW step; batch encoded and on the device beforehand",
    }


# --------------------------------------------------------------------------- phase: score (raw)


def bench_raw(bundle: Path, mode: str, batches: list[int], args, device: str) -> list[dict]:
    import torch

    from model.qwen.detector import QwenDetector
    from model.qwen.modeling import answer_logits, encode_batch

    reset_memory(device)
    t0 = time.perf_counter()
    det = QwenDetector.from_bundle(bundle, device)
    load_s = time.perf_counter() - t0
    weights_gib = allocated_gib(device)
    images = synthetic_images(max(batches), det.cfg.image_size, args.seed + 1)
    rows = []
    for b in batches:
        batch = encode_batch(images[:b], [det.cfg.question] * b, det.tok, det.cfg).to(device)
        row = {
            "mode": mode,
            "batch": b,
            "dtype": det.cfg.dtype,
            "load_in_4bit": det.cfg.load_in_4bit,
            "load_seconds": round(load_s, 2),
            "weights_gib": weights_gib,
        }
        reset_memory(device)
        try:
            with torch.inference_mode():
                s = timed(
                    lambda batch=batch: answer_logits(det.model, batch, det.ids), args.warmup, args.score_steps, device
                )
                row.update(s_per_batch=round(s, 5), images_per_s=round(b / s, 3), **memory(device))
                s = timed(lambda b=b: det.score(images[:b]), 1, max(1, args.score_steps // 2), device)
                row["detector_images_per_s"] = round(b / s, 3)  # + resize, patches, tokenizing, transfer
        except RuntimeError as e:
            if not is_oom(e):
                raise
            row.update(error="out of memory", **memory(device))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


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


def _stub_registry_without_mlflow() -> None:
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
        str(Path(__file__).resolve()),
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


def bench_score(
    cfg, bundles: dict[str, Path], modes: list[str], args, device: str, work: Path, serve: bool, score: bool
) -> tuple[dict | None, dict | None]:
    raw_rows, serve_rows, skipped = [], [], []
    batches = sorted(set(args.score_batches) | (set(args.serve_batches) if serve else set()))
    for mode in modes:
        reason = skip_reason(mode, device)
        if reason:
            skipped.append({"mode": mode, "reason": reason})
            continue
        raw = bench_raw(bundles[mode], mode, batches, args, device)
        reset_memory(device)  # the detector is gone with bench_raw's frame: the server gets the GPU
        raw_rows += [r for r in raw if score or r["batch"] in args.serve_batches]
        if not serve:
            continue
        by_batch = {r["batch"]: r for r in raw}
        for b in args.serve_batches:
            row = bench_server(bundles[mode], mode, b, args, work, cfg.image_size)
            raw_ips = by_batch[b].get("images_per_s")
            row["raw_images_per_s"] = raw_ips
            row["server_vs_raw"] = round(row["images_per_s"] / raw_ips, 4) if raw_ips else None
            serve_rows.append(row)
            print(json.dumps(row), flush=True)
    score_res = {
        "rows": raw_rows,
        "skipped": skipped,
        "measures": "images_per_s: one forward (answer-token logits) on an encoded batch on the device; "
        "detector_images_per_s: QwenDetector.score on PIL images",
    }
    serve_res = {
        "rows": serve_rows,
        "skipped": skipped,
        "measures": "service/qwen_api.py as a process, JSON base64 JPEGs over loopback, "
        f"{args.clients_per_batch} x batch concurrent clients, max_batch_size = batch; "
        "server_vs_raw against images_per_s of the raw model measured just before",
        "registry": "stubbed (mlflow not installed)" if _version("mlflow") is None else "mlflow",
    }
    return (score_res if score else None), (serve_res if serve else None)


# --------------------------------------------------------------------------- phase: 1 vs N GPUs


def bench_scaling(env: dict, out_dir: Path) -> dict:
    """The GPU count, and the 1-vs-N result of bench/qwen_scaling.py when its JSON for this card is there."""
    n = env.get("gpu_count") or 0
    name = slug(env["device"])
    found = next(
        (f for f in (out_dir / f"qwen_scaling_{name[:40]}.json", out_dir / f"qwen_scaling_{name}.json") if f.is_file()),
        out_dir / "none",
    )  # qwen_scaling.py cuts its slug at 40 characters
    res: dict = {"gpu_count": n, "script": "bench/qwen_scaling.py", "measured": False}
    if n < 2:
        res["reason"] = f"only {n} GPU visible: a 1-vs-N comparison needs at least 2; nothing estimated"
    else:
        res["reason"] = f"{n} GPUs: run bench/qwen_scaling.py (torchrun on 1..{n} GPUs) before this phase"
    if found.is_file():
        s = json.loads(found.read_text())
        res.update(
            file=found.name,
            measured=bool(s.get("multi_gpu_measured")),
            world_sizes=[r.get("world_size") for r in s.get("rows", [])],
            speedup=s.get("speedup"),
            note=s.get("note"),
        )
        if res["measured"]:
            res.pop("reason")
    return res


# --------------------------------------------------------------------------- goals and output


def goals(results: dict) -> dict:
    train = (results.get("train") or {}).get("rows", [])
    q8 = [r for r in train if r["mode"] == "qlora_nf4" and r["batch"] == 8 and r.get("peak_allocated_gib")]
    serve = (results.get("serve") or {}).get("rows", [])
    ratios = [r["server_vs_raw"] for r in serve if r.get("server_vs_raw") is not None]
    return {
        "qlora_batch8_peak_le_12gib": (q8[0]["peak_allocated_gib"] <= GOALS["qlora_peak_gib_batch8_max"])
        if q8
        else None,
        "server_ge_90pct_of_raw": (min(ratios) >= GOALS["server_vs_raw_min"]) if ratios else None,
        "worst_server_vs_raw": min(ratios) if ratios else None,
    }


def parse_ints(s: str) -> list[int]:
    vals = [int(x) for x in s.split(",") if x.strip()]
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {s!r}")
    return vals


def parse_list(choices: tuple[str, ...]):
    def parse(s: str) -> list[str]:
        vals = [x.strip() for x in s.split(",") if x.strip()]
        bad = [v for v in vals if v not in choices]
        if bad or not vals:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}; got {s!r}")
        return vals

    return parse


def arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("7b", "tiny"), default="7b", help="7b: Qwen2-VL-7B shapes (CUDA); tiny: CPU")
    ap.add_argument("--base", type=Path, help="a local Qwen2-VL checkpoint instead of random weights")
    ap.add_argument(
        "--phases",
        type=parse_list(("train", "score", "serve", "scaling")),
        default=["train", "score", "serve", "scaling"],
        help="comma list: train,score,serve,scaling",
    )
    ap.add_argument("--train-modes", type=parse_list(("qlora_nf4", "lora_bf16")), default=["qlora_nf4", "lora_bf16"])
    ap.add_argument("--score-modes", type=parse_list(("bf16", "nf4")), default=["bf16", "nf4"])
    ap.add_argument("--train-batches", type=parse_ints, default=[1, 4, 8])
    ap.add_argument("--score-batches", type=parse_ints, default=[1, 8, 32])
    ap.add_argument("--serve-batches", type=parse_ints, help="default: the score batches")
    ap.add_argument("--image-size", type=int, help="px, multiple of 28 (default 448 for 7b, 56 for tiny)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed run")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per configuration")
    ap.add_argument("--score-steps", type=int, default=20, help="timed scoring batches per configuration")
    ap.add_argument("--serve-seconds", type=float, default=10.0, help="measuring time per server run")
    ap.add_argument("--clients-per-batch", type=int, default=2, help="concurrent clients = this x batch")
    ap.add_argument("--batch-timeout", type=float, default=0.01, help="server: seconds to wait to fill a batch")
    ap.add_argument("--server-start-timeout", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=0, help="CPU torch threads (0 = default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, help="keep the random base and bundles here (reused by later runs)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--merge", action="store_true", help="keep other phases' results already in the output file")
    return ap


def fail(msg: str) -> None:
    print(f"qwen_gpu: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-child"]:
        return serve_child(argv[1:])
    args = arg_parser().parse_args(argv)
    args.serve_batches = args.serve_batches or args.score_batches
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.size == "7b" and device != "cuda":
        fail("--size 7b needs a CUDA GPU; none found (use --size tiny to check the code path on a CPU)")
    if args.base is not None and not (args.base / "config.json").is_file():
        fail(f"--base {args.base} is not a checkpoint folder (no config.json)")
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    cfg = bench_config(args, device)

    work_ctx = tempfile.TemporaryDirectory(prefix="qwen_gpu_") if args.work_dir is None else None
    work = Path(work_ctx.name) if work_ctx else args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"qwen_gpu_{slug(env['device'])}.json"
    doc = json.loads(out.read_text()) if args.merge and out.is_file() else {}
    doc = {"benchmark": "qwen_gpu", "runs": [], "results": {}, **doc}
    run = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "phases": args.phases}
    doc["runs"].append(run)
    t_start = time.perf_counter()

    def flush(phase: str | None = None, res: dict | None = None) -> None:
        """Write the file after every measured mode, so a run cut short still leaves its numbers."""
        if phase is not None and res is not None:
            doc["results"][phase] = merge_phase(doc["results"].get(phase), res)
        run["seconds"] = round(time.perf_counter() - t_start, 1)
        doc.update(device=env["device"], environment=env, settings=run["settings"], reference=REFERENCE)
        doc["goals"] = goals(doc["results"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))

    try:
        from model.qwen.modeling import packaged_tokenizer_dir

        adapter, base_info = None, {"source": "none: only the scaling phase ran"}
        if args.base is not None and set(args.phases) - {"scaling"}:
            cfg = cfg.override(base_model=str(args.base.resolve()))
            adapter, base_info = real_base(cfg, device, work)
        elif set(args.phases) - {"scaling"}:
            base_dir, adapter, base_info = make_base(args, cfg, device, work)
            cfg = cfg.override(base_model=str(base_dir.resolve()), tokenizer=str(packaged_tokenizer_dir()))
        print(json.dumps({"base": base_info}), flush=True)
        run["settings"] = run_settings(args, device, cfg, base_info)
        flush()
        if "train" in args.phases:
            for mode in args.train_modes:
                flush("train", bench_train(cfg, [mode], args.train_batches, args, device))
        if "score" in args.phases or "serve" in args.phases:
            bundles = write_bundles(cfg, adapter, [m for m in args.score_modes if not skip_reason(m, device)], work)
            for mode in args.score_modes:
                serve = "serve" in args.phases
                score_res, serve_res = bench_score(
                    cfg, bundles, [mode], args, device, work, serve=serve, score="score" in args.phases
                )
                flush("score", score_res)
                flush("serve", serve_res)
        if "scaling" in args.phases:
            flush("scaling", bench_scaling(env, args.out_dir))
    finally:
        if work_ctx:
            work_ctx.cleanup()
    print(json.dumps({"wrote": str(out), "seconds": run["seconds"], "goals": doc["goals"]}), flush=True)


def run_settings(args, device: str, cfg, base_info: dict) -> dict:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(
        device=device,
        qwen_config=cfg.to_dict(),
        base=base_info,
        quantization="4-bit modes: the saved base reloaded by build_model through "
        "from_pretrained(quantization_config=BitsAndBytesConfig(nf4, double quant, bf16 compute))",
    )
    return settings


def merge_phase(old: dict | None, new: dict) -> dict:
    """New rows replace old ones of the same (mode, batch); a skip is dropped once its mode has rows."""
    if not old or "rows" not in old or "rows" not in new:
        return new

    def key(r: dict) -> tuple:
        return r.get("mode"), r.get("batch")

    fresh = {key(r) for r in new["rows"]}
    rows = [r for r in old["rows"] if key(r) not in fresh] + new["rows"]
    measured = {r.get("mode") for r in rows}
    skipped = {s["mode"]: s for s in old.get("skipped", []) + new.get("skipped", []) if s["mode"] not in measured}
    return {**old, **new, "rows": rows, "skipped": list(skipped.values())}


if os.environ.get(STUB_ENV) == "1":
    _stub_registry_without_mlflow()

if __name__ == "__main__":
    main()
