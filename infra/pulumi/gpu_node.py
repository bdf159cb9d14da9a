"""The leased GPU node: a port on the cluster network, the instance booted on the reservation, and a
floating IP that lives exactly as long as the node.

    node = GpuNode("gpu", GpuNodeArgs(..., reservation_id=lease.reservation_id, flavor_id=lease.flavor_id))

The network, subnet and security group are Terraform's; this component only references them by id.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack


@dataclass
class GpuNodeArgs:
    name: str  # instance name, also the inventory host name
    key_pair: str
    image: str
    network_id: pulumi.Input[str]  # Terraform's cluster network
    subnet_id: pulumi.Input[str]
    secgroup_id: pulumi.Input[str]  # Terraform's cluster security group (allowlist rules live there)
    external_network: str  # floating IP pool
    reservation_id: pulumi.Input[str]  # Blazar reservation the node must land on
    flavor_id: pulumi.Input[str] = ""  # the reservation's flavor (flavor:instance leases)
    flavor_name: pulumi.Input[str] = ""  # the flavor of reserved hosts (physical:host leases)
    project: str = ""  # Chameleon project, recorded in the node's metadata


def _either(flavor_id: str, flavor_name: str) -> tuple[str | None, str | None]:
    # The provider rejects both being set; an empty string means "not this one".
    return (flavor_id or None, None) if flavor_id else (None, flavor_name or None)


class GpuNode(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    instance_name: pulumi.Output[str]

    def __init__(self, name: str, args: GpuNodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aidetect:infra:GpuNode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.port = openstack.networking.Port(
            f"{name}-port",
            name=f"{args.name}-port",
            network_id=args.network_id,
            admin_state_up=True,
            security_group_ids=[args.secgroup_id],
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=args.subnet_id)],
            opts=child,
        )

        flavors = pulumi.Output.all(args.flavor_id, args.flavor_name).apply(lambda f: _either(f[0], f[1]))
        self.instance = openstack.compute.Instance(
            f"{name}-instance",
            name=args.name,
            image_name=args.image,
            flavor_id=flavors.apply(lambda f: f[0]),
            flavor_name=flavors.apply(lambda f: f[1]),
            key_pair=args.key_pair,
            networks=[openstack.compute.InstanceNetworkArgs(port=self.port.id)],
            # Without the hint Nova would not place the node on the reserved host.
            scheduler_hints=[
                openstack.compute.InstanceSchedulerHintArgs(additional_properties={"reservation": args.reservation_id})
            ],
            metadata={"role": "gpu", "managed_by": "pulumi", "project": args.project},
            opts=child,
        )

        self.floating_ip = openstack.networking.FloatingIp(
            f"{name}-fip",
            pool=args.external_network,
            description=f"{args.name} (leased GPU node)",
            opts=child,
        )
        self.fip_association = openstack.networking.FloatingIpAssociate(
            f"{name}-fip-association",
            floating_ip=self.floating_ip.address,
            port_id=self.port.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.instance]),
        )

        self.public_ip = self.floating_ip.address
        self.private_ip = self.port.all_fixed_ips.apply(lambda ips: ips[0] if ips else "")
        self.instance_name = self.instance.name
        self.register_outputs(
            {"public_ip": self.public_ip, "private_ip": self.private_ip, "instance_name": self.instance_name}
        )
