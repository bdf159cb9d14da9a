"""Terraform for the standing cluster, driven through python-terraform.

    cluster.run("plan", site)      # writes tfvars + backend settings from site.yaml, init, plan
    cluster.run("apply", site, auto_approve=True)
    cluster.outputs()              # `terraform output -json`, for the inventory and the GPU stack

The generated terraform.tfvars.json and backend.s3.tfbackend are gitignored: site.yaml is the source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from infra.config import TERRAFORM_DIR, Site, backend_hcl, tfvars
from infra.preflight import InfraError, require_binary, require_cloud, require_filled, require_state_credentials

TFVARS_FILE = "terraform.tfvars.json"
BACKEND_FILE = "backend.s3.tfbackend"
INSTALL_HINT = "install Terraform >= 1.7 (https://developer.hashicorp.com/terraform/install)"
ACTIONS = ("plan", "apply", "destroy")


def write_inputs(site: Site, workdir: Path = TERRAFORM_DIR) -> tuple[Path, Path]:
    """The only two files Terraform reads besides the .tf code, both derived from site.yaml."""
    var_file = workdir / TFVARS_FILE
    var_file.write_text(json.dumps(tfvars(site), indent=2) + "\n")
    backend_file = workdir / BACKEND_FILE
    backend_file.write_text(backend_hcl(site))
    return var_file, backend_file


def _terraform(workdir: Path) -> Terraform:
    return Terraform(working_dir=str(workdir), terraform_bin_path=require_binary("terraform", INSTALL_HINT))


def _check(code: int | None, step: str) -> None:
    if code != 0:
        raise InfraError(f"terraform {step} failed (exit {code}); its output is above")


def run(action: str, site: Site, auto_approve: bool = False, workdir: Path = TERRAFORM_DIR) -> None:
    """init + plan/apply/destroy with the site's variables; Terraform's own output streams through."""
    if action not in ACTIONS:
        raise InfraError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    tf = _terraform(workdir)
    require_filled(site)
    require_state_credentials()
    require_cloud(site)
    var_file, backend_file = write_inputs(site, workdir)
    os.environ.setdefault("TF_IN_AUTOMATION", "1")

    code, _, _ = tf.init(backend_config=backend_file.name, capture_output=False)
    _check(code, "init")
    # Prompts stay on unless --yes: apply and destroy then ask for confirmation on the terminal.
    approve = {"auto_approve": IsFlagged, "input": False} if auto_approve else {}
    options: dict[str, Any] = {"var_file": var_file.name, "no_color": IsFlagged, "capture_output": False}
    if action == "plan":
        code, _, _ = tf.cmd("plan", input=False, **options)
    else:
        code, _, _ = tf.cmd(action, **approve, **options)
    _check(code, action)


def outputs(workdir: Path = TERRAFORM_DIR) -> dict[str, Any]:
    """`terraform output -json` of the applied cluster (reads the remote state)."""
    tf = _terraform(workdir)
    if not (workdir / ".terraform").is_dir():
        raise InfraError("terraform is not initialised here: run `aidetect infra plan` or `apply` first")
    code, out, err = tf.cmd("output", json=IsFlagged, no_color=IsFlagged)
    if code != 0:
        raise InfraError(f"terraform output failed: {(err or out).strip().splitlines()[-1] if (err or out) else code}")
    data = json.loads(out or "{}")
    if not data:
        raise InfraError("the cluster has no outputs yet: run `aidetect infra apply` first")
    return data
