"""The serving benchmarks' own machinery: wrk's report, rounds into medians and paired ratios, waiting
for a server's backlog, and the whole of bench/serve_latency.py on the tiny model at a tiny scale."""

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
from bench.quiet import session_cpu_seconds, wait_quiet
from bench.serve_latency import median_of, paired_ratio

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
    assert wait_quiet(busy.pid, window=0.1) < 0.5  # a session with nothing in it is quiet at once


@pytest.mark.slow
def test_serve_latency_runs_every_mode_and_writes_its_json(tiny_model, tmp_path):
    settings = tiny_model[0]
    out = tmp_path / "serve_latency.json"
    env = {**os.environ, "AIDETECT_MANIFEST": str(settings.manifest), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serve_latency.py"), "--home", str(settings.home),
         "--clients", "1", "3", "--seconds", "1", "--rounds", "2", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=400, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["load_generator"] == ("wrk" if shutil.which("wrk") else "httpx")
    layout = result["server_layout"]
    assert layout["workers"] >= 1 and layout["torch_threads_each"] >= 1
    for mode in ("raw", "raw_per_core", "server", "naive"):
        for c in ("1", "3"):
            r = result[mode][c]
            assert r["errors"] == 0 and r["images"] > 0 and r["images_per_s"] > 0, (mode, c, r)
            assert len(r["images_per_s_by_round"]) == 2 and r["p50_ms"] <= r["p95_ms"]
    assert result["raw"]["3"]["batch"] == 3 and result["raw_per_core"]["3"]["processes"] == min(layout["workers"], 3)
    for c in ("1", "3"):
        ratio = result["ratios"][c]["server_vs_raw"]
        assert ratio["min"] <= ratio["median"] <= ratio["max"]
    assert result["goals"]["server_ge_0.9_raw_at_8"] is None  # 8 clients not measured: not judged
