"""qwen_gpu bench, phase train: QLoRA/LoRA steps of build_model(cfg) timed at each batch size."""

from __future__ import annotations

import json
import time
from functools import partial

from bench.qwen_gpu_base import mode_config, skip_reason
from bench.qwen_gpu_env import allocated_gib, is_oom, memory, reset_memory, synthetic_images, timed

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
