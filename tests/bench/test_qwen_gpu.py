"""bench/qwen_gpu.py end to end on a CPU at tiny scale: every phase runs, every field is written,
what needs CUDA is skipped with its reason, and the 7B size refuses to run without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "qwen_gpu.py"
# Hide any GPU so the test checks the CPU contract everywhere (CI has none anyway).
CPU_ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 170) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=CPU_ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("results")
    work = tmp_path_factory.mktemp("work")
    proc = run(
        "--size", "tiny", "--threads", "1",
        "--warmup", "1", "--steps", "2", "--score-steps", "2",
        "--train-batches", "1,2", "--score-batches", "1,2", "--serve-batches", "2",
        "--serve-seconds", "1.5", "--work-dir", str(work), "--out-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.glob("qwen_gpu_*.json"))
    assert [f.name for f in files] == ["qwen_gpu_cpu.json"]
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_json_names_the_machine_versions_and_settings(tiny_result):
    env = tiny_result["environment"]
    assert tiny_result["device"] == env["device"] == "cpu"
    assert {"driver", "cuda", "gpu_count", "python", "platform", "cpus"} <= env.keys()
    for pkg in ("torch", "transformers", "peft", "bitsandbytes", "litserve"):
        assert pkg in env["versions"]
    assert env["versions"]["torch"] and env["versions"]["transformers"]
    s = tiny_result["settings"]
    assert s["size"] == "tiny" and s["train_batches"] == [1, 2] and s["score_batches"] == [1, 2]
    assert s["phases"] == ["train", "score", "serve", "scaling"]
    q = s["qwen_config"]
    assert q["image_size"] == 56 and q["lora_r"] == 16 and q["lora_target_modules"]
    assert s["base"]["parameters"] > 0 and s["base"]["architecture"]["text"]["hidden_size"] == 64
    assert tiny_result["reference"]["raw_bf16_images_per_s"]["1"] == 15.7
    assert tiny_result["runs"][-1]["phases"] == s["phases"]


def test_training_is_timed_and_qlora_skipped_on_cpu(tiny_result):
    train = tiny_result["results"]["train"]
    assert [(r["mode"], r["batch"]) for r in train["rows"]] == [("lora_bf16", 1), ("lora_bf16", 2)]
    for r in train["rows"]:
        assert r["s_per_step"] > 0 and r["images_per_s"] == pytest.approx(r["batch"] / r["s_per_step"], rel=0.01)
        assert r["loss_finite"] and r["trainable_parameters"] > 0
        assert r["peak_allocated_gib"] is None  # no CUDA allocator: nothing made up
    assert train["skipped"] == [{"mode": "qlora_nf4", "reason": "bitsandbytes NF4 needs CUDA"}]


def test_scoring_and_server_measured_in_the_same_run(tiny_result):
    score = tiny_result["results"]["score"]
    assert [(r["mode"], r["batch"]) for r in score["rows"]] == [("bf16", 1), ("bf16", 2)]
    assert all(r["images_per_s"] > 0 and r["detector_images_per_s"] > 0 for r in score["rows"])
    assert score["skipped"] == [{"mode": "nf4", "reason": "bitsandbytes NF4 needs CUDA"}]
    (srv,) = tiny_result["results"]["serve"]["rows"]
    assert srv["batch"] == srv["max_batch_size"] == 2 and srv["clients"] == 4
    assert srv["errors"] == 0 and srv["images"] > 0 and srv["p50_ms"] > 0
    raw2 = next(r for r in score["rows"] if r["batch"] == 2)
    assert srv["raw_images_per_s"] == raw2["images_per_s"]
    assert srv["server_vs_raw"] == pytest.approx(srv["images_per_s"] / raw2["images_per_s"], rel=0.01)
    goals = tiny_result["goals"]
    assert goals["qlora_batch8_peak_le_12gib"] is None  # not measured, so not judged
    assert goals["worst_server_vs_raw"] == srv["server_vs_raw"]


def test_scaling_says_one_gpu_is_not_enough_instead_of_estimating(tiny_result):
    scaling = tiny_result["results"]["scaling"]
    assert scaling["measured"] is False and scaling["gpu_count"] == 0
    assert "nothing estimated" in scaling["reason"]


@pytest.mark.slow
def test_7b_without_cuda_exits_2_with_one_line(tmp_path):
    proc = run("--size", "7b", "--out-dir", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU; none found" in lines[0]
    assert not list(tmp_path.iterdir())  # no file, no numbers


def _script_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("qwen_gpu_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_merge_keeps_other_modes_and_replaces_remeasured_rows():
    merge = _script_module().merge_phase
    old = {
        "rows": [{"mode": "bf16", "batch": 1, "images_per_s": 1.0}, {"mode": "bf16", "batch": 8, "images_per_s": 2.0}],
        "skipped": [{"mode": "nf4", "reason": "bitsandbytes NF4 needs CUDA"}],
    }
    new = {
        "rows": [{"mode": "nf4", "batch": 1, "images_per_s": 3.0}, {"mode": "bf16", "batch": 8, "images_per_s": 4.0}]
    }
    got = merge(old, new)
    assert sorted((r["mode"], r["batch"], r["images_per_s"]) for r in got["rows"]) == [
        ("bf16", 1, 1.0),
        ("bf16", 8, 4.0),
        ("nf4", 1, 3.0),
    ]
    assert got["skipped"] == []  # nf4 was measured this time: its old skip no longer holds
    assert merge(None, new) is new


def test_scaling_phase_reports_the_scaling_scripts_result_for_this_card(tmp_path):
    bench_scaling = _script_module().bench_scaling
    one_gpu = {"device": "NVIDIA H100 80GB HBM3", "gpu_count": 1}
    assert bench_scaling(one_gpu, tmp_path)["reason"].startswith("only 1 GPU visible")
    scaling = {
        "multi_gpu_measured": False,
        "rows": [{"world_size": 1, "images_per_s": 7.0}],
        "speedup": {"1": {"speedup": 1.0, "efficiency": 1.0}},
        "note": "only 1 GPU visible: the 1-GPU run is measured, no multi-GPU number is given",
    }
    (tmp_path / "qwen_scaling_nvidia-h100-80gb-hbm3.json").write_text(json.dumps(scaling))
    got = bench_scaling(one_gpu, tmp_path)
    assert got["file"] == "qwen_scaling_nvidia-h100-80gb-hbm3.json" and got["world_sizes"] == [1]
    assert got["measured"] is False and "only 1 GPU" in got["reason"]
    scaling.update(multi_gpu_measured=True, rows=[{"world_size": 1}, {"world_size": 2}])
    (tmp_path / "qwen_scaling_nvidia-h100-80gb-hbm3.json").write_text(json.dumps(scaling))
    got = bench_scaling({**one_gpu, "gpu_count": 2}, tmp_path)
    assert got["measured"] is True and got["world_sizes"] == [1, 2] and "reason" not in got


def test_every_command_in_bench_readme_parses():
    import re
    import shlex

    parser = _script_module().arg_parser()
    readme = (ROOT / "bench" / "README.md").read_text()
    commands = re.findall(r"python3? bench/qwen_gpu\.py([^\n`;&]*)", readme)
    assert len(commands) >= 5
    for rest in commands:
        args = parser.parse_args(shlex.split(rest.replace('"$OUT"', "/tmp/out")))
        assert args.size in ("7b", "tiny")
