"""qwen_gpu bench, phase score: the detector loaded from a bundle, raw and through QwenDetector.score,
and the server runs compared with it in the same process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.qwen_gpu_base import skip_reason
from bench.qwen_gpu_env import allocated_gib, is_oom, memory, package_version, reset_memory, synthetic_images, timed
from bench.qwen_gpu_serve import bench_server

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
        "registry": "stubbed (mlflow not installed)" if package_version("mlflow") is None else "mlflow",
    }
    return (score_res if score else None), (serve_res if serve else None)
