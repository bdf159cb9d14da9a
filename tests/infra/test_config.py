"""infra/site.yaml is the single source both engines read."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from infra import config
from infra.config import SiteError, load_site, parse_site, placeholders, pulumi_config, tfvars


def filled_site(**over):
    raw = yaml.safe_load(config.DEFAULT_SITE_FILE.read_text())
    raw.update(project="CHI-123456", key_pair="laptop")
    raw["network"]["admin_cidrs"] = ["198.51.100.7/32"]
    raw["state"]["bucket"] = "aidetect-state"
    for key, value in over.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_site(raw)


def test_committed_site_file_has_the_product_defaults_and_only_placeholders_for_secrets():
    site = load_site()
    assert (site.cluster.node_count, site.cluster.flavor) == (3, "m1.medium")
    assert site.gpu.resource_properties() == ["==", "$node_type", "gpu_a100"]
    assert site.gpu.lease_hours == 4
    assert site.network.external == "public"
    assert sorted(placeholders(site)) == ["key_pair", "network.admin_cidrs", "project", "state.bucket"]
    assert placeholders(filled_site()) == []


def test_tfvars_sets_exactly_the_terraform_variables():
    variables_tf = (config.TERRAFORM_DIR / "variables.tf").read_text()
    declared = set(re.findall(r'^variable "(\w+)"', variables_tf, re.M))
    values = tfvars(filled_site())
    assert set(values) == declared
    assert values["node_count"] == 3 and values["node_flavor"] == "m1.medium"
    assert values["admin_cidrs"] == ["198.51.100.7/32"]


def test_node_count_and_flavor_flow_from_the_site_file():
    values = tfvars(filled_site(cluster={"node_count": 5, "flavor": "m1.large"}))
    assert (values["node_count"], values["node_flavor"]) == (5, "m1.large")


def test_both_engines_keep_state_in_the_same_object_store():
    site = filled_site()
    backend = config.backend_hcl(site)
    assert 'bucket    = "aidetect-state"' in backend
    assert 'endpoints = { s3 = "https://chi.tacc.chameleoncloud.org:7480" }' in backend
    assert "use_lockfile = false" in backend
    assert "use_lockfile = true" in config.backend_hcl(filled_site(state={"lock": True}))
    url = urlsplit(config.pulumi_backend_url(site))
    assert (url.scheme, url.netloc, url.path) == ("s3", "aidetect-state", "/pulumi")
    query = parse_qs(url.query)
    assert query["endpoint"] == ["chi.tacc.chameleoncloud.org:7480"]
    assert query["s3ForcePathStyle"] == ["true"]


def test_pulumi_config_joins_site_and_terraform_outputs():
    outputs = {
        "network_id": {"value": "net-1"},
        "subnet_id": {"value": "sub-1"},
        "secgroup_id": {"value": "sg-1"},
    }
    cfg = pulumi_config(filled_site(), outputs, requested=True, hours=2)
    assert cfg["networkId"] == "net-1" and cfg["secgroupId"] == "sg-1"
    assert (cfg["requested"], cfg["leaseHours"], cfg["nodeType"]) == ("true", "2", "gpu_a100")
    with pytest.raises(SiteError, match="network_id"):
        pulumi_config(filled_site(), {}, requested=True, hours=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": 3}, "unknown key site.nodes"),
        ({"cluster": {"node_count": 0}}, "node_count"),
        ({"gpu": {"lease_hours": 0}}, "lease_hours"),
        ({"network": {"cdir": "10.0.0.0/24"}}, "unknown key network.cdir"),
    ],
)
def test_mistakes_in_the_site_file_are_named(change, message):
    with pytest.raises(SiteError, match=message):
        filled_site(**change)


def test_missing_required_key_is_named(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("site: X\ncloud: c\nproject: p\n")
    with pytest.raises(SiteError, match="key_pair"):
        load_site(path)


def test_pulumi_project_name_matches_the_program():
    project = yaml.safe_load((config.PULUMI_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == config.PULUMI_PROJECT
