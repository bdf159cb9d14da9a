"""The whole loop, twice, against a real MLflow server (PostgreSQL + S3 on moto) and a real git repository.

    bootstrap  v1, an untrained network, becomes production (nothing to beat; floor lowered for it)
    cycle 1    a moderator label arrives -> should-retrain says yes -> new snapshot -> v2 trained
               -> gate passes on the snapshot's frozen test split -> staging, canary, production pins bumped
    cycle 2    v3, deliberately worse (learning rate 0), is rejected with its reasons; promote refuses it
    rollback   production goes back to v1: alias and pin, one commit; re-running changes nothing

Every step runs through `aidetect ci ...` with its configuration in environment variables, as in Actions.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aidetect.cli import app

pytestmark = pytest.mark.slow
OVERLAYS = "gitops/apps/detector/overlays"
SHA = "0123456789abcdef0123456789abcdef01234567"


def git_log(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def pin(repo: Path, stage: str) -> int:
    from ci.gitops_pin import read_pin

    return read_pin(repo / OVERLAYS / stage)


def read_outputs(path: Path) -> dict:
    """$GITHUB_OUTPUT as Actions reads it: key=value lines and key<<DELIM heredocs."""
    lines = path.read_text().splitlines() if path.exists() else []
    out, i = {}, 0
    while i < len(lines):
        if "<<" in lines[i] and "=" not in lines[i].split("<<")[0]:
            key, delim = lines[i].split("<<", 1)
            end = lines.index(delim, i + 1)
            out[key], i = "\n".join(lines[i + 1:end]), end + 1
        else:
            key, _, value = lines[i].partition("=")
            out[key], i = value, i + 1
    return out


class Loop:
    """Runs `aidetect ci` commands with one environment, like the steps of one workflow run."""

    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp, self.n = env, tmp, 0

    def __call__(self, *args: str, expect: int = 0, **env) -> tuple[str, dict]:
        self.n += 1
        out_file = self.tmp / f"github_output_{self.n}"
        result = CliRunner().invoke(app, list(args), env={**self.env, "GITHUB_OUTPUT": str(out_file), **env})
        assert result.exit_code == expect, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
        return result.output, read_outputs(out_file)


def test_retrain_gate_promote_reject_rollback(registry_server, synthetic_manifest, gitops_repo, tmp_path):
    from mlflow.tracking import MlflowClient

    url, s3 = registry_server
    recipe = tmp_path / "recipe.yaml"
    from synthetic import RECIPE

    recipe.write_text(RECIPE)
    home = tmp_path / "home"
    summary = tmp_path / "step_summary.md"
    env = {
        "MLFLOW_TRACKING_URI": url,
        "AIDETECT_HOME": str(home),
        "AIDETECT_MANIFEST": str(synthetic_manifest),
        "AIDETECT_STORE_URL": f"sqlite:///{home / 'etl.db'}",
        "AIDETECT_OBJECT_STORE": str(home / "objects"),
        "AIDETECT_CI_GITOPS_REPO": str(gitops_repo),
        "AIDETECT_CI_RECIPE": str(recipe),
        "AIDETECT_CI_EPOCHS": "2",
        "AIDETECT_CI_LR": "0.003",
        "AIDETECT_CI_FEEDBACK_THRESHOLD": "1",
        "GITHUB_SHA": SHA,
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_NAME": "schedule",
    }
    ci = Loop(env, tmp_path)
    client = MlflowClient(tracking_uri=url, registry_uri=url)  # not whatever an earlier test set globally

    def alias(name: str) -> str | None:
        try:
            return client.get_model_version_by_alias("aidetect", name).version
        except Exception:
            return None

    # --- data in the ETL store (the data helper's own command) ---
    ci("data", "import", "--format", "manifest", str(synthetic_manifest))

    # --- bootstrap: nothing serves yet, so a scheduled run retrains ---
    out, o = ci("ci", "should-retrain")
    assert o["retrain"] == "true" and "no model holds production" in out
    out, o = ci("ci", "retrain", AIDETECT_CI_EPOCHS="0")
    assert o["version"] == "1" and o["reused"] == "false" and o["snapshot"] == "1"
    out, o = ci("ci", "evaluate", AIDETECT_CI_MIN_AUROC="0")
    assert o["promote"] == "true" and "no production model yet" in out
    for stage in ("staging", "canary", "production"):
        out, o = ci("ci", "promote", "--to", stage)
        assert o["version"] == "1" and o["commit"] == ""  # the overlays pin 1 already: nothing to commit
    assert alias("production") == "1" and git_log(gitops_repo) == ["overlays"]

    # --- cycle 1: moderator feedback triggers a retrain on a new snapshot ---
    out, o = ci("ci", "should-retrain", expect=1)
    assert o["retrain"] == "false" and "0 moderator label(s)" in out
    snap1 = home / "snapshots" / "v0001" / "manifest.csv"
    train_row = next(r for r in csv.DictReader(snap1.open()) if r["split"] == "train")
    from model.etl.store import Store

    store = Store.open(env["AIDETECT_STORE_URL"], env["AIDETECT_OBJECT_STORE"])
    store.record_label(train_row["sha256"], train_row["label"], moderator="mod-1")
    store.close()
    out, o = ci("ci", "should-retrain")
    assert o["retrain"] == "true" and "1 moderator label(s)" in out

    out, o = ci("ci", "retrain")
    assert o["version"] == "2" and o["snapshot"] == "2"
    snap2 = home / "snapshots" / "v0002" / "manifest.csv"
    assert any(r["label_origin"] == "moderator" for r in csv.DictReader(snap2.open()))
    tags = client.get_model_version("aidetect", "2").tags
    assert tags["git_sha"] == SHA and tags["data.snapshot"] == "2" and len(tags["data.digest"]) == 64
    assert alias("challenger") == "2"
    out, o = ci("ci", "retrain")  # same commit, data and recipe: the version is reused
    assert o["version"] == "2" and o["reused"] == "true"

    summary.write_text("")
    # The gate runs in another pod: nothing shared with retrain's but the database, the object store and
    # MLflow (no ReadWriteMany volume). It fetches v2's snapshot from its run and the images from the store.
    gate_home = tmp_path / "evaluate-pod"
    out, o = ci("ci", "evaluate", AIDETECT_HOME=str(gate_home))
    fetched = gate_home / "snapshots" / "v0002" / "manifest.csv"
    assert fetched.read_bytes() == snap2.read_bytes()
    assert all((fetched.parent / r["path"]).is_file() for r in csv.DictReader(fetched.open()) if r["split"] == "test")
    assert o["promote"] == "true" and o["production_version"] == "1" and o["eval_split"] == "test"
    report = summary.read_text()
    assert "v2 vs production v1: **PROMOTE**" in report
    assert "split **test**" in report and "latest data snapshot (v0002)" in report
    assert "JPEG q60" in report and "False-positive rate at operating threshold" in report
    tags = client.get_model_version("aidetect", "2").tags
    assert float(tags["val_auroc"]) > 0.9 and float(tags["ci.eval.auroc"]) > 0.9 and "ci.eval.fpr" in tags
    assert tags["ci.gate"] == "passed" and tags["ci.gate.against"] == "1"
    gate_run = tags["ci.gate.run_id"]
    assert any(k.endswith(f"{gate_run}/artifacts/gate/report.md") for k in s3.list_keys("mlflow"))
    out, o = ci("ci", "evaluate")  # same set, same incumbent, same rules: cached metrics, no new record
    assert o["promote"] == "true" and client.get_model_version("aidetect", "2").tags["ci.gate.run_id"] == gate_run

    # The Actions split: the registry half first (in the cluster), the pin after (ci/push_pin.sh, or here below).
    out, o = ci("ci", "promote", "--to", "staging", "--no-pin")
    assert o["version"] == "2" and o["previous"] == "1" and o["commit"] == "" and alias("staging") == "2"
    assert o["message"].startswith("Promote aidetect v2 to staging") and pin(gitops_repo, "staging") == 1
    for stage in ("staging", "canary", "production"):
        out, o = ci("ci", "promote", "--to", stage)
        assert o["version"] == "2" and o["previous"] == "1" and o["changed"] == "true" and o["commit"]
        assert pin(gitops_repo, stage) == 2 and alias(stage) == "2"
    log = git_log(gitops_repo)
    assert log[0].startswith("Promote aidetect v2 to production: AUROC 1.0000") and len(log) == 4
    out, o = ci("ci", "promote", "--to", "production")  # again: nothing left to do
    assert o["changed"] == "false" and len(git_log(gitops_repo)) == 4
    out, o = ci("ci", "evaluate", expect=1)  # a re-run of the whole workflow stops at the gate
    assert "already holds production" in o["reason"]
    assert client.get_model_version("aidetect", "2").tags["ci.gate"] == "passed"

    # --- cycle 2: a deliberately worse challenger is rejected, and promote refuses it ---
    summary.write_text("")
    out, o = ci("ci", "retrain", AIDETECT_CI_LR="0", AIDETECT_CI_EPOCHS="1")
    assert o["version"] == "3"
    out, o = ci("ci", "evaluate", expect=1)
    assert o["promote"] == "false" and o["production_version"] == "2"
    assert "AUROC" in o["reason"] and "below the required" in o["reason"]
    assert "v3 vs production v2: **REJECT**" in summary.read_text()
    out, _ = ci("ci", "promote", "--to", "staging", expect=2)
    assert "has not passed the gate" in out
    assert alias("staging") == "2" and pin(gitops_repo, "staging") == 2 and len(git_log(gitops_repo)) == 4

    # --- rollback: production back to v1, alias and pin; a second run changes nothing ---
    out, o = ci("ci", "rollback", "--stage", "production", "--version", "2")
    assert o["version"] == "1" and o["changed"] == "true"
    assert pin(gitops_repo, "production") == 1 and alias("production") == "1"
    assert git_log(gitops_repo)[0].startswith("Roll back aidetect v1 to production")
    out, o = ci("ci", "rollback", "--stage", "production", "--version", "2")
    assert o["changed"] == "false" and len(git_log(gitops_repo)) == 5
    out, o = ci("ci", "rollback", "--stage", "production")  # no --version: never a second step back
    assert o["changed"] == "false" and "rolled back to v1 (from v2) already" in o["message"]
    assert pin(gitops_repo, "production") == 1 and len(git_log(gitops_repo)) == 5
    out, _ = ci("ci", "status")
    state = json.loads(out)
    assert state["production"] == {"alias": "1", "pin": "1"} and state["canary"] == {"alias": "2", "pin": "2"}
