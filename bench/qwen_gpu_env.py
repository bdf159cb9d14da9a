"""qwen_gpu bench: model shapes, the recipe at the bench's shapes, the environment each result names,
and the timing/memory helpers every phase shares."""

from __future__ import annotations

import gc
import io
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RECIPE = ROOT / "configs" / "qwen2vl_qlora.yaml"
GIB = 1024**3
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


def package_version(name: str) -> str | None:
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
        "versions": {p: package_version(p) for p in PACKAGES},
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
