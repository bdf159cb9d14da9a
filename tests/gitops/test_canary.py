"""The canary analysis cannot pass on silence: a smoke job in the analysis sends the new pods traffic,
and a traffic metric fails the rollout unless they answered it."""

from __future__ import annotations

import re
import subprocess

import pytest
from test_state import egress_allowed, find, ingress_allowed


def analysis(overlays) -> dict:
    return find(overlays["canary"], "AnalysisTemplate", "detector-canary")


def metric(name: str, overlays) -> dict:
    return next(m for m in analysis(overlays)["spec"]["metrics"] if m["name"] == name)


def passes(condition: str, value: float) -> bool:
    """Argo's successCondition for a one-element result, evaluated the way its expr language does."""
    assert re.fullmatch(r"result\[0\] (>=|>|<|<=) [0-9.]+", condition), condition
    return eval(condition.replace("result[0]", repr(value)))  # noqa: S307 - the pattern above admits only a comparison


@pytest.mark.slow
def test_an_idle_canary_fails_the_analysis(overlays):
    traffic = metric("traffic", overlays)
    query = traffic["provider"]["prometheus"]["query"]
    assert (
        "aidetect_requests_total" in query
        and "{{args.canary-hash}}" in query
        and 'namespace="aidetect-canary"' in query
    )
    # No series at all (no request) becomes 0, and 0 fails; so does a trickle.
    assert query.rstrip().endswith("or vector(0)")
    assert not passes(traffic["successCondition"], 0) and not passes(traffic["successCondition"], 5)
    assert traffic["failureLimit"] == 0 and traffic.get("initialDelay")
    # The other metrics read silence as zero errors / zero latency: without the traffic metric they would pass.
    for name in ("error-rate", "latency-p95"):
        assert passes(metric(name, overlays)["successCondition"], 0)


def test_the_smoke_job_sends_enough_traffic_to_the_new_pods_only(overlays):
    objects = overlays["canary"]
    rollout = find(objects, "Rollout", "detector-cpu")
    canary_service = rollout["spec"]["strategy"]["canary"]["canaryService"]
    service = find(objects, "Service", canary_service)
    assert service["spec"]["selector"] == find(objects, "Deployment", "detector-cpu")["spec"]["selector"]["matchLabels"]

    job = metric("smoke", overlays)["provider"]["job"]["spec"]
    pod = job["template"]["spec"]
    (c,) = pod["containers"]
    assert (
        c["image"] == find(objects, "Deployment", "detector-cpu")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    script = c["args"][0]
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    assert f"--url http://{canary_service}:8000" in script
    rounds = int(re.search(r"seq 1 (\d+)", script).group(1))
    images = len(re.findall(r"/tmp/smoke\d\.png", script.split("aidetect predict", 1)[1].split("--url")[0]))
    needed = float(metric("traffic", overlays)["successCondition"].split()[-1])
    assert rounds * images >= needed, "the smoke job alone must be able to satisfy the traffic metric"
    # Keys are required: the job's comes from an ExternalSecret.
    (secret,) = [s["secretRef"]["name"] for s in c["envFrom"]]
    assert "AIDETECT_API_KEY" in {d["secretKey"] for d in find(objects, "ExternalSecret", secret)["spec"]["data"]}
    ctx = c["securityContext"]
    assert (
        ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"] and ctx["capabilities"]["drop"] == ["ALL"]
    )
    assert pod["securityContext"]["runAsNonRoot"] and c["resources"]["limits"]

    # The namespace denies by default: the smoke pod may reach the detector, and the detector admits it.
    labels = metric("smoke", overlays)["provider"]["job"]["spec"]["template"]["metadata"]["labels"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    ns = {"kubernetes.io/metadata.name": "aidetect-canary"}
    detector = {"app.kubernetes.io/name": "detector", "app.kubernetes.io/component": "cpu"}
    assert egress_allowed(policies, labels, ns, detector, 8000)
    assert ingress_allowed(policies, detector, ns, labels, 8000)
