"""The serving benchmarks' own machinery: wrk's report, rounds into medians and paired ratios, CPU and
memory of a process tree, waiting for a server's backlog, and the whole of bench/serve_latency.py and
bench/serve_throughput.py on the tiny model at a tiny scale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.load import wrk_summary
from bench.quiet import own_rss_bytes, session_cpu_seconds, session_rss_bytes, wait_quiet
from bench.serve_latency import cpu_hours, median_of, paired_ratio

ROOT = Path(__file__).resolve().parents[2]


def test_wrk_report_becomes_a_summary():
    line = json.dumps(
        {"requests": 120, "duration_us": 4000000, "non_2xx": 20, "socket_errors": 1, "p50_us": 81234, "p95_us": 99000}
    )
    assert wrk_summary(line) == {
        "images": 100,  # only 2xx answers are images scored
        "errors": 21,
        "seconds": 4.0,
        "images_per_s": 25.0,
        "p50_ms": 81.23,
        "p95_ms": 99.0,
    }


def test_rounds_give_medians_and_ratios_pair_each_round_with_itself():
    def point(rate, errors=0):
        return {"images": 100, "errors": errors, "seconds": 2, "images_per_s": rate, "p50_ms": 10.0, "p95_ms": 12.0}

    server = [point(r) for r in (50, 20, 40)]
    raw = [point(r, errors=1) for r in (50, 25, 80)]
    m = median_of(server)
    assert m["images_per_s"] == 40 and m["images_per_s_by_round"] == [50, 20, 40]
    assert m["images"] == 300 and m["seconds"] == 6
    assert median_of(raw)["errors"] == 3
    # per round: 1.0, 0.8, 0.5 -> median 0.8 (the ratio of the medians would say 40/50 = 0.8 only by luck)
    assert paired_ratio(server, raw) == {"median": 0.8, "min": 0.5, "max": 1.0}
    assert paired_ratio(server, [{**r, "images_per_s": 0} for r in raw])["median"] is None
    # CPU per image pairs the same way; a round without the figure is left out
    cpu = [{**r, "cpu_ms_per_image": v} for r, v in zip(server, (20.0, 30.0, None), strict=True)]
    assert paired_ratio(cpu, [{**r, "cpu_ms_per_image": 10.0} for r in raw], key="cpu_ms_per_image")["median"] == 2.5


def test_cpu_ms_per_image_becomes_vcpu_hours_per_million():
    assert cpu_hours(36.0) == 10.0  # 36 ms x 1e6 images = 36,000 s = 10 h
    assert cpu_hours(None) is None


def test_session_memory_adds_up_its_processes():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"],
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while session_rss_bytes(sleeper.pid) < 64 << 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 64 << 20 <= session_rss_bytes(sleeper.pid) < 1 << 30
    finally:
        sleeper.kill()
        sleeper.wait()
    assert session_rss_bytes(sleeper.pid) == 0  # nothing left in the session
    assert own_rss_bytes() > 10 << 20


def test_wait_quiet_waits_for_a_busy_session_to_finish():
    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
    try:
        time.sleep(0.3)
        assert session_cpu_seconds(busy.pid) > 0.1
        waited = wait_quiet(busy.pid, window=0.2, timeout=20)
        assert 0.8 <= waited < 10  # it returned once the loop ended, not before
        assert busy.wait(5) == 0
    finally:
        busy.kill()
    assert wait_quiet(busy.pid, window=0.1, timeout=20) < 5  # a session with nothing in it is quiet at once


MODES = ("raw_torch", "raw_opt", "server_torch", "server")


def run_bench(script: str, settings, out: Path, *args: str) -> dict:
    env = {**os.environ, "AIDETECT_MANIFEST": str(settings.manifest), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--home", str(settings.home), "--out", str(out), *args],
        env=env, capture_output=True, text=True, timeout=400, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def check_point(r: dict, rounds: int, mode, c) -> None:
    assert r["errors"] == 0 and r["images"] > 0 and r["images_per_s"] > 0, (mode, c, r)
    assert len(r["images_per_s_by_round"]) == rounds and r["p50_ms"] <= r["p95_ms"]
    assert r["cpu_ms_per_image"] > 0 and r["rss_mib"] > 50, (mode, c, r)  # a replica holds at least the model


@pytest.mark.slow
def test_serve_latency_runs_every_mode_and_writes_its_json(tiny_model, tmp_path):
    result = run_bench(
        "serve_latency.py", tiny_model[0], tmp_path / "serve_latency.json",
        "--clients", "1", "3", "--seconds", "1", "--rounds", "2", "--capacity-clients", "1", "2",
    )  # fmt: skip
    assert result["load_generator"] == ("wrk" if shutil.which("wrk") else "httpx")
    assert result["export"]["runtime"] == "onnxruntime"  # the tiny model was exported at registration
    layout = result["server_layout"]
    assert layout["workers"] >= 1 and layout["threads_each"] >= 1
    for mode in MODES:
        for c in ("1", "3"):
            check_point(result[mode][c], 2, mode, c)
    for mode in ("raw_torch", "raw_opt"):  # both in the server's layout: 3 images spread over its processes
        r = result[mode]["3"]
        assert r["processes"] == min(layout["workers"], 3) and r["batch"] == -(-3 // r["processes"]), (mode, r)
    limit = result["batch_limit"]
    assert limit["raw_torch"]["batch"] == limit["batch"] == limit["raw_opt"]["batch"] == result["max_batch_size"]
    for c in ("1", "3"):
        for key, ratio in result["ratios"][c].items():
            assert ratio["min"] <= ratio["median"] <= ratio["max"], (c, key)
    assert result["ratios"]["batch_limit"]["raw_opt_vs_raw_torch"]["median"] > 0
    for mode in ("server", "server_torch"):
        cap = result["capacity"][mode]
        assert [p["clients"] for p in cap["points"]] == [1, 2] and cap["p95_budget_ms"] == 200
        if cap["images_per_s"] is not None:  # within the budget at some count (a loaded VM may not be)
            assert cap["at"]["p95_ms"] <= 200 and cap["images_per_s"] == cap["at"]["images_per_s"]
            hours = result["vcpu_hours_per_million_images"][mode]["at_p95_200ms"]
            assert hours == pytest.approx(2 * 1e6 / cap["images_per_s"] / 3600, rel=0.01)
    assert result["goals"]["server_ge_0.9_raw_opt_at_8"] is None  # 8 clients not measured: not judged
    assert result["goals"]["lone_image_le_12ms_p50_20ms_p95"] in (True, False)
    assert len(result["machine"]["load_avg_at_start"]) == 3
    pod = result["pod_replica"]  # the cluster's one-worker replica: what its requests and KEDA target come from
    assert pod["workers"] == 1 and pod["idle"]["rss_mib"] > 50 and pod["peak_under_load"]["pss_mib"] > 50
    assert pod["capacity"]["points"][0]["clients"] == 1


@pytest.mark.slow
def test_serve_throughput_measures_both_runtimes_by_batch_and_every_mode(tiny_model, tmp_path):
    result = run_bench(
        "serve_throughput.py", tiny_model[0], tmp_path / "serve_throughput.json",
        "--clients", "2", "--seconds", "1", "--rounds", "1", "--batches", "1", "2", "--max-batch-size", "2",
    )  # fmt: skip
    assert set(result["by_batch"]) == {"raw_torch", "raw_opt"}
    for m in ("raw_torch", "raw_opt"):
        assert set(result["by_batch"][m]) == {"1", "2"} and all(v > 0 for v in result["by_batch"][m].values())
    assert result["raw_opt_vs_raw_torch_by_batch"]["2"]["median"] > 0
    for mode in MODES:
        check_point(result[mode]["2"], 1, mode, "2")
    assert "skipped" in result["capacity"]["server"]  # the p95 search is serve_latency.py's unless asked
