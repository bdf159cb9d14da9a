"""Serve tests/infra/tf_standin.py to Terraform from a filesystem mirror, run by its own venv.

    python = standin_python()                       # a venv holding PyPI's `tf`, cached outside the repository
    install(mirror_dir, python)                     # lays out a filesystem mirror for registry.terraform.io
    write_cli_config(path, mirror_dir)              # then TF_CLI_CONFIG_FILE=path terraform init -backend=false

The stand-in runs from a venv of its own, as checkov does: `tf` pins protobuf below 6, and the project
needs protobuf 6 for onnx (the fast stage's runtime), so the two cannot share the project's venv.
This module imports nothing from `tf`, so the tests that use it run in the project's venv.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

HOST, NAMESPACE, TYPE = "registry.terraform.io", "terraform-provider-openstack", "openstack"
# Must satisfy infra/terraform/versions.tf's constraint (~> 3.0).
VERSION = "3.0.0"
PLATFORM = "linux_amd64"
TF_PACKAGE = "tf==1.2.0"  # the provider SDK tf_standin.py is written against
CACHE_DIR = Path(os.environ.get("AIDETECT_CACHE_DIR", Path.home() / ".cache" / "aidetect"))


def standin_python(venv: Path = CACHE_DIR / "tf-standin-venv") -> str:
    """The Python of a venv with `tf` installed, made on first use (PyPI, about 20 s)."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import tf.runner"]
    if not (python.exists() and subprocess.run(check, capture_output=True).returncode == 0):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", TF_PACKAGE], check=True, timeout=600)
    return str(python)


def install(mirror_dir: Path, python: str) -> Path:
    """Writes the stand-in as an unpacked provider in a Terraform filesystem mirror; returns the binary."""
    target = mirror_dir / HOST / NAMESPACE / TYPE / VERSION / PLATFORM
    target.mkdir(parents=True, exist_ok=True)
    exe = target / f"terraform-provider-{TYPE}_v{VERSION}"
    here = Path(__file__).resolve().parent
    exe.write_text(f"#!{python}\nimport sys\nsys.path.insert(0, {str(here)!r})\nimport tf_standin\ntf_standin.main()\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def write_cli_config(path: Path, mirror_dir: Path, plugin_cache: Path | None = None) -> Path:
    """A CLI config (for TF_CLI_CONFIG_FILE) that installs the openstack provider from the mirror only."""
    cache = f'plugin_cache_dir = "{plugin_cache}"\n' if plugin_cache else ""
    path.write_text(
        cache + "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror_dir}"\n'
        f'    include = ["{HOST}/{NAMESPACE}/{TYPE}"]\n  }}\n'
        "}\n"
    )
    return path


def offline_env(cli_config: Path, data_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(cli_config), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    if data_dir:
        env["TF_DATA_DIR"] = str(data_dir)
    return env
