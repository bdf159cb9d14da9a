"""Fixtures of the infra tests: a fake OpenStack on loopback and clouds.yaml pointing at it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Helpers beside this file (the fake cloud, the stand-in Terraform provider) import by plain name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openstack import FakeOpenStack, FakeState  # noqa: E402


@pytest.fixture
def fake_cloud(tmp_path, monkeypatch):
    """A running fake Keystone + Blazar and a clouds.yaml entry `fake` for it."""
    for var in ("OS_CLOUD", "OS_AUTH_URL", "OS_AUTH_TYPE", "OS_REGION_NAME", "OS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with FakeOpenStack(FakeState()) as fake:
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(fake.clouds_yaml("fake"))
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        yield fake
