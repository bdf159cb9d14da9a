"""ci/cli.py and the parts of the ci steps that need no server: the evaluation set it picks, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from aidetect.cli import app
from aidetect.settings import Settings
from ci.config import CIConfig, previous_stage
from ci.errors import StepError
from ci.snapshot import resolve_eval_set


def write_manifest(path, splits):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "source", "split", "origin"])
        w.writeheader()
        for i, split in enumerate(splits):
            img = path.parent / f"{i}.png"
            img.write_bytes(b"x")
            w.writerow({"path": img.name, "label": "ai" if i % 2 else "real", "source": "s", "split": split,
                        "origin": ""})
    return path


def test_eval_set_falls_back_to_the_shared_manifests_val_split(tmp_path):
    m = write_manifest(tmp_path / "shared" / "manifest.csv", ["train", "val", "val"])
    es = resolve_eval_set(Settings(home=tmp_path / "home", manifest=m), CIConfig())
    assert es.manifest == m and es.split == "val" and len(es.samples) == 2
    assert "no data snapshot exists" in es.why and "no test split" in es.why


def test_eval_set_prefers_the_latest_snapshots_test_split(tmp_path):
    m = write_manifest(tmp_path / "shared" / "manifest.csv", ["val"])
    snaps = tmp_path / "home" / "snapshots"
    for v in ("v0001", "v0002", "v0010"):
        write_manifest(snaps / v / "manifest.csv", ["train", "test", "test", "val"])
        (snaps / v / "snapshot.json").write_text("{}")
    (snaps / "v0011").mkdir()  # being written: no sidecar yet, so not a snapshot
    es = resolve_eval_set(Settings(home=tmp_path / "home", manifest=m), CIConfig())
    assert es.manifest == snaps / "v0010" / "manifest.csv" and es.split == "test" and len(es.samples) == 2
    again = resolve_eval_set(Settings(home=tmp_path / "home", manifest=m), CIConfig())
    assert again.digest == es.digest
    other = resolve_eval_set(Settings(home=tmp_path / "home", manifest=m), CIConfig(eval_split="val"))
    assert other.digest != es.digest


def test_eval_set_from_config(tmp_path):
    m = write_manifest(tmp_path / "m.csv", ["test"])
    es = resolve_eval_set(Settings(home=tmp_path), CIConfig(eval_manifest=m, eval_split="test"))
    assert es.manifest == m and "AIDETECT_CI_EVAL_MANIFEST" in es.why
    with pytest.raises(StepError, match="no images in split 'holdout'"):
        resolve_eval_set(Settings(home=tmp_path), CIConfig(eval_manifest=m, eval_split="holdout"))


def test_stages_follow_one_path():
    assert [previous_stage(s) for s in ("staging", "canary", "production")] == ["challenger", "staging", "canary"]
    with pytest.raises(ValueError, match="unknown stage"):
        previous_stage("prod")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ci", "evaluate"], "no version of aidetect holds @challenger; run `aidetect ci retrain` first"),
        (["ci", "promote", "--to", "staging"], "no version of aidetect holds @challenger"),
        (["ci", "promote", "--to", "prod"], "unknown stage 'prod'"),
        (["ci", "rollback", "--stage", "qa"], "unknown stage 'qa'"),
        (["ci", "evaluate", "--version", "42"], "models:/aidetect/42 cannot be read"),
    ],
)
@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path, args, words):
    env = {"AIDETECT_HOME": str(tmp_path), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("aidetect: error: ") and words in lines[-1] and "Traceback" not in result.output


@pytest.mark.slow
def test_should_retrain_exit_codes_and_outputs(tmp_path):
    out = tmp_path / "out"
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps({"moderator_labels": 3, "drift": 0.5}))
    env = {"AIDETECT_HOME": str(tmp_path), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}",
           "GITHUB_OUTPUT": str(out), "GITHUB_EVENT_NAME": "repository_dispatch"}
    r = CliRunner().invoke(app, ["ci", "should-retrain", "--signals", str(signals), "--no-store"], env=env)
    assert r.exit_code == 0 and "drift 0.5000" in r.output
    assert "retrain=true" in out.read_text()
    r = CliRunner().invoke(app, ["ci", "should-retrain", "--drift", "0.01", "--moderator-labels", "0", "--no-store"],
                           env={**env, "AIDETECT_CI_FEEDBACK_THRESHOLD": "1"})
    # No production model yet, so even quiet signals retrain.
    assert r.exit_code == 0 and "no model holds production" in r.output


@pytest.mark.slow
def test_should_retrain_reads_the_monitors_drift_json_by_default(tmp_path):
    (tmp_path / "monitoring").mkdir()
    (tmp_path / "monitoring" / "drift.json").write_text(json.dumps({"max_psi": 0.42, "features": {}}))
    env = {"AIDETECT_HOME": str(tmp_path), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    r = CliRunner().invoke(app, ["ci", "should-retrain", "--no-store", "--event", "schedule"], env=env)
    assert r.exit_code == 0 and "drift 0.4200 (threshold 0.2000)" in r.output
