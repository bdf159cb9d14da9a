"""Static checks of ansible/: the README's check block (ansible-lint, syntax-check), and that
inventory-sample.yml and the roles' defaults agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
ROLES = sorted(p.name for p in (ANSIBLE_DIR / "roles").iterdir() if p.is_dir())
REQUIRED = ["common_users", "k3s_server_token", "k3s_agent_token", "argocd_root_app_repo_url"]


def readme_block(heading: str) -> str:
    """The first ```sh block after `## heading` in ansible/README.md."""
    text = (ANSIBLE_DIR / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text()) or {}


@pytest.mark.slow
def test_readme_check_block_passes(tmp_path):
    block = readme_block("Checks")
    assert "ansible-lint --offline --profile production" in block and "--syntax-check" in block
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        # Caches and collections go to the temporary directory, not ~ or the repository.
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "NO_COLOR": "1",
    }
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ANSIBLE_DIR, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
    assert re.search(r"--@control:\n[ |]*--control-1\n", result.stdout)


def test_every_default_carries_its_role_prefix():
    for role in ROLES:
        for name in role_defaults(role):
            assert name.startswith(f"{role}_"), f"{role}: {name}"


def test_inventory_sample_lists_every_variable_required_first():
    sample = yaml.safe_load((ANSIBLE_DIR / "inventory-sample.yml").read_text())
    listed = list(sample["all"]["vars"])
    defaults = {name for role in ROLES for name in role_defaults(role)}
    assert set(listed) == defaults | set(REQUIRED)
    assert listed[: len(REQUIRED)] == REQUIRED
    assert sorted(sample["all"]["children"]) == ["control", "gpu", "workers"]


def test_inventory_sample_optional_values_are_the_defaults():
    sample = yaml.safe_load((ANSIBLE_DIR / "inventory-sample.yml").read_text())["all"]["vars"]
    for role in ROLES:
        for name, value in role_defaults(role).items():
            if name not in REQUIRED:
                assert sample[name] == value, name
