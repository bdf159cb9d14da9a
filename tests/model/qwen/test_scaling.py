"""bench/qwen_scaling.py: which world sizes it runs, how it summarises, and that it never pretends."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def load_bench():
    spec = importlib.util.spec_from_file_location("qwen_scaling", REPO / "bench" / "qwen_scaling.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_world_sizes_are_powers_of_two_up_to_the_gpu_count():
    b = load_bench()
    assert b.world_sizes(None, 1) == [1]
    assert b.world_sizes(None, 6) == [1, 2, 4, 6]
    assert b.world_sizes(None, 8) == [1, 2, 4, 8]
    assert b.world_sizes([1, 2, 16], 8) == [1, 2]  # never more ranks than devices


def test_speedup_is_relative_to_the_measured_single_device_run():
    b = load_bench()
    rows = [
        {"world_size": 1, "images_per_s": 10.0},
        {"world_size": 4, "images_per_s": 30.0},
        {"world_size": 8, "error": "OOM"},
    ]
    assert b.summarise(rows) == {"1": {"speedup": 1.0, "efficiency": 1.0}, "4": {"speedup": 3.0, "efficiency": 0.75}}
    assert b.summarise([{"world_size": 2, "images_per_s": 5.0}]) == {}  # no 1-GPU run: nothing derived


def test_seven_b_on_a_cpu_is_refused_not_estimated():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "qwen_scaling.py"), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "need CUDA" in proc.stderr
