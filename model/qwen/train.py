"""Instruction-tune Qwen2-VL with LoRA to answer "real" or "ai"; one process or many (torchrun).

    aidetect qwen train --config configs/qwen2vl_tiny.yaml --max-steps 300
    torchrun --nproc-per-node 2 -m model.qwen.train --config configs/qwen2vl_qlora.yaml --out runs/q

Every step takes one global batch (cfg.batch_size images, grad_accum times); under torchrun each
rank takes its slice and DDP averages the gradients, so N ranks follow the same trajectory as one
rank with the same global batch. Rank 0 evaluates, calibrates and writes the bundle (bundle.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.calibration import apply_calibrator, fit_calibrator

from .config import QwenConfig, load_config

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun group if there is one: NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def device_for(d: Dist) -> torch.device:
    return torch.device(f"cuda:{d.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def score_margins(model, cache, tok, cfg: QwenConfig, ids: list[int], device, batch_size: int = 16) -> np.ndarray:
    """Answer-token margins (l_ai - l_real) of every cached image with the scoring question."""
    from .modeling import answer_logits, answer_margin, encode_batch

    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(cache), batch_size):
        idx = range(start, min(start + batch_size, len(cache)))
        batch = encode_batch([cache.image(i) for i in idx], [cfg.question] * len(idx), tok, cfg).to(device)
        out.append(answer_margin(answer_logits(model, batch, ids)).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.empty(0)


def calibrate(margins: np.ndarray, targets: np.ndarray) -> dict | None:
    """Platt scaling of the answer margin; None (plain sigmoid) when the split lacks a class."""
    if len(np.unique(targets)) < 2:
        return None
    return fit_calibrator(margins, targets, method="platt")


def auroc(scores: np.ndarray, targets: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(targets, scores)) if len(np.unique(targets)) == 2 else float("nan")


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    cfg: QwenConfig
    losses: list[float] = field(default_factory=list)  # one per optimizer step (rank-0 view, global mean)
    metrics: dict = field(default_factory=dict)
    calibrator: dict | None = None  # model.calibration dict; None = sigmoid of the margin
    bundle: Path | None = None
    seconds: float = 0.0
    state: dict = field(default_factory=dict, repr=False)  # trained tensors of this rank (adapter_state)


def lr_at(step: int, cfg: QwenConfig) -> float:
    """Linear warm-up, then constant or cosine decay to 10% at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train(
    cfg: QwenConfig,
    out_dir: str | Path | None = None,
    dist_info: Dist | None = None,
    train_samples=None,
    val_samples=None,
) -> TrainResult:
    """Train adapters; on rank 0 evaluate on the val split, calibrate and (with out_dir) save a bundle."""
    from model.prompts import load_bank

    from .bundle import save_bundle
    from .data import ImageCache, augment, global_batches, load_split, question_for
    from .modeling import answer_ids, build_model, encode_batch, instruction_loss, load_tokenizer

    d = dist_info or init_distributed()
    if cfg.batch_size % d.world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the {d.world} ranks")
    local_bs = cfg.batch_size // d.world
    device = device_for(d)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)  # tiny ops: thread hand-offs cost more than they save
    torch.manual_seed(cfg.seed)  # same adapter init on every rank; DDP also broadcasts rank 0's

    bank = load_bank(cfg.prompt_bank)
    tok = load_tokenizer(cfg)
    ids = answer_ids(tok, cfg)
    train_cache = ImageCache(
        train_samples if train_samples is not None else load_split(cfg, cfg.train_split, cfg.max_train_samples),
        cfg,
    )
    val_cache = None
    if d.main:
        val_cache = ImageCache(
            val_samples if val_samples is not None else load_split(cfg, cfg.val_split, cfg.max_val_samples),
            cfg,
        )
    model = build_model(cfg)
    if not cfg.load_in_4bit:  # a 4-bit base is placed on its GPU when loaded and refuses .to()
        model = model.to(device)
    model.train()
    core = model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[d.local_rank] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    targets = torch.from_numpy(train_cache.targets)

    result = TrainResult(cfg)
    stream = global_batches(len(train_cache), cfg.batch_size, cfg.seed)
    t0 = time.time()
    for step in range(cfg.max_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        step_loss = 0.0
        for micro in range(cfg.grad_accum):
            gidx = next(stream)
            pos0 = (step * cfg.grad_accum + micro) * cfg.batch_size
            mine = range(d.rank * local_bs, (d.rank + 1) * local_bs)
            imgs = [augment(train_cache.image(int(gidx[j])), cfg.seed, pos0 + j, cfg.hflip) for j in mine]
            qs = [question_for(bank, cfg.seed, pos0 + j, cfg.vary_prompts, cfg.question) for j in mine]
            batch = encode_batch(imgs, qs, tok, cfg).to(device)
            y = targets[gidx[list(mine)]].to(device)
            last = micro == cfg.grad_accum - 1
            # DDP all-reduces on every backward; accumulate locally and reduce once per step
            with contextlib.nullcontext() if last or d.world == 1 else model.no_sync():
                loss = instruction_loss(model, batch, y, ids) / cfg.grad_accum
                loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        result.losses.append(_global_mean(step_loss, d, device))
        if d.main and cfg.log_every and (step + 1) % cfg.log_every == 0:
            recent = result.losses[-cfg.log_every :]
            log.info(
                "step %d/%d loss %.4f (%.1f s)",
                step + 1,
                cfg.max_steps,
                sum(recent) / len(recent),
                time.time() - t0,
            )
        if d.main and cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.max_steps:
            m = score_margins(core, val_cache, tok, cfg, ids, device)
            log.info("step %d val AUROC %.4f", step + 1, auroc(m, val_cache.targets))
    result.seconds = time.time() - t0
    result.state = adapter_state(model)

    if d.main:
        margins = score_margins(core, val_cache, tok, cfg, ids, device)
        y_val = val_cache.targets
        cal = calibrate(margins, y_val)
        probs = apply_calibrator(cal, margins)
        result.calibrator = cal
        result.metrics = {
            "val_auroc": auroc(margins, y_val),
            "val_accuracy": float(((probs >= cfg.threshold) == y_val).mean()) if len(y_val) else float("nan"),
            "val_n": int(len(y_val)),
            "train_n": int(len(train_cache)),
            "final_loss": float(np.mean(result.losses[-10:])),
            "first_loss": float(result.losses[0]),
            "train_seconds": result.seconds,
            "world_size": d.world,
        }
        log.info(
            "val AUROC %.4f accuracy %.4f (n=%d)",
            result.metrics["val_auroc"],
            result.metrics["val_accuracy"],
            len(y_val),
        )
        if out_dir is not None:
            result.bundle = save_bundle(out_dir, core, tok, cfg, cal, bank, result.metrics)
    barrier(d)
    return result


def _global_mean(x: float, d: Dist, device) -> float:
    if d.world == 1:
        return x
    import torch.distributed as dist

    t = torch.tensor([x], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / d.world)


def adapter_state(model) -> dict[str, torch.Tensor]:
    """Trainable tensors by name (adapters and modules_to_save): what ranks must agree on."""
    core = model.module if hasattr(model, "module") else model
    return {n: p.detach().cpu().clone() for n, p in core.named_parameters() if p.requires_grad}


# --------------------------------------------------------------------------- entry point (torchrun)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the Qwen2-VL detector (use under torchrun for DDP).")
    ap.add_argument("--config", help="YAML recipe overriding QwenConfig")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override one field, value as JSON (e.g. --set max_steps=5)",
    )
    ap.add_argument("--out", help="bundle directory (rank 0 writes it)")
    ap.add_argument("--state-out", help="save the trained adapter tensors here (rank 0; for sync tests)")
    ap.add_argument("--metrics-out", help="write losses and metrics as JSON here (rank 0)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    cfg = load_config(args.config, overrides)
    d = init_distributed()
    res = train(cfg, args.out, d)
    if args.state_out:
        # every rank writes its tensors: equal tensors across ranks is the DDP invariant tests check
        torch.save(res.state, args.state_out if d.world == 1 else f"{args.state_out}.rank{d.rank}")
    if d.main and args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps({"losses": res.losses, **res.metrics}, indent=1))
    if d.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
