"""The Traefik in front of the detector accepts every option of its retry Middleware.

k3s bundles Traefik (image, chart, and the CRDs of its traefik-crd chart), so the k3s pin in the Ansible
role decides the Traefik version and with it the Middleware CRD the API server stores the object under.
A field that CRD lacks is pruned on apply, without an error: the retry would lose `status` and
`retryNonIdempotentMethod`, and a request in flight to a killed pod would get its 502 again.
"""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml
from gitops_render import GITOPS, REPO, crd_schema, k3s_pin

ANSIBLE = REPO / "ansible"
# k3s release -> the Traefik it bundles, from the "Embedded Component Versions" table of its release notes.
# A new pin goes here first; the checks below then say whether its Traefik still takes the Middleware.
K3S_BUNDLED_TRAEFIK = {
    "v1.35.8+k3s1": "v3.7.8",
}
# Traefik v3.7.0 gave the retry middleware status, timeout and retryNonIdempotentMethod (traefik/traefik#12667);
# the Middleware CRDs of v2.10 and v3.0 knew only these two retry fields.
RETRY_FIELDS_BEFORE_3_7 = ("attempts", "initialInterval")
RETRY_OPTIONS_SINCE = (3, 7)


def _minor(version: str) -> tuple[int, int]:
    match = re.fullmatch(r"v(\d+)\.(\d+)(\.\d+)?", version)
    assert match, f"not a Traefik version: {version}"
    return int(match[1]), int(match[2])


def _defaults(role: str) -> dict:
    return yaml.safe_load((ANSIBLE / "roles" / role / "defaults" / "main.yml").read_text())


def _middlewares(objects: list[dict]) -> list[dict]:
    return [obj for obj in objects if obj["apiVersion"].startswith("traefik.io/") and obj["kind"] == "Middleware"]


def _errors(schema: dict, obj: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]


def _middleware_schema() -> dict:
    return crd_schema("traefik.io", "Middleware", "v1alpha1")


def test_k3s_pin_is_the_same_for_servers_agents_and_the_inventory_sample():
    sample = yaml.safe_load((ANSIBLE / "inventory-sample.yml").read_text())["all"]["vars"]
    pins = {"k3s_server default": k3s_pin(), "k3s_agent default": _defaults("k3s_agent")["k3s_agent_version"],
            "sample k3s_server_version": sample["k3s_server_version"],
            "sample k3s_agent_version": sample["k3s_agent_version"]}
    assert len(set(pins.values())) == 1, pins


def test_pinned_k3s_bundles_a_traefik_with_the_retry_options():
    pin = k3s_pin()
    assert pin in K3S_BUNDLED_TRAEFIK, (
        f"k3s {pin} is not in K3S_BUNDLED_TRAEFIK: look up the Traefik it bundles in its release notes "
        "(Embedded Component Versions) and record it there")
    traefik = K3S_BUNDLED_TRAEFIK[pin]
    assert _minor(traefik) >= RETRY_OPTIONS_SINCE, (
        f"k3s {pin} bundles Traefik {traefik}, whose Middleware CRD has no retry status or "
        f"retryNonIdempotentMethod (v{'.'.join(map(str, RETRY_OPTIONS_SINCE))} added them)")


def test_middleware_schema_is_the_pinned_traefiks():
    # The hand-written schema names the Traefik whose CRD it copies; a k3s bump to another Traefik minor
    # must bring the schema along, or the checks below would validate against the wrong CRD.
    traefik = K3S_BUNDLED_TRAEFIK.get(k3s_pin())
    assert traefik, "unknown k3s pin (see test_pinned_k3s_bundles_a_traefik_with_the_retry_options)"
    assert _minor(_middleware_schema()["x-traefik-version"]) == _minor(traefik)


def test_traefik_config_leaves_the_bundled_image_alone():
    # An image override would run a Traefik other than the one the bundled chart and CRDs were made for,
    # and split the version between two files.
    config = yaml.safe_load((GITOPS / "infrastructure" / "configs" / "traefik-config.yaml").read_text())
    values = yaml.safe_load(config["spec"]["valuesContent"])
    assert "image" not in values


@pytest.mark.parametrize("env", ["staging", "canary", "production"])
def test_overlay_middleware_fits_the_pinned_traefik_crd(overlays, env):
    middlewares = _middlewares(overlays[env])
    assert [m["metadata"]["name"] for m in middlewares] == ["detector-retry"]
    retry = middlewares[0]["spec"]["retry"]
    # What the 0-5xx guarantee rests on (docs/gitops.md, "Retries"): a 502 is retried, POST included.
    assert "502" in retry["status"] and retry["retryNonIdempotentMethod"] is True
    errors = _errors(_middleware_schema(), middlewares[0])
    assert not errors, errors


def test_a_pre_3_7_traefik_crd_rejects_the_middleware(overlays):
    # The check above is only worth something if an older CRD fails it: k3s v1.31.4, the previous pin,
    # bundled Traefik v2.11, whose retry had nothing but attempts and initialInterval.
    old = copy.deepcopy(_middleware_schema())
    retry = old["properties"]["spec"]["properties"]["retry"]
    retry["properties"] = {k: v for k, v in retry["properties"].items() if k in RETRY_FIELDS_BEFORE_3_7}
    errors = _errors(old, _middlewares(overlays["production"])[0])
    for field in ("status", "retryNonIdempotentMethod"):
        assert any(f"'{field}'" in error for error in errors), errors
