"""Limits as deployed: the worst-case batch fits the detector pod's memory limit with 30% headroom, the
Ingress publishes only the API and the moderator page, session cookies are Secure behind TLS."""

from __future__ import annotations

import ipaddress
import math

import pytest
from gitops_render import ENVIRONMENTS, REPO

from service.limits import budget_markdown, memory_budget

INTERNAL_ONLY = ("/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/info", "/health", "/livez")
PUBLIC = ("/v1/detect", "/v1/detect/batch", "/v1/feedback", "/moderate", "/moderate/login", "/moderate/api/queue")


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container_env(objects: list[dict], deployment: str) -> tuple[dict, dict]:
    """(environment, resources) of a Deployment's first container, its ConfigMaps resolved."""
    c = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env, c["resources"]


def mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return int(quantity) / 2**20


def deployed_budget(objects: list[dict]) -> dict:
    """service.limits.memory_budget for the CPU tier, from the settings and resources it is deployed with."""
    from aidetect.settings import Settings
    from service.workers import inference_layout

    env, resources = container_env(objects, "detector-cpu")
    fields = {k.removeprefix("AIDETECT_").lower(): v for k, v in env.items() if k.startswith("AIDETECT_")}
    s = Settings(**{k: v for k, v in fields.items() if k in Settings.model_fields})
    cpus = math.ceil(
        float(resources["limits"]["cpu"].removesuffix("m")) / (1000 if "m" in resources["limits"]["cpu"] else 1)
    )
    workers, _ = inference_layout(s.workers_per_device, s.torch_threads, cpus)
    return memory_budget(
        max_bytes=s.max_bytes,
        max_pixels=s.max_pixels,
        images_per_request=s.max_images_per_request,
        max_batch_size=s.max_batch_size,
        workers=workers,
        pod_limit_mib=mib(resources["limits"]["memory"]),
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_worst_case_batch_fits_the_pod_memory_limit_with_headroom(overlays, env):
    b = deployed_budget(overlays[env])
    assert b["fits"], f"{env}: worst case {b['total_mib']} MiB > {b['allowed_mib']} MiB allowed: {b['terms_mib']}"
    # The limits are set on purpose, not left at the local defaults (which would not fit).
    assert b["inputs"]["max_bytes"] < 20 * 2**20 and b["inputs"]["images_per_request"] < 16


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_full_outbox_fits_the_home_volume_with_room_to_spare(overlays, env):
    """Records pile up in the outbox under AIDETECT_HOME while the database is down: at its limit they
    must fill at most half the volume, or the kubelet evicts the pod (and its records) before the 503s."""
    from aidetect.settings import Settings
    from service.backpressure import RECORD_BYTES

    env_vars, _ = container_env(overlays[env], "detector-cpu")
    limit = int(env_vars.get("AIDETECT_OUTBOX_MAX_RECORDS", Settings.model_fields["outbox_max_records"].default))
    pod = one(overlays[env], "Deployment", "detector-cpu")["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == env_vars["AIDETECT_HOME"])
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert 0 < limit, f"{env}: the outbox must be bounded in the deployment"
    assert limit * RECORD_BYTES / 2**20 <= mib(volume["emptyDir"]["sizeLimit"]) / 2


def test_docs_show_the_arithmetic_for_production(overlays):
    docs = (REPO / "docs" / "api.md").read_text()
    table = budget_markdown(deployed_budget(overlays["production"]))
    assert table in docs, f"docs/api.md must show, for production:\n{table}"


def routed(ingress: dict, path: str) -> bool:
    """Whether an Ingress rule sends `path` to a backend (Kubernetes Prefix: whole path elements)."""
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            prefix = p["path"].rstrip("/")
            exact = p["pathType"] == "Exact"
            if path == p["path"] or (not exact and (prefix == "" or path == prefix or path.startswith(prefix + "/"))):
                return True
    return False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_ingress_publishes_only_the_api_and_the_moderator_page(overlays, env):
    ingress = one(overlays[env], "Ingress", "detector")
    hidden = [p for p in INTERNAL_ONLY if routed(ingress, p)]
    assert not hidden, f"{env}: the Ingress exposes {hidden}"
    missing = [p for p in PUBLIC if not routed(ingress, p)]
    assert not missing, f"{env}: the Ingress does not route {missing}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cookies_are_secure_and_forwarded_headers_trusted_only_from_the_pod_network(overlays, env):
    config, _ = container_env(overlays[env], "detector-cpu")
    assert config.get("AIDETECT_SECURE_COOKIES") == "true", env
    trusted = [ipaddress.ip_network(n.strip()) for n in config["FORWARDED_ALLOW_IPS"].split(",")]
    assert trusted and all(n.is_private and n.prefixlen >= 8 for n in trusted), trusted
