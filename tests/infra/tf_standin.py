"""An offline stand-in for terraform-provider-openstack, for `terraform validate` and `terraform test`.

The real provider cannot be downloaded here, yet Terraform needs a provider binary to learn the schemas
of the resources it validates and mocks. This module is that binary: a provider written with PyPI's `tf`
package that declares the schemas of exactly the resources and data sources infra/terraform uses (their
real names and attribute types, a subset of the real provider's attributes). It never talks to a cloud:
`terraform test` runs it under `mock_provider`, which replaces every create/read with mocked values.

It runs in a venv of its own (tf_mirror.standin_python), since `tf` pins protobuf below 6 and the
project needs 6; tf_mirror.py lays it out in a filesystem mirror and writes the CLI config.

Users install the real provider (`terraform init` does it); this file is test setup only.
"""

from __future__ import annotations

import sys

from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.iface import Provider
from tf.schema import Attribute, Block, NestedBlock, NestMode, Schema
from tf.types import Bool, List, Map, Number, String
from tf_mirror import HOST, NAMESPACE, TYPE  # beside this file; stdlib only, so the stand-in's venv has it


class ListBlock(NestedBlock):
    """The `tf` package knows set and single nesting only; the real provider declares lists."""

    def to_pb(self) -> pb.Schema.NestedBlock:
        msg = super().to_pb()
        msg.nesting = pb.Schema.NestedBlock.NestingMode.LIST
        return msg

    def encode(self, value):
        return value

    def decode(self, value):
        return value

    def semantically_equal(self, a, b):
        return a == b


def _s(name: str, **kw) -> Attribute:
    return Attribute(name, String(), **kw)


def _opt(name: str, kind=None) -> Attribute:
    return Attribute(name, kind or String(), optional=True, computed=True)


def _id_region() -> list[Attribute]:
    return [_opt("id"), _opt("region")]


def _resource(name: str, attributes: list[Attribute], blocks: list[NestedBlock] | None = None) -> type:
    schema = Schema(version=0, attributes=_id_region() + attributes, block_types=blocks or [])

    class _R:
        def __init__(self, provider):
            self.provider = provider

        @classmethod
        def get_name(cls) -> str:
            return name

        @classmethod
        def get_schema(cls) -> Schema:
            return schema

        def validate(self, diags, type_name, config):
            pass

        # A mocked provider never calls these; a real apply against the stand-in must fail loudly.
        def _offline(self, ctx, *args):
            ctx.diagnostics.add_error("stand-in provider", "this provider only serves schemas for offline tests")

        create = read = update = delete = _offline

        def plan(self, ctx, current, planned):
            return planned

    _R.__name__ = name
    return _R


RESOURCES = [
    _resource(
        "networking_network_v2",
        [
            _s("name", optional=True),
            _opt("admin_state_up", Bool()),
            _s("description", optional=True),
            Attribute("tags", List(String()), optional=True),
        ],
    ),
    _resource(
        "networking_subnet_v2",
        [
            _s("name", optional=True),
            _s("network_id", required=True),
            _opt("cidr"),
            _opt("ip_version", Number()),
            _opt("gateway_ip"),
            _opt("enable_dhcp", Bool()),
            Attribute("dns_nameservers", List(String()), optional=True),
            _s("description", optional=True),
        ],
    ),
    _resource(
        "networking_router_v2",
        [
            _s("name", optional=True),
            _opt("external_network_id"),
            _opt("admin_state_up", Bool()),
            _s("description", optional=True),
        ],
    ),
    _resource(
        "networking_router_interface_v2",
        [_s("router_id", required=True), _opt("subnet_id"), _opt("port_id")],
    ),
    _resource(
        "networking_secgroup_v2",
        [
            _s("name", required=True),
            _opt("description"),
            _s("tenant_id", optional=True, computed=True),
            Attribute("delete_default_rules", Bool(), optional=True),
        ],
    ),
    _resource(
        "networking_secgroup_rule_v2",
        [
            _s("direction", required=True),
            _s("ethertype", required=True),
            _s("protocol", optional=True),
            Attribute("port_range_min", Number(), optional=True, computed=True),
            Attribute("port_range_max", Number(), optional=True, computed=True),
            _opt("remote_ip_prefix"),
            _opt("remote_group_id"),
            _s("security_group_id", required=True),
            _s("description", optional=True),
        ],
    ),
    _resource(
        "networking_port_v2",
        [
            _s("name", optional=True),
            _s("network_id", required=True),
            _opt("admin_state_up", Bool()),
            Attribute("security_group_ids", List(String()), optional=True),
            Attribute("all_fixed_ips", List(String()), computed=True),
            _s("description", optional=True),
        ],
        [
            ListBlock(
                "fixed_ip",
                NestMode.Set,
                Block(attributes=[_s("subnet_id", optional=True), _s("ip_address", optional=True)]),
            )
        ],
    ),
    _resource(
        "networking_floatingip_v2",
        [_s("pool", required=True), _opt("address"), _opt("port_id"), _s("description", optional=True)],
    ),
    _resource(
        "networking_floatingip_associate_v2",
        [_s("floating_ip", required=True), _s("port_id", required=True), _opt("fixed_ip")],
    ),
    _resource(
        "compute_instance_v2",
        [
            _s("name", required=True),
            _opt("image_name"),
            _opt("image_id"),
            _opt("flavor_name"),
            _opt("flavor_id"),
            _s("key_pair", optional=True),
            _opt("access_ip_v4"),
            Attribute("security_groups", List(String()), optional=True, computed=True),
            Attribute("metadata", Map(String()), optional=True),
            _s("user_data", optional=True),
            Attribute("config_drive", Bool(), optional=True),
            _opt("availability_zone"),
        ],
        [
            ListBlock(
                "network",
                NestMode.Set,
                Block(attributes=[_opt("uuid"), _opt("name"), _opt("port"), _opt("fixed_ip_v4"), _opt("mac")]),
            )
        ],
    ),
]


class _ExternalNetwork:
    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "networking_network_v2"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            version=0,
            attributes=[
                _opt("id"),
                _opt("region"),
                _opt("name"),
                Attribute("external", Bool(), optional=True, computed=True),
            ],
        )

    def validate(self, diags, type_name, config):
        pass

    def read(self, ctx, config):
        ctx.diagnostics.add_error("stand-in provider", "this provider only serves schemas for offline tests")


class StandInOpenStack(Provider):
    def full_name(self) -> str:
        return f"{HOST}/{NAMESPACE}/{TYPE}"

    def get_model_prefix(self) -> str:
        return "openstack_"

    def get_provider_schema(self, diags) -> Schema:
        return Schema(attributes=[_s("cloud", optional=True), _s("region", optional=True)])

    def validate_config(self, diags, config) -> None:
        pass

    def configure_provider(self, diags, config) -> None:
        pass

    def get_data_sources(self) -> list[type]:
        return [_ExternalNetwork]

    def get_resources(self) -> list[type]:
        return RESOURCES


def main() -> None:
    runner.run_provider(StandInOpenStack(), sys.argv)


if __name__ == "__main__":
    main()
