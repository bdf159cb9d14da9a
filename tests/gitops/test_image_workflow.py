""".github/workflows/image.yml: pinned actions, least privilege, and a pin step that really writes the
built tags into the overlays (its shell steps are run here against a scratch copy of gitops/)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitops_render import GITOPS, REPO, render

WORKFLOW = REPO / ".github" / "workflows" / "image.yml"
DIGEST = "sha256:" + "c0ffee00" * 8


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(workflow: dict, job: str, name: str) -> dict:
    return next(s for s in workflow["jobs"][job]["steps"] if s.get("name") == name)


def _gitops_image_names() -> set[str]:
    names = set()
    for file in GITOPS.rglob("kustomization.yaml"):
        for entry in yaml.safe_load(file.read_text()).get("images", []):
            if entry["name"].startswith("ghcr.io/aidetect/"):
                names.add(entry["name"])
    return names


def test_actions_are_pinned_to_commits_and_permissions_are_minimal(workflow):
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["build"]["permissions"] == {"contents": "read", "packages": "write"}
    assert workflow["jobs"]["pin"]["permissions"] == {"contents": "write"}


def test_builds_every_image_gitops_uses_with_buildx(workflow):
    build = workflow["jobs"]["build"]
    prefix = workflow["env"]["IMAGE_PREFIX"]
    built = {f"{prefix}/{m['image']}" for m in build["strategy"]["matrix"]["include"]}
    assert built == _gitops_image_names()
    variants = {m["image"]: m["variant"] for m in build["strategy"]["matrix"]["include"]}
    assert variants["aidetect"] == "cpu" and variants["aidetect-gpu"] == "gpu"
    steps = [s.get("uses", "") for s in build["steps"]]
    assert any(u.startswith("docker/setup-buildx-action@") for u in steps)
    push = next(s for s in build["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert push["with"]["push"] is True and "latest" not in push["with"]["tags"]


# The runner after the "Install the pin editor" step: a python3 that has ruamel.yaml comes first.
RUNNER_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


def _run(script: str, cwd, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={"PATH": RUNNER_PATH, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_pin_steps_write_tags_and_digests_into_the_chosen_overlays(workflow, tmp_path):
    shutil.copytree(GITOPS, tmp_path / "gitops")
    staging_before = {c["image"] for o in render(GITOPS / "apps/detector/overlays/staging")
                      if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]}
    (tmp_path / "ci").mkdir()
    shutil.copy(REPO / "ci" / "gitops_pin.py", tmp_path / "ci" / "gitops_pin.py")
    (tmp_path / "ci" / "__init__.py").write_text("")
    (tmp_path / "built").mkdir()
    sha = "0123456789ab"
    for image in ("aidetect", "aidetect-gpu", "mlflow"):
        tag = f"3.17.2-sha-{sha}" if image == "mlflow" else f"sha-{sha}"
        (tmp_path / "built" / f"{image}.txt").write_text(f"ghcr.io/aidetect/{image} {tag} {DIGEST}\n")

    output = tmp_path / "github_output"
    targets = _step(workflow, "pin", "Choose the targets")["run"]
    _run(targets, tmp_path, {"REQUESTED": "canary production", "GITHUB_OUTPUT": str(output)})
    dirs = output.read_text().strip().removeprefix("dirs=")
    assert dirs.split() == ["gitops/apps/detector/overlays/canary", "gitops/apps/detector/overlays/production",
                            "gitops/apps/ingest"]

    write = _step(workflow, "pin", "Write tags and digests into the overlays")["run"]
    write = write.replace("git diff --stat", "true")  # the scratch copy is not a git checkout
    _run(write, tmp_path, {"DIRS": dirs})
    _run(_step(workflow, "pin", "Check the overlays still build")["run"], tmp_path, {"DIRS": dirs})

    def images(path):
        return {c["image"] for o in render(tmp_path / path) if o["kind"] in ("Deployment", "CronJob")
                for c in (o["spec"].get("template") or o["spec"]["jobTemplate"]["spec"]["template"])["spec"]
                ["containers"]}

    pinned = f"sha-{sha}@{DIGEST}"
    assert images("gitops/apps/detector/overlays/production") == {
        f"ghcr.io/aidetect/aidetect:{pinned}", f"ghcr.io/aidetect/aidetect-gpu:{pinned}"}
    assert images("gitops/apps/detector/overlays/canary") == {f"ghcr.io/aidetect/aidetect:{pinned}"}
    assert images("gitops/apps/ingest") == {f"ghcr.io/aidetect/aidetect:{pinned}"}
    # Not chosen, so not touched.
    assert images("gitops/apps/detector/overlays/staging") == staging_before
    assert (tmp_path / "gitops/infrastructure/mlflow/kustomization.yaml").read_text() == (
        GITOPS / "infrastructure/mlflow/kustomization.yaml").read_text()


def test_unknown_environment_fails_the_run(workflow, tmp_path):
    script = _step(workflow, "pin", "Choose the targets")["run"]
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "REQUESTED": "prod", "GITHUB_OUTPUT": str(tmp_path / "o")})
    assert proc.returncode != 0 and "unknown environment" in proc.stdout
