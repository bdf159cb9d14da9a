"""`aidetect infra`: the Chameleon deployment from code.

    aidetect infra plan                 # Terraform plan of the standing cluster (site from infra/site.yaml)
    aidetect infra apply [--yes]        # create or update it: network, router, security group, 3 nodes, IP
    aidetect infra inventory            # Terraform + Pulumi outputs -> ansible/inventory/generated.yml
    aidetect infra gpu up --hours 4     # lease a GPU host and boot the GPU node on it (Pulumi)
    aidetect infra gpu down             # give the GPU back: node, floating IP and lease
    aidetect infra destroy [--yes]      # remove the standing cluster

Errors a user can fix (missing binary, credentials, placeholders) are one line on stderr, exit 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from aidetect.errors import fail as _fail
from infra.config import DEFAULT_SITE_FILE, SiteError, load_site

app = typer.Typer(
    help="Provision Chameleon Cloud from code: Terraform owns the standing cluster, Pulumi the leased GPU "
    "node; both read infra/site.yaml.",
    no_args_is_help=True,
)
gpu_app = typer.Typer(
    help="Leased GPU capacity (Blazar lease + GPU node), driven by the Pulumi Automation API.",
    no_args_is_help=True,
)
app.add_typer(gpu_app, name="gpu")

SiteOption = typer.Option(DEFAULT_SITE_FILE, "--site", help="site file both engines read")
YesOption = typer.Option(False, "--yes", "-y", help="do not ask for confirmation")


def _engine(fn, *args, **kwargs):
    """Runs a Terraform or Pulumi step. Errors a user can fix pass on to the root command, which shows them
    as one line; any other engine failure (a Pulumi CommandError carries pages of output) becomes one line
    naming the error, the detail above it; `aidetect -v` also logs the traceback."""
    from infra.inventory import InventoryError
    from infra.preflight import InfraError

    try:
        return fn(*args, **kwargs)
    except (SiteError, InfraError, InventoryError):
        raise
    except Exception as exc:
        logging.getLogger(__name__).debug("infra command failed", exc_info=True)
        raise _fail(f"{type(exc).__name__}: {_summary(exc)}") from None


def _summary(exc: Exception, limit: int = 300) -> str:
    """The line of an engine's error text that says what went wrong (its first `error:` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    line = errors[0] if errors else (lines[-1] if lines else "no detail")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _engines():
    """infra.cluster and infra.gpu, whose libraries come with the `infra` extra."""
    try:
        from infra import cluster, gpu
    except ImportError as exc:
        raise _fail(f"{exc.name} is missing: install the infra extra (pip install -e '.[infra]')") from None
    return cluster, gpu


def _terraform(action: str, site_file: Path, yes: bool) -> None:
    cluster, _ = _engines()
    _engine(cluster.run, action, load_site(site_file), auto_approve=yes)


@app.command()
def plan(site: Path = SiteOption) -> None:
    """Show what Terraform would change in the standing cluster."""
    _terraform("plan", site, yes=False)


@app.command()
def apply(site: Path = SiteOption, yes: bool = YesOption) -> None:
    """Create or update the standing cluster: network, subnet, router, security group, nodes, floating IP."""
    _terraform("apply", site, yes)


@app.command()
def destroy(site: Path = SiteOption, yes: bool = YesOption) -> None:
    """Remove the standing cluster (run `aidetect infra gpu down` first if a GPU node is up)."""
    _terraform("destroy", site, yes)


@app.command()
def inventory(
    site: Path = SiteOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="default: ansible/inventory/generated.yml")
    ] = None,
) -> None:
    """Write the Ansible inventory (groups control, workers, gpu) from Terraform and Pulumi outputs."""
    cluster, gpu = _engines()
    from infra.inventory import GENERATED_INVENTORY, build_inventory, write_inventory

    site_cfg = load_site(site)
    tf_outputs = _engine(cluster.outputs, site_cfg)
    gpu_outputs = gpu.stack_outputs(site_cfg)
    if gpu_outputs is None:
        typer.echo("aidetect: note: no GPU stack found; the gpu group is empty", err=True)
    inv = build_inventory(tf_outputs, gpu_outputs)
    path = write_inventory(inv, output or GENERATED_INVENTORY)
    typer.echo(str(path))


@gpu_app.command("up")
def gpu_up(
    hours: float = typer.Option(None, "--hours", help="lease length in hours (default: gpu.lease_hours)"),
    site: Path = SiteOption,
) -> None:
    """Lease a GPU host (Blazar), boot the GPU node on it with its own floating IP, wait until ACTIVE."""
    _, gpu = _engines()
    outputs = _engine(gpu.up, load_site(site), hours)
    typer.echo(
        f"GPU node {outputs.get('gpu_node_name')} at {outputs.get('gpu_public_ip')}, "
        f"lease ends {outputs.get('lease_end')}; now run `aidetect infra inventory` and the playbook"
    )


@gpu_app.command("down")
def gpu_down(site: Path = SiteOption) -> None:
    """Give the GPU back: destroy the GPU node, its floating IP and the lease."""
    _, gpu = _engines()
    _engine(gpu.down, load_site(site))
    typer.echo("GPU node, its floating IP and the lease are released")
