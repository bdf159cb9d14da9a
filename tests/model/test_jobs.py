"""Training jobs against a real MLflow store: what a run and a model version record."""

import csv
import json
import os
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from aidetect.testing.servers import aidetect_cmd
from model import registry
from model.manifest import read_manifest, subsample
from model.train import RECIPE

pytestmark = pytest.mark.slow


def test_version_records_run_metrics_and_alias(tiny_model):
    settings, ref, reports = tiny_model
    registry.configure(settings)
    client = MlflowClient()
    mv = client.get_model_version(ref.name, ref.version)
    # Evaluation is the authority on the version's numbers: its figures replace training's.
    assert float(mv.tags["val_auroc"]) == pytest.approx(reports["evaluate"]["metrics"]["overall"]["auroc"], abs=1e-3)
    assert float(mv.tags["val_q60_auroc"]) == pytest.approx(
        reports["evaluate"]["metrics_q60"]["overall"]["auroc"], abs=1e-3
    )
    assert len(mv.tags[registry.TAG_DATA_DIGEST]) == 64
    assert registry.alias_version(ref.name, "production") == ref.version
    run = client.get_run(ref.run_id)
    assert {"val_auroc", "val_faces_auroc", "val_coco-imagenet-sd_auroc", "train_seconds"} <= set(run.data.metrics)
    assert run.data.params["aug.crop"] == "160" and run.data.params["calibration"] == "platt"
    artifacts = {a.path for a in client.list_artifacts(ref.run_id)}
    assert {"detector.json", "data", "recipe"} <= artifacts
    # Which recipe and which family table the version was made under (issue 15: chosen by bench/recipes.py).
    assert run.data.tags["aidetect.recipe"] == RECIPE.stem and run.data.params["recipe"].endswith(RECIPE.name)
    assert [a.path for a in client.list_artifacts(ref.run_id, "data")] == ["data/sources.yaml"]
    # The evaluation run logged its plots beside its metrics.
    ev = client.get_run(mv.tags["eval_run_id"])
    assert {a.path for a in client.list_artifacts(ev.info.run_id, "plots")} == {
        "plots/roc.png",
        "plots/reliability.png",
        "plots/groups_ci.png",
        "plots/operating_points.png",
    }
    # Groups with their intervals, as metrics and as a table; the family table travels with the run.
    assert {"val_group_overall_auroc", "val_group_overall_auroc_lo", "val_group_overall_auroc_hi"} <= set(
        ev.data.metrics
    )
    evaluation = {a.path for a in client.list_artifacts(ev.info.run_id, "evaluation")}
    assert {"evaluation/groups.json", "evaluation/real_kinds.json", "evaluation/sources.yaml"} <= evaluation
    # The queue at other threshold targets, the trained ones (training's defaults) marked.
    assert "evaluation/operating_points.json" in evaluation
    trained = [p for p in reports["evaluate"]["operating_points"] if p["trained"]]
    assert [(p["fpr"], p["fnr"]) for p in trained] == [(0.01, 0.01)]
    assert "evaluation half" in ev.data.params["scored"]
    assert "val_q60_auroc" in ev.data.metrics


def test_trains_from_a_data_snapshot(tmp_path, manifest):
    """The trainer takes a snapshot like any manifest, and the run records it as its dataset input."""
    rows = subsample(read_manifest(manifest), 4)
    small = tmp_path / "small.csv"
    with small.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "source", "split", "origin"])
        w.writerows([str(r.path), r.label, r.source, r.split, r.origin] for r in rows)
    env = {**os.environ, "AIDETECT_HOME": str(tmp_path / "home")}

    def run(*args):
        r = subprocess.run(aidetect_cmd(*args), capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    run("data", "import", str(small), "--format", "manifest")
    snap = json.loads(run("data", "snapshot"))
    out = run("train", "--manifest", snap["manifest"], "--per-group", "4", "--epochs", "1")
    run_id = json.loads(out)["run_id"]

    # An explicit client: other tests in the session have pointed mlflow's global registry elsewhere.
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    r = client.get_run(run_id)
    assert r.data.tags["aidetect.snapshot.digest"] == snap["digest"]
    assert [d.dataset.digest for d in r.inputs.dataset_inputs] == [snap["digest"][:32]]
    mv = client.get_model_version("aidetect", "1")
    assert mv.tags[registry.TAG_DATA_DIGEST] == snap["digest"]
