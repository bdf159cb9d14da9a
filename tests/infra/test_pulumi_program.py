"""Graph checks of the GPU stack with Pulumi mocks: no cloud, no Pulumi CLI."""

from __future__ import annotations

import pulumi
import pytest


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource":  # the Blazar lease, as its provider would leave it
            flavor_instance = args.inputs.get("resource_type") == "flavor:instance"
            outputs.update(
                lease_id="lease-1",
                reservation_id="resv-1",
                flavor_id="resv-1" if flavor_instance else "",
                flavor_name="" if flavor_instance else args.inputs.get("flavor"),
                end_date="2026-11-26T13:00:00.000000",
            )
        if args.typ == "openstack:networking/port:Port":
            outputs["all_fixed_ips"] = ["192.168.50.40"]
        if args.typ == "openstack:networking/floatingIp:FloatingIp":
            outputs["address"] = "129.114.0.40"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]


@pytest.fixture
def mocks():
    m = Mocks()
    pulumi.runtime.set_mocks(m, preview=False)
    yield m


def settings(**over):
    from infra.pulumi.program import GpuStackSettings

    base = dict(
        cloud="chameleon",
        name_prefix="aidetect",
        key_pair="aidetect",
        network_id="net-1",
        subnet_id="subnet-1",
        secgroup_id="sg-1",
        requested=True,
    )
    return GpuStackSettings(**{**base, **over})


def registered(node) -> pulumi.Output:
    """Resolves once every child of the node is registered with the mocks."""
    return pulumi.Output.all(
        node.port.id,
        node.instance.id,
        node.floating_ip.id,
        node.fip_association.id,
        node.public_ip,
        node.private_ip,
    )


def test_no_lease_and_no_node_unless_requested(mocks):
    from infra.pulumi.program import build

    @pulumi.runtime.test
    def program():
        assert build(settings(requested=False)) is None

    program()  # returns once every registration the program started has finished
    assert mocks.resources == []

    @pulumi.runtime.test
    def requested_program():
        build(settings())

    requested_program()
    assert len(mocks.of_type("pulumi-python:dynamic:Resource")) == 1  # the same check sees a requested lease


@pulumi.runtime.test
def test_node_boots_on_the_reservation_with_the_scheduler_hint(mocks):
    from infra.pulumi.program import build

    node = build(settings())

    def check(_):
        leases = mocks.of_type("pulumi-python:dynamic:Resource")
        assert len(leases) == 1
        lease = leases[0].inputs
        assert (lease["node_type"], lease["resource_type"], lease["hours"]) == (
            "gpu_a100",
            "physical:host",
            4,
        )
        [instance] = mocks.of_type("openstack:compute/instance:Instance")
        assert instance.inputs["schedulerHints"] == [{"additionalProperties": {"reservation": "resv-1"}}]
        # A reserved bare-metal host boots with the site's bare-metal flavor, not a guessed GPU flavor.
        assert instance.inputs["flavorName"] == "baremetal"
        assert "flavorId" not in instance.inputs
        assert instance.inputs["keyPair"] == "aidetect"
        # The node talks to OpenStack through the provider for site.yaml's clouds.yaml entry.
        [provider] = mocks.of_type("pulumi:providers:openstack")
        assert provider.inputs["cloud"] == "chameleon"
        assert instance.provider and "pulumi:providers:openstack::chameleon" in instance.provider
        assert instance.inputs["metadata"]["role"] == "gpu"

    return registered(node).apply(check)


@pulumi.runtime.test
def test_flavor_instance_lease_uses_the_reserved_flavor(mocks):
    from infra.pulumi.program import build

    node = build(settings(resource_type="flavor:instance", flavor="g1.h100.pci.1"))

    def check(_):
        [instance] = mocks.of_type("openstack:compute/instance:Instance")
        assert instance.inputs["flavorId"] == "resv-1"
        assert "flavorName" not in instance.inputs
        assert instance.inputs["schedulerHints"][0]["additionalProperties"]["reservation"] == "resv-1"

    return registered(node).apply(check)


@pulumi.runtime.test
def test_node_joins_the_terraform_network_and_gets_its_own_floating_ip(mocks):
    from infra.pulumi.program import build

    node = build(settings())

    def check(values):
        public_ip, private_ip = values[-2:]
        assert (public_ip, private_ip) == ("129.114.0.40", "192.168.50.40")
        [port] = mocks.of_type("openstack:networking/port:Port")
        assert port.inputs["networkId"] == "net-1"
        assert port.inputs["securityGroupIds"] == ["sg-1"]
        assert port.inputs["fixedIps"] == [{"subnetId": "subnet-1"}]
        [fip] = mocks.of_type("openstack:networking/floatingIp:FloatingIp")
        assert fip.inputs["pool"] == "public"
        [assoc] = mocks.of_type("openstack:networking/floatingIpAssociate:FloatingIpAssociate")
        assert assoc.inputs == {"floatingIp": "129.114.0.40", "portId": "gpu-port-id"}
        # Pulumi creates no network, subnet, router or security group: those are Terraform's.
        owned = {r.typ for r in mocks.resources}
        assert not any(
            t.startswith(
                (
                    "openstack:networking/network",
                    "openstack:networking/subnet",
                    "openstack:networking/router",
                    "openstack:networking/secGroup",
                )
            )
            for t in owned
        )
        # Every cloud resource of the node hangs under the component (its type chain names the parent).
        urns = values[:4]
        assert all("aidetect:infra:GpuNode$openstack:" in urn for urn in urns), urns

    children = [node.port, node.instance, node.floating_ip, node.fip_association]
    return pulumi.Output.all(*[c.urn for c in children], node.public_ip, node.private_ip).apply(check)
