"""qwen_gpu bench: the random (or local) base model, its fresh adapter, and one bundle per scoring mode."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench.qwen_gpu_env import architecture, hf_config, reset_memory, slug, sync

NEEDS_CUDA = "bitsandbytes NF4 needs CUDA"


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
