"""`gpu up` / `gpu down` through the Automation API, with the stack faked (no Pulumi CLI here)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import pulumi
import pytest
import yaml
from pulumi.automation import OutputValue
from pulumi.dynamic.dynamic import serialize_provider

from infra import cluster, config, gpu
from infra.config import parse_site, pulumi_config
from infra.preflight import InfraError
from infra.pulumi.lease import LeaseProvider
from infra.pulumi.program import GpuStackSettings

TF_OUTPUTS = {
    "network_id": {"value": "net-1"},
    "subnet_id": {"value": "sub-1"},
    "secgroup_id": {"value": "sg-1"},
}


def site():
    raw = yaml.safe_load(config.DEFAULT_SITE_FILE.read_text())
    raw.update(project="CHI-123456", key_pair="laptop")
    raw["network"]["admin_cidrs"] = ["198.51.100.7/32"]
    raw["state"]["bucket"] = "aidetect-state"
    return parse_site(raw)


class FakeStack:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.config: dict[str, str] = {}

    def set_all_config(self, values):
        self.config = {k: v.value for k, v in values.items()}

    def up(self, on_output=None):
        self.calls.append("up")
        outputs = {"gpu_node_name": OutputValue("aidetect-gpu", False), "lease_id": OutputValue("l-1", False)}
        return type("UpResult", (), {"outputs": outputs})()

    def refresh(self, on_output=None):
        self.calls.append("refresh")

    def destroy(self, on_output=None):
        self.calls.append("destroy")


@pytest.fixture
def ready(tmp_path, monkeypatch):
    """A fake pulumi binary, credentials and a passphrase; the stack and Terraform outputs faked."""
    pulumi_bin = tmp_path / "pulumi"
    pulumi_bin.write_text("#!/bin/sh\nexit 1\n")
    pulumi_bin.chmod(pulumi_bin.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  chameleon: {}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    for var, value in (
        ("AWS_ACCESS_KEY_ID", "ak"),
        ("AWS_SECRET_ACCESS_KEY", "sk"),
        ("PULUMI_CONFIG_PASSPHRASE", "p"),
    ):
        monkeypatch.setenv(var, value)
    stack = FakeStack()
    monkeypatch.setattr(gpu, "_stack", lambda _site: stack)
    monkeypatch.setattr(cluster, "outputs", lambda _site: TF_OUTPUTS)
    return stack


def test_up_requests_the_lease_for_the_asked_hours(ready):
    outputs = gpu.up(site(), hours=2, echo=lambda _line: None)
    assert ready.calls == ["up"]
    assert ready.config["requested"] == "true"
    assert float(ready.config["leaseHours"]) == 2
    assert ready.config["networkId"] == "net-1"
    assert outputs == {"gpu_node_name": "aidetect-gpu", "lease_id": "l-1"}


def test_up_defaults_to_the_site_lease_length(ready):
    gpu.up(site(), echo=lambda _line: None)
    assert float(ready.config["leaseHours"]) == 4


def test_up_refuses_a_non_positive_lease(ready):
    with pytest.raises(InfraError, match="--hours"):
        gpu.up(site(), hours=0)


def test_down_refreshes_before_destroying(ready):
    gpu.down(site(), echo=lambda _line: None)
    assert ready.calls == ["refresh", "destroy"]  # a lease that already ended must not fail the destroy


def test_workspace_env_points_pulumi_at_the_object_store():
    env = gpu._workspace_env(site())
    url = urlsplit(env["PULUMI_BACKEND_URL"])
    assert (url.scheme, url.netloc) == ("s3", "aidetect-state")
    assert str(gpu.REPO_ROOT) in env["PYTHONPATH"].split(":")


class NoResources(pulumi.runtime.Mocks):
    def new_resource(self, args):
        raise AssertionError("reading config creates nothing")

    def call(self, args):
        return {}


def test_the_config_the_driver_writes_is_the_config_the_program_reads():
    values = pulumi_config(site(), TF_OUTPUTS, requested=True, hours=2)
    pulumi.runtime.set_mocks(NoResources(), project=config.PULUMI_PROJECT, preview=False)
    try:
        pulumi.runtime.set_all_config({f"{config.PULUMI_PROJECT}:{k}": v for k, v in values.items()})
        settings = GpuStackSettings.from_config(pulumi.Config())
    finally:
        pulumi.runtime.set_all_config({})
    assert settings == GpuStackSettings(
        cloud="chameleon",
        name_prefix="aidetect",
        key_pair="laptop",
        region="KVM@TACC",
        project="CHI-123456",
        network_id="net-1",
        subnet_id="sub-1",
        secgroup_id="sg-1",
        requested=True,
        lease_hours=2,
        lease_wait_minutes=30,
    )


def test_the_lease_provider_loads_in_the_separate_process_pulumi_starts(tmp_path):
    """Pulumi pickles the dynamic provider by reference; its host process must import `infra` again."""
    serialized = serialize_provider(LeaseProvider())
    script = (
        "import base64, sys, dill\n"
        "p = dill.loads(base64.b64decode(sys.argv[1]))\n"
        "print(type(p).__module__, p.diff('id', {'hours': 4}, {'hours': 8}).replaces)\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": gpu._workspace_env(site())["PYTHONPATH"]}
    out = subprocess.run(
        [sys.executable, "-c", script, serialized], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["infra.pulumi.lease", "['hours']"]
