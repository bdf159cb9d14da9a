"""bench/leave_out.py end to end at a tiny scale: features cached once, every fold, JSON and MLflow."""

from __future__ import annotations

import json

import mlflow
import pytest

from aidetect.settings import get_settings

pytestmark = pytest.mark.slow


def test_leave_out_bench_smoke(tmp_path, manifest):
    from bench.leave_out import main

    out = tmp_path / "leave_out.json"
    home = tmp_path / "home"
    assert main(["--home", str(home), "--manifest", str(manifest), "--per-group", "3", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert {r["fold"] for r in rep["families"]} >= {"sd1", "face-swap", "gemini-2025"}
    assert "other" not in {r["fold"] for r in rep["families"]}
    assert {r["fold"] for r in rep["real_sources"]} == {
        "sr-benchmarks",
        "polyu-noisy",
        "camvid",
        "exif-samples",
        "cartridgeocr",
    }
    assert rep["feature_computed_seconds"] > 0 and list((home / "cache" / "features").glob("*.npz"))
    # The second run reads the cache instead of recomputing.
    assert main(["--home", str(home), "--per-group", "3", "--out", str(out), "--no-mlflow"]) == 0
    again = json.loads(out.read_text())
    assert again["feature_computed_seconds"] == 0 and again["feature_cache_made_seconds"] > 0
    mlflow.set_tracking_uri(get_settings(home=home).resolved_tracking_uri)
    run = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.benchmark = 'leave_out'", output_format="list"
    )[0]
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "leave_out")}
    assert {"leave_out/families.json", "leave_out/families_auroc.png", "leave_out/sources.yaml"} <= arts
