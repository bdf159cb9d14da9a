"""The GPU tier is the cascade's Qwen stage, and the CPU tier is wired to ask it."""

from __future__ import annotations

from urllib.parse import urlparse

from test_state import egress_allowed, find, ingress_allowed


def configmap(objects: list[dict], prefix: str) -> dict:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")]
    return cm["data"]


def test_gpu_tier_serves_the_qwen_stage_with_litserve(overlays):
    objects = overlays["production"]
    gpu = find(objects, "Deployment", "detector-gpu")["spec"]["template"]["spec"]
    (c,) = gpu["containers"]
    assert c["image"].startswith("ghcr.io/aidetect/aidetect-gpu:")
    assert c["args"][:2] == ["qwen", "serve"]
    assert c["args"][c["args"].index("--model-uri") + 1] == "$(QWEN_MODEL_URI)"
    port = int(c["args"][c["args"].index("--port") + 1])
    assert c["ports"][0]["containerPort"] == port
    refs = [e["configMapRef"]["name"] for e in c["envFrom"]]
    pinned = configmap(objects, "qwen-model")["QWEN_MODEL_URI"]
    assert pinned.startswith("models:/aidetect-qwen/") and pinned.rsplit("/", 1)[1].isdigit()
    assert any(r.startswith("qwen-model-") for r in refs)
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    service = find(objects, "Service", "detector-gpu")
    assert service["spec"]["ports"][0]["port"] == port


def test_cpu_tier_asks_the_qwen_stage_through_the_interceptor(overlays):
    objects = overlays["production"]
    url = urlparse(configmap(objects, "detector-config")["AIDETECT_QWEN_URL"])
    cpu = find(objects, "Deployment", "detector-cpu")["spec"]["template"]["spec"]["containers"][0]
    assert any(e["configMapRef"]["name"].startswith("detector-config-") for e in cpu["envFrom"] if "configMapRef" in e)
    # The URL's host is a Service that leads to the KEDA interceptor, which routes it by Host to the stage.
    gateway = find(objects, "Service", url.hostname)
    assert gateway["spec"]["externalName"].startswith("keda-add-ons-http-interceptor-proxy.keda.")
    assert url.port == gateway["spec"]["ports"][0]["port"]
    scaler = find(objects, "HTTPScaledObject", "detector-gpu")["spec"]
    assert url.hostname in scaler["hosts"]
    assert scaler["scaleTargetRef"]["service"] == "detector-gpu"
    stage_port = find(objects, "Service", "detector-gpu")["spec"]["ports"][0]["port"]
    assert scaler["scaleTargetRef"]["port"] == stage_port
    # Not public: the Ingress host does not reach it.
    public = find(objects, "Ingress", "detector")["spec"]["rules"][0]["host"]
    assert public not in scaler["hosts"]
    # Allowed both ways by the namespace's policies: CPU tier -> interceptor, interceptor -> stage.
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    keda = {"kubernetes.io/metadata.name": "keda"}
    cpu_labels = {"app.kubernetes.io/name": "detector", "app.kubernetes.io/component": "cpu"}
    gpu_labels = {"app.kubernetes.io/name": "detector", "app.kubernetes.io/component": "gpu"}
    assert egress_allowed(policies, cpu_labels, keda, {}, url.port)
    assert ingress_allowed(policies, gpu_labels, keda, {}, stage_port)


def test_only_production_has_the_qwen_stage(overlays):
    for env in ("staging", "canary"):
        assert "AIDETECT_QWEN_URL" not in configmap(overlays[env], "detector-config")
        assert not [o for o in overlays[env] if o["kind"] == "Deployment" and o["metadata"]["name"] == "detector-gpu"]
