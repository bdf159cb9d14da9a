"""infra/site.yaml, read once and turned into what each engine wants.

    site = load_site()                  # the single source: site, project, key pair, CIDRs, nodes, GPU, state
    tfvars(site)                        # -> Terraform variables (written as terraform.tfvars.json)
    backend_hcl(site)                   # -> the S3 backend's settings (a .tfbackend file)
    pulumi_config(site, tf_outputs)     # -> Pulumi stack config of the GPU stack
    pulumi_backend_url(site)            # -> s3:// URL of the Pulumi state in the same object store

Pure functions over a frozen dataclass; only load_site touches the disk.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

INFRA_DIR = Path(__file__).resolve().parent
DEFAULT_SITE_FILE = INFRA_DIR / "site.yaml"
TERRAFORM_DIR = INFRA_DIR / "terraform"
PULUMI_DIR = INFRA_DIR / "pulumi"
PULUMI_PROJECT = "aidetect-gpu"

_PLACEHOLDER = re.compile(r"<[^<>]+>")


class SiteError(ValueError):
    """site.yaml is missing, malformed or still holds placeholders."""


@dataclass(frozen=True)
class Network:
    cidr: str = "192.168.50.0/24"  # cluster subnet
    external: str = "public"  # external network / floating IP pool
    dns: tuple[str, ...] = ("8.8.8.8", "8.8.4.4")
    admin_cidrs: tuple[str, ...] = ()  # ssh + Kubernetes API allowlist
    web_cidrs: tuple[str, ...] = ("0.0.0.0/0",)  # public endpoint 80/443


@dataclass(frozen=True)
class Cluster:
    node_count: int = 3
    flavor: str = "m1.medium"
    image: str = "CC-Ubuntu24.04"


@dataclass(frozen=True)
class Gpu:
    node_type: str = "gpu_a100"  # Blazar $node_type of the reserved host
    resource_type: str = "physical:host"  # or flavor:instance
    flavor: str = "baremetal"  # flavor on reserved hosts (a flavor:instance lease brings its own)
    image: str = "CC-Ubuntu24.04-CUDA"
    lease_hours: float = 4  # hours per lease block
    lease_wait_minutes: float = 30  # how long to wait for ACTIVE

    def resource_properties(self) -> list[str]:
        return ["==", "$node_type", self.node_type]


@dataclass(frozen=True)
class State:
    endpoint: str = ""  # S3 endpoint of the site's object store (https://host:port)
    region: str = "us-east-1"
    bucket: str = ""
    terraform_key: str = "terraform/cluster.tfstate"
    pulumi_prefix: str = "pulumi"
    pulumi_stack: str = "gpu"
    lock: bool = False  # Terraform's S3 lock file; needs conditional writes in the object store


@dataclass(frozen=True)
class Site:
    site: str
    cloud: str
    project: str
    key_pair: str
    ssh_user: str = "cc"
    name_prefix: str = "aidetect"
    network: Network = field(default_factory=Network)
    cluster: Cluster = field(default_factory=Cluster)
    gpu: Gpu = field(default_factory=Gpu)
    state: State = field(default_factory=State)


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SiteError(f"{where} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SiteError(f"unknown key {where}.{unknown[0]} in site.yaml")
    nested = {"network": Network, "cluster": Cluster, "gpu": Gpu, "state": State}
    values = {}
    for name, value in raw.items():
        if cls is Site and name in nested:
            values[name] = _build(nested[name], value, name)
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in values and f.default is MISSING and f.default_factory is MISSING
        ]
        raise SiteError(f"site.yaml misses {where}.{missing[0] if missing else '?'}") from exc


def parse_site(raw: Any) -> Site:
    site = _build(Site, raw, "site")
    if site.cluster.node_count < 1:
        raise SiteError("cluster.node_count must be at least 1")
    if site.gpu.lease_hours <= 0:
        raise SiteError("gpu.lease_hours must be positive")
    return site


def load_site(path: Path | str = DEFAULT_SITE_FILE) -> Site:
    path = Path(path)
    if not path.is_file():
        raise SiteError(f"no site file at {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SiteError(f"{path} is not valid YAML: {exc}") from exc
    return parse_site(raw)


def placeholders(site: Site) -> list[str]:
    """Dotted names of the values still holding a <placeholder>."""

    def walk(obj: Any, prefix: str) -> list[str]:
        if hasattr(obj, "__dataclass_fields__"):
            return [hit for f in fields(obj) for hit in walk(getattr(obj, f.name), f"{prefix}{f.name}.")]
        values = obj if isinstance(obj, tuple) else (obj,)
        return [prefix.rstrip(".")] if any(isinstance(v, str) and _PLACEHOLDER.search(v) for v in values) else []

    return walk(site, "")


def tfvars(site: Site) -> dict[str, Any]:
    """Terraform variables (infra/terraform/variables.tf) from the site file."""
    return {
        "cloud": site.cloud,
        "region": site.site,
        "project": site.project,
        "name_prefix": site.name_prefix,
        "key_pair": site.key_pair,
        "ssh_user": site.ssh_user,
        "network_cidr": site.network.cidr,
        "external_network": site.network.external,
        "dns_nameservers": list(site.network.dns),
        "admin_cidrs": list(site.network.admin_cidrs),
        "web_cidrs": list(site.network.web_cidrs),
        "node_count": site.cluster.node_count,
        "node_flavor": site.cluster.flavor,
        "node_image": site.cluster.image,
    }


def backend_hcl(site: Site) -> str:
    """The S3 backend's per-site settings as a .tfbackend file; the fixed ones are in versions.tf."""
    return (
        f'bucket    = "{site.state.bucket}"\n'
        f'key       = "{site.state.terraform_key}"\n'
        f'region    = "{site.state.region}"\n'
        f'endpoints = {{ s3 = "{site.state.endpoint}" }}\n'
        f"use_lockfile = {'true' if site.state.lock else 'false'}\n"
    )


def pulumi_backend_url(site: Site) -> str:
    """Pulumi's DIY S3 backend in the same bucket as Terraform's state, under its own prefix."""
    endpoint = urlsplit(site.state.endpoint)
    query = {
        "endpoint": endpoint.netloc or site.state.endpoint,
        "s3ForcePathStyle": "true",
        "region": site.state.region,
    }
    if endpoint.scheme == "http":
        query["disableSSL"] = "true"
    prefix = site.state.pulumi_prefix.strip("/")
    return f"s3://{site.state.bucket}/{prefix}?{urlencode(query)}"


def pulumi_config(site: Site, tf_outputs: dict[str, Any], requested: bool, hours: float) -> dict[str, str]:
    """Stack config of the GPU stack: the site's GPU settings plus the ids Terraform's cluster exposes."""

    def out(name: str) -> Any:
        if name not in tf_outputs:
            raise SiteError(f"terraform output {name} is missing: run `aidetect infra apply` first")
        value = tf_outputs[name]
        return value["value"] if isinstance(value, dict) and "value" in value else value

    return {
        "cloud": site.cloud,
        "region": site.site,
        "project": site.project,
        "namePrefix": site.name_prefix,
        "keyPair": site.key_pair,
        "requested": "true" if requested else "false",
        "leaseHours": str(hours),
        "leaseWaitMinutes": str(site.gpu.lease_wait_minutes),
        "nodeType": site.gpu.node_type,
        "resourceType": site.gpu.resource_type,
        "flavor": site.gpu.flavor,
        "image": site.gpu.image,
        "externalNetwork": site.network.external,
        "networkId": out("network_id"),
        "subnetId": out("subnet_id"),
        "secgroupId": out("secgroup_id"),
    }
