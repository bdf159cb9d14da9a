"""Checks that run before any engine does, so a missing tool or credential is one clear line.

Each check raises InfraError with a message that says what to do; none of them talks to the cloud.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import yaml

from infra.config import Site, placeholders


class InfraError(RuntimeError):
    """Something the user must fix before the infrastructure commands can run."""


def require_binary(name: str, how_to_get: str, env: Mapping[str, str] | None = None) -> str:
    path = shutil.which(name, path=(env or os.environ).get("PATH"))
    if not path:
        raise InfraError(f"the {name} binary is not on PATH; {how_to_get}")
    return path


def require_filled(site: Site) -> None:
    holes = placeholders(site)
    if holes:
        raise InfraError(f"infra/site.yaml still has placeholders: {', '.join(holes)}")


def clouds_yaml_candidates(env: Mapping[str, str], home: Path, cwd: Path) -> list[Path]:
    """Where openstacksdk looks for clouds.yaml, in its order."""
    explicit = [Path(env["OS_CLIENT_CONFIG_FILE"])] if env.get("OS_CLIENT_CONFIG_FILE") else []
    return explicit + [
        cwd / "clouds.yaml",
        home / ".config/openstack/clouds.yaml",
        Path("/etc/openstack/clouds.yaml"),
    ]


def require_cloud(
    site: Site, env: Mapping[str, str] | None = None, home: Path | None = None, cwd: Path | None = None
) -> None:
    env = env if env is not None else os.environ
    if env.get("OS_AUTH_URL"):  # an openrc file was sourced instead
        return
    for path in clouds_yaml_candidates(env, home or Path.home(), cwd or Path.cwd()):
        if path.is_file():
            clouds = (yaml.safe_load(path.read_text()) or {}).get("clouds") or {}
            if site.cloud in clouds:
                return
            raise InfraError(f"{path} has no cloud named {site.cloud!r} (the `cloud` of infra/site.yaml)")
    raise InfraError(
        f"no OpenStack credentials: put a {site.cloud!r} entry in ~/.config/openstack/clouds.yaml "
        "(see infra/clouds.yaml.example) or source the site's openrc file"
    )


def require_state_credentials(env: Mapping[str, str] | None = None) -> None:
    env = env if env is not None else os.environ
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(v)]
    if missing:
        raise InfraError(
            f"{' and '.join(missing)} not set: the state lives in Chameleon's object store; "
            "create EC2 credentials with `openstack ec2 credentials create` and export them"
        )
