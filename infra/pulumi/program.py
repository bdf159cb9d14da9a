"""What the GPU stack contains, from its config: nothing unless a lease is requested, else the lease
and the node booted on it.

    build(GpuStackSettings.from_config(pulumi.Config()))   # what __main__.py does
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from infra.pulumi.gpu_node import GpuNode, GpuNodeArgs
from infra.pulumi.lease import BlazarLease, LeaseArgs


@dataclass(frozen=True)
class GpuStackSettings:
    cloud: str
    name_prefix: str
    key_pair: str
    network_id: str  # from Terraform's outputs
    subnet_id: str
    secgroup_id: str
    region: str = ""  # Chameleon site = OpenStack region; empty: clouds.yaml's
    project: str = ""  # Chameleon project, recorded on the node
    requested: bool = False  # `gpu up` sets it; `gpu down` destroys the stack
    lease_hours: float = 4
    lease_wait_minutes: float = 30
    node_type: str = "gpu_a100"
    resource_type: str = "physical:host"
    flavor: str = "baremetal"
    image: str = "CC-Ubuntu24.04-CUDA"
    external_network: str = "public"

    @classmethod
    def from_config(cls, config: pulumi.Config) -> GpuStackSettings:
        return cls(
            cloud=config.require("cloud"),
            name_prefix=config.get("namePrefix") or "aidetect",
            key_pair=config.require("keyPair"),
            network_id=config.require("networkId"),
            subnet_id=config.require("subnetId"),
            secgroup_id=config.require("secgroupId"),
            region=config.get("region") or "",
            project=config.get("project") or "",
            requested=config.get_bool("requested") or False,
            lease_hours=config.get_float("leaseHours") or 4,
            lease_wait_minutes=config.get_float("leaseWaitMinutes") or 30,
            node_type=config.get("nodeType") or "gpu_a100",
            resource_type=config.get("resourceType") or "physical:host",
            flavor=config.get("flavor") or "baremetal",
            image=config.get("image") or "CC-Ubuntu24.04-CUDA",
            external_network=config.get("externalNetwork") or "public",
        )


def build(settings: GpuStackSettings) -> GpuNode | None:
    if not settings.requested:
        pulumi.export("gpu_node_name", None)
        return None

    # Credentials come from the same clouds.yaml entry as Terraform's, named in site.yaml.
    cloud = openstack.Provider("chameleon", cloud=settings.cloud, region=settings.region or None)
    lease = BlazarLease(
        "gpu-lease",
        LeaseArgs(
            cloud=settings.cloud,
            region=settings.region,
            name=f"{settings.name_prefix}-gpu",
            hours=settings.lease_hours,
            node_type=settings.node_type,
            resource_type=settings.resource_type,
            flavor=settings.flavor,
            wait_timeout_s=settings.lease_wait_minutes * 60,
        ),
    )
    node = GpuNode(
        "gpu",
        GpuNodeArgs(
            name=f"{settings.name_prefix}-gpu",
            project=settings.project,
            key_pair=settings.key_pair,
            image=settings.image,
            network_id=settings.network_id,
            subnet_id=settings.subnet_id,
            secgroup_id=settings.secgroup_id,
            external_network=settings.external_network,
            reservation_id=lease.reservation_id,
            flavor_id=lease.flavor_id,
            flavor_name=lease.flavor_name,
        ),
        # Created after the lease and destroyed before it: a lease's end takes its host away.
        opts=pulumi.ResourceOptions(depends_on=[lease], providers={"openstack": cloud}),
    )
    pulumi.export("gpu_node_name", node.instance_name)
    pulumi.export("gpu_public_ip", node.public_ip)
    pulumi.export("gpu_private_ip", node.private_ip)
    pulumi.export("lease_id", lease.lease_id)
    pulumi.export("lease_end", lease.end_date)
    return node
