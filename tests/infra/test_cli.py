"""`aidetect infra ...`: clear one-line errors where it cannot run, the right Terraform calls where it can.

A fake `terraform` on PATH records how python-terraform calls it; the real binary is exercised by
test_terraform.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra import config

FAKE_TERRAFORM = """#!/bin/sh
echo "$PWD|$*" >> "$FAKE_TF_LOG"
case " $FAKE_TF_FAIL " in *" $1 "*) echo "Error: $1 went wrong" >&2; exit 1;; esac
if [ "$1" = output ]; then cat "$FAKE_TF_OUTPUTS"; fi
exit 0
"""

TF_OUTPUTS = {
    "control_public_ip": {"value": "129.114.0.10"},
    "node_names": {"value": ["aidetect-node-1", "aidetect-node-2", "aidetect-node-3"]},
    "node_private_ips": {"value": ["192.168.50.10", "192.168.50.11", "192.168.50.12"]},
    "ssh_user": {"value": "cc"},
    "network_cidr": {"value": "192.168.50.0/24"},
    "network_id": {"value": "net-1"},
    "subnet_id": {"value": "sub-1"},
    "secgroup_id": {"value": "sg-1"},
}


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean environment: empty PATH (plus sh), HOME without clouds.yaml, a Terraform dir copy."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for var in (
        "OS_CLOUD",
        "OS_AUTH_URL",
        "OS_CLIENT_CONFIG_FILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PULUMI_CONFIG_PASSPHRASE",
        "PULUMI_CONFIG_PASSPHRASE_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "terraform"
    shutil.copytree(config.TERRAFORM_DIR, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfvars.json"))
    monkeypatch.setattr(config, "TERRAFORM_DIR", work)
    monkeypatch.setenv("FAKE_TF_LOG", str(tmp_path / "terraform.log"))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(TF_OUTPUTS))
    monkeypatch.setenv("FAKE_TF_OUTPUTS", str(outputs))
    return {"bin": bin_dir, "tmp": tmp_path, "work": work, "mp": monkeypatch}


def filled_site(tmp_path: Path) -> Path:
    raw = yaml.safe_load(config.DEFAULT_SITE_FILE.read_text())
    raw.update(project="CHI-123456", key_pair="laptop")
    raw["network"]["admin_cidrs"] = ["198.51.100.7/32"]
    raw["state"]["bucket"] = "aidetect-state"
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def ready(env) -> Path:
    """Everything present: fake terraform, state credentials, a clouds.yaml entry."""
    executable(env["bin"] / "terraform", FAKE_TERRAFORM)
    env["mp"].setenv("AWS_ACCESS_KEY_ID", "ak")
    env["mp"].setenv("AWS_SECRET_ACCESS_KEY", "sk")
    clouds = env["tmp"] / "clouds.yaml"
    clouds.write_text("clouds:\n  chameleon:\n    auth: {auth_url: 'https://example.invalid/v3'}\n")
    return filled_site(env["tmp"])


def invoke(*args: str):
    """Through the root command, which turns the errors a user can fix into one line."""
    from aidetect.cli import app

    return CliRunner().invoke(app, ["infra", *args])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidetect: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def calls(env) -> list[list[str]]:
    log = env["tmp"] / "terraform.log"
    return [line.split("|", 1)[1].split() for line in log.read_text().splitlines()] if log.exists() else []


def test_infra_is_registered_on_the_main_cli():
    from aidetect.cli import app

    assert "infra" in [group.name for group in app.registered_groups]


def test_plan_without_terraform_binary(env):
    one_line_error(invoke("plan", "--site", str(filled_site(env["tmp"]))), "terraform binary is not on PATH")


def test_plan_with_placeholders_left(env):
    executable(env["bin"] / "terraform", FAKE_TERRAFORM)
    one_line_error(invoke("plan"), "placeholders", "key_pair", "network.admin_cidrs")


def test_plan_without_state_credentials(env):
    executable(env["bin"] / "terraform", FAKE_TERRAFORM)
    one_line_error(invoke("plan", "--site", str(filled_site(env["tmp"]))), "AWS_ACCESS_KEY_ID", "ec2 credentials")


def test_plan_without_openstack_credentials(env):
    site = ready(env)
    (env["tmp"] / "clouds.yaml").unlink()
    one_line_error(invoke("plan", "--site", str(site)), "no OpenStack credentials", "'chameleon'")


def test_plan_with_a_clouds_yaml_lacking_the_cloud(env):
    site = ready(env)
    (env["tmp"] / "clouds.yaml").write_text("clouds:\n  other: {}\n")
    one_line_error(invoke("plan", "--site", str(site)), "no cloud named 'chameleon'")


def test_plan_inits_the_object_store_backend_and_plans_with_the_site_variables(env):
    result = invoke("plan", "--site", str(ready(env)))
    assert result.exit_code == 0, result.output
    init, plan = calls(env)
    assert init[0] == "init" and "-backend-config=backend.s3.tfbackend" in init
    assert plan[0] == "plan" and "-var-file=terraform.tfvars.json" in plan and "-input=false" in plan
    tfvars = json.loads((env["work"] / "terraform.tfvars.json").read_text())
    assert (tfvars["node_count"], tfvars["node_flavor"], tfvars["admin_cidrs"]) == (
        3,
        "m1.medium",
        ["198.51.100.7/32"],
    )
    backend = (env["work"] / "backend.s3.tfbackend").read_text()
    assert 'bucket    = "aidetect-state"' in backend


def test_apply_and_destroy_approve_only_with_yes(env):
    site = str(ready(env))
    assert invoke("apply", "--site", site, "--yes").exit_code == 0
    assert invoke("destroy", "--site", site).exit_code == 0
    applied = [c for c in calls(env) if c[0] == "apply"][0]
    destroyed = [c for c in calls(env) if c[0] == "destroy"][0]
    assert "-auto-approve" in applied
    assert "-auto-approve" not in destroyed and "-force" not in destroyed  # Terraform asks on the terminal


def test_a_failing_terraform_step_is_one_line(env):
    site = str(ready(env))
    env["mp"].setenv("FAKE_TF_FAIL", "plan")
    result = invoke("plan", "--site", site)
    assert result.exit_code == 2
    # Terraform's own diagnostics come first, then exactly one line of ours.
    assert result.stderr.splitlines() == [
        "Error: plan went wrong",
        "aidetect: error: terraform plan failed (exit 1); its output is above",
    ]


def test_inventory_from_terraform_outputs(env):
    site = str(ready(env))
    target = env["tmp"] / "inventory" / "generated.yml"
    result = invoke("inventory", "--site", site, "--output", str(target))
    assert result.exit_code == 0, result.output
    inv = yaml.safe_load(target.read_text())
    groups = inv["all"]["children"]["k3s_cluster"]["children"]
    assert list(groups["control"]["hosts"]) == ["aidetect-node-1"]
    assert list(groups["workers"]["hosts"]) == ["aidetect-node-2", "aidetect-node-3"]
    assert groups["gpu"]["hosts"] == {}
    assert "no GPU stack" in result.stderr
    assert any(c[0] == "output" and "-json" in c for c in calls(env))


def test_gpu_up_without_pulumi_cli(env):
    one_line_error(invoke("gpu", "up", "--hours", "4", "--site", str(ready(env))), "Pulumi CLI", "pulumi binary")


def test_gpu_up_without_passphrase(env):
    site = str(ready(env))
    executable(env["bin"] / "pulumi", "#!/bin/sh\nexit 1\n")
    one_line_error(invoke("gpu", "up", "--site", site), "PULUMI_CONFIG_PASSPHRASE")


def test_gpu_down_without_pulumi_cli(env):
    one_line_error(invoke("gpu", "down", "--site", str(ready(env))), "Pulumi CLI")


def test_help_is_real():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("plan", "apply", "destroy", "inventory", "gpu"):
        assert command in result.output
    assert "--hours" in invoke("gpu", "up", "--help").output


def test_an_engine_failure_is_one_line_naming_the_error(env, monkeypatch):
    from infra import gpu

    def fail(*_args, **_kwargs):
        raise RuntimeError("\n code: 255\n stdout: Updating (gpu)\n stderr: error: lease quota exceeded\n  at x\n")

    monkeypatch.setattr(gpu, "up", fail)
    one_line_error(invoke("gpu", "up", "--site", str(filled_site(env["tmp"]))), "error: lease quota exceeded")


def test_missing_infra_extra_is_one_line(env, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_terraform(name, *args, **kwargs):
        if name == "python_terraform":
            raise ImportError("No module named 'python_terraform'", name="python_terraform")
        return real_import(name, *args, **kwargs)

    import infra

    for module in ("cluster", "gpu"):  # make `from infra import cluster` import afresh
        monkeypatch.delitem(sys.modules, f"infra.{module}", raising=False)
        monkeypatch.delattr(infra, module, raising=False)
    monkeypatch.setattr(builtins, "__import__", no_terraform)
    one_line_error(invoke("plan", "--site", str(filled_site(env["tmp"]))), "python_terraform is missing", "[infra]")
