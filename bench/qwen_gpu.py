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
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The jobs live in siblings (bench/qwen_gpu_*.py); this file stays the entry point and the serve child.
from bench.qwen_gpu_base import make_base, real_base, skip_reason, write_bundles  # noqa: E402
from bench.qwen_gpu_env import bench_config, environment, slug  # noqa: E402
from bench.qwen_gpu_score import bench_score  # noqa: E402
from bench.qwen_gpu_serve import STUB_ENV, serve_child, stub_registry_without_mlflow  # noqa: E402
from bench.qwen_gpu_train import bench_train  # noqa: E402

REFERENCE = {
    "card": "H100, random weights (from the issue)",
    "raw_bf16_images_per_s": {"1": 15.7, "8": 55.0, "32": 66.0},
    "raw_bf16_peak_gib_batch32": 17.5,
    "qlora_r16_batch8": {"s_per_step": 1.1, "peak_gib": 12.1},
}
GOALS = {"qlora_peak_gib_batch8_max": 12.0, "server_vs_raw_min": 0.9}


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
    stub_registry_without_mlflow()

if __name__ == "__main__":
    main()
