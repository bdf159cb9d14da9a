"""The leased GPU node, driven through the Pulumi Automation API (the Pulumi CLI must be installed).

    gpu.up(site, hours=4)    # lease an A100 host, boot the node on it, return the stack outputs
    gpu.down(site)           # refresh (a lease that already ended is dropped), then destroy all of it
    gpu.stack_outputs(site)  # the outputs of the last `up`, for the inventory

Also what the retrain pipeline calls to ask for the GPU and to give it back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import cluster
from infra.config import PULUMI_DIR, Site, pulumi_backend_url, pulumi_config
from infra.preflight import (
    InfraError,
    require_binary,
    require_cloud,
    require_filled,
    require_state_credentials,
)

INSTALL_HINT = (
    "install the Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/); the Automation API drives it"
)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _workspace_env(site: Site) -> dict[str, str]:
    env = {
        "PULUMI_BACKEND_URL": pulumi_backend_url(site),
        # The dynamic lease provider is unpickled in a separate process that must import `infra`.
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    return env


def _require_ready(site: Site, env: dict[str, str] | None = None) -> None:
    env = env if env is not None else dict(os.environ)
    require_binary("pulumi", INSTALL_HINT, env)
    require_filled(site)
    require_state_credentials(env)
    if not (env.get("PULUMI_CONFIG_PASSPHRASE") or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise InfraError(
            "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) not set: the object-store backend "
            "encrypts stack secrets with it"
        )
    require_cloud(site, env)


def _stack(site: Site):
    from pulumi import automation as auto  # heavy import, only when a stack is needed

    return auto.create_or_select_stack(
        stack_name=site.state.pulumi_stack,
        work_dir=str(PULUMI_DIR),
        opts=auto.LocalWorkspaceOptions(work_dir=str(PULUMI_DIR), env_vars=_workspace_env(site)),
    )


def _plain(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in outputs.items()}


def up(site: Site, hours: float | None = None, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    from pulumi import automation as auto

    _require_ready(site)
    hours = hours if hours is not None else site.gpu.lease_hours
    if hours <= 0:
        raise InfraError("--hours must be positive")
    config = pulumi_config(site, cluster.outputs(site), requested=True, hours=hours)
    stack = _stack(site)
    stack.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
    result = stack.up(on_output=echo)
    return _plain(result.outputs)


def down(site: Site, echo: Callable[[str], Any] = print) -> None:
    _require_ready(site)
    stack = _stack(site)
    stack.refresh(on_output=echo)
    stack.destroy(on_output=echo)


def stack_outputs(site: Site) -> dict[str, Any] | None:
    """Outputs of the GPU stack, or None where there is no Pulumi CLI or no stack yet."""
    try:
        require_binary("pulumi", INSTALL_HINT)
        from pulumi import automation as auto

        stack = auto.select_stack(
            stack_name=site.state.pulumi_stack,
            work_dir=str(PULUMI_DIR),
            opts=auto.LocalWorkspaceOptions(work_dir=str(PULUMI_DIR), env_vars=_workspace_env(site)),
        )
        return _plain(stack.outputs())
    except Exception:  # no CLI, no stack yet, or the backend unreachable: the inventory goes on without GPU
        return None
