"""ci/push_pin.sh: the Git half of a promotion in Actions, run against a scratch clone and a bare remote."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = "gitops/apps/detector/overlays"
ID = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]


def git(cwd, *args) -> str:
    return subprocess.run(["git", *ID, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture()
def clone(tmp_path) -> tuple[Path, Path]:
    """(working clone, bare remote) holding the overlays, ci/gitops_pin.py and ci/push_pin.sh."""
    seed = tmp_path / "seed"
    shutil.copytree(REPO / OVERLAYS, seed / OVERLAYS)
    (seed / "ci").mkdir()
    for name in ("__init__.py", "gitops_pin.py", "push_pin.sh"):
        shutil.copy(REPO / "ci" / name, seed / "ci" / name)
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    return work, remote


# The runner after the workflow's "Install the pin editor" step: a python3 that has ruamel.yaml comes first.
RUNNER_PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


def push_pin(work: Path, remote: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "ci/push_pin.sh"], cwd=work, capture_output=True, text=True, timeout=60,
                          env={"PATH": RUNNER_PATH, "HOME": str(work), "REMOTE": str(remote), **env})


def remote_pin(remote: Path, stage: str) -> str:
    return git(remote, "show", f"main:{OVERLAYS}/{stage}/model-version.yaml").splitlines()[-1].strip()


def test_pins_commits_with_the_message_and_pushes(clone):
    work, remote = clone
    message = "Promote aidetect v5 to canary: AUROC 0.9300, q60 0.9000, FPR 0.0100\n\nmodels:/aidetect/5 replaces v1"
    proc = push_pin(work, remote, STAGE="canary", VERSION="5", MESSAGE=message)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert remote_pin(remote, "canary") == "AIDETECT_MODEL_URI: models:/aidetect/5"
    assert remote_pin(remote, "production") == "AIDETECT_MODEL_URI: models:/aidetect/1"
    assert git(remote, "log", "-1", "--format=%B", "main").strip() == message
    assert git(remote, "show", "--name-only", "--format=", "main").split() == [f"{OVERLAYS}/canary/model-version.yaml"]
    again = push_pin(work, remote, STAGE="canary", VERSION="5", MESSAGE=message)
    assert again.returncode == 0 and "nothing to commit" in again.stdout
    assert git(remote, "rev-list", "--count", "main").strip() == "2"


def test_rebases_over_a_pin_that_landed_first(clone, tmp_path):
    work, remote = clone
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(remote), str(other))
    pin = other / OVERLAYS / "staging" / "model-version.yaml"
    pin.write_text(pin.read_text().replace("models:/aidetect/1", "models:/aidetect/4"))
    git(other, "commit", "-qam", "staging v4")
    git(other, "push", "-q", "origin", "HEAD:main")
    proc = push_pin(work, remote, STAGE="production", VERSION="3", MESSAGE="Promote aidetect v3 to production")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rebasing" in proc.stdout
    assert remote_pin(remote, "staging").endswith("/4") and remote_pin(remote, "production").endswith("/3")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"STAGE": "prod", "VERSION": "3", "MESSAGE": "m"}, "STAGE must be"),
        ({"STAGE": "canary", "VERSION": "3; rm -rf /", "MESSAGE": "m"}, "VERSION must be"),
        ({"STAGE": "canary", "VERSION": "3", "MESSAGE": ""}, "MESSAGE is empty"),
    ],
)
def test_refuses_bad_input(clone, env, words):
    work, remote = clone
    proc = push_pin(work, remote, **env)
    assert proc.returncode == 2 and words in proc.stdout
