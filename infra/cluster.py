"""Terraform for the standing cluster, driven through python-terraform.

    cluster.run("plan", site)      # writes tfvars + backend settings from site.yaml, init, plan
    cluster.run("apply", site, auto_approve=True)
    cluster.outputs(site)          # `terraform output -json`, for the inventory and the GPU stack

The generated terraform.tfvars.json and backend.s3.tfbackend are gitignored: site.yaml is the source.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from infra import config
from infra.config import Site, backend_hcl, tfvars
from infra.preflight import (
    InfraError,
    require_binary,
    require_cloud,
    require_filled,
    require_state_credentials,
)

TFVARS_FILE = "terraform.tfvars.json"
BACKEND_FILE = "backend.s3.tfbackend"
INSTALL_HINT = "install Terraform >= 1.7 (https://developer.hashicorp.com/terraform/install)"
ACTIONS = ("plan", "apply", "destroy")


def terraform_dir() -> Path:
    """Where the Terraform code is (read at call time so tests can point it at a copy)."""
    return config.TERRAFORM_DIR


def write_inputs(site: Site, workdir: Path) -> tuple[Path, Path]:
    """The only two files Terraform reads besides the .tf code, both derived from site.yaml."""
    var_file = workdir / TFVARS_FILE
    var_file.write_text(json.dumps(tfvars(site), indent=2) + "\n")
    backend_file = workdir / BACKEND_FILE
    backend_file.write_text(backend_hcl(site))
    return var_file, backend_file


def _terraform(workdir: Path) -> Terraform:
    return Terraform(working_dir=str(workdir), terraform_bin_path=require_binary("terraform", INSTALL_HINT))


def _call(tf: Terraform, command: str, **options: Any) -> int | None:
    """Runs a Terraform command with its output on our stdout/stderr (its prompts need a terminal).

    python-terraform hands sys.stdout to the subprocess, which needs a real file descriptor; where there
    is none (a test runner, a notebook) the output is captured and echoed instead.
    """
    try:
        sys.stdout.fileno(), sys.stderr.fileno()
        code, _, _ = tf.cmd(command, capture_output=False, **options)
    except (AttributeError, io.UnsupportedOperation):
        code, out, err = tf.cmd(command, **options)
        sys.stdout.write(out or "")
        sys.stderr.write(err or "")
    return code


def _check(code: int | None, step: str) -> None:
    if code != 0:
        raise InfraError(f"terraform {step} failed (exit {code}); its output is above")


def _init(site: Site, workdir: Path, need_cloud: bool, quiet: bool = False) -> tuple[Terraform, Path]:
    """Checks, writes the inputs and runs `terraform init` against the object-store backend."""
    tf = _terraform(workdir)
    require_filled(site)
    require_state_credentials()
    if need_cloud:  # reading outputs needs the state only; planning talks to OpenStack
        require_cloud(site)
    var_file, backend_file = write_inputs(site, workdir)
    # python-terraform's init() would add -backend=true -reconfigure; spelled out here instead.
    init = {"backend_config": backend_file.name, "reconfigure": IsFlagged, "input": False, "no_color": IsFlagged}
    if quiet:  # only a failure's output matters when init is a step of reading outputs
        code, out, err = tf.cmd("init", **init)
        if code != 0:
            sys.stderr.write((out or "") + (err or ""))
    else:
        code = _call(tf, "init", **init)
    _check(code, "init")
    return tf, var_file


def run(action: str, site: Site, auto_approve: bool = False, workdir: Path | None = None) -> None:
    """init + plan/apply/destroy with the site's variables; Terraform's own output streams through."""
    if action not in ACTIONS:
        raise InfraError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    workdir = workdir or terraform_dir()
    tf, var_file = _init(site, workdir, need_cloud=True)
    options: dict[str, Any] = {"var_file": var_file.name, "no_color": IsFlagged}
    if action == "plan":
        code = _call(tf, "plan", input=False, **options)
    elif auto_approve:
        code = _call(tf, action, auto_approve=IsFlagged, input=False, **options)
    else:  # Terraform shows the plan and asks for "yes" on the terminal
        code = _call(tf, action, **options)
    _check(code, action)


def outputs(site: Site, workdir: Path | None = None) -> dict[str, Any]:
    """`terraform output -json` of the applied cluster, read from the remote state."""
    workdir = workdir or terraform_dir()
    tf, _ = _init(site, workdir, need_cloud=False, quiet=True)
    code, out, err = tf.cmd("output", json=IsFlagged, no_color=IsFlagged)
    if code != 0:
        lines = (err or out or "").strip().splitlines()
        raise InfraError(f"terraform output failed: {lines[-1] if lines else f'exit {code}'}")
    data = json.loads(out or "{}")
    if not data:
        raise InfraError("the cluster has no outputs yet: run `aidetect infra apply` first")
    return data
