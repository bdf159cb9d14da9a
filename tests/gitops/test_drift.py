"""Drift as deployed: `aidetect monitor drift` runs as a CronJob, and the series it makes every replica
export is the one the AidetectScoreDrift alert reads (both parsed: the exposition and the PromQL)."""

from __future__ import annotations

import json

import promql_parser
from gitops_render import GITOPS
from prometheus_client.parser import text_string_to_metric_families
from test_state import egress_allowed, find, ingress_allowed


def selected_metrics(node) -> set[str]:
    """Names of every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name}
    if isinstance(node, promql_parser.MatrixSelector):
        return selected_metrics(node.vector_selector)
    found = set()
    for attr in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            found |= selected_metrics(child)
    for child in getattr(node, "args", None) or []:
        found |= selected_metrics(child)
    return found


def exported_drift_metrics(tmp_path) -> set[str]:
    """What a detector's /metrics says after the drift command stored a report (service/metrics.py)."""
    from service.drift import prometheus_text
    from service.metrics import StateCollector, render

    report = {"features": {"score": {"psi": 0.3}, "aspect": {"psi": 0.01}}, "model": "models:/aidetect/1"}
    body = render(StateCollector(drift_file=tmp_path / "none.json", drift_stored=lambda: report))[0].decode()
    names = {f.name for f in text_string_to_metric_families(body) if "drift" in f.name}
    assert names == {f.name for f in text_string_to_metric_families(prometheus_text(report))}  # --textfile agrees
    return names


def test_drift_runs_as_a_cronjob_on_productions_traffic(overlays):
    cron = find(overlays["production"], "CronJob", "drift")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"][:2] == ["monitor", "drift"] and "--reference-from-store" in c["args"]
    deployment = find(overlays["production"], "Deployment", "detector-cpu")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == deployment["image"]
    # The same database, object store and model pin as the replicas whose traffic it measures.
    assert [list(e.values())[0]["name"] for e in c["envFrom"]] == [
        list(e.values())[0]["name"] for e in deployment["envFrom"]
    ]
    assert not [o for o in overlays["staging"] + overlays["canary"] if o["kind"] == "CronJob"]


def test_the_metric_the_drift_command_exports_is_the_one_the_alert_reads(rendered, tmp_path):
    rules = find(rendered[GITOPS / "infrastructure" / "monitoring"], "PrometheusRule", "aidetect-detector")
    alert = next(r for g in rules["spec"]["groups"] for r in g["rules"] if r.get("alert") == "AidetectScoreDrift")
    read = selected_metrics(promql_parser.parse(alert["expr"]))
    exported = exported_drift_metrics(tmp_path)
    assert read and read == exported, f"the alert reads {read}, the service exports {exported}"
    dashboard = json.loads((GITOPS / "infrastructure/monitoring/dashboards/detector.json").read_text())
    drift_panels = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "drift" in t["expr"]]
    for expr in drift_panels:
        names = selected_metrics(promql_parser.parse(expr.replace("$namespace", "x").replace("$__rate_interval", "1m")))
        assert names <= exported, names


def test_the_drift_job_reaches_the_registry_database_and_object_store(overlays, rendered):
    objects = overlays["production"]
    mlflow = rendered[GITOPS / "infrastructure" / "mlflow"]
    labels = find(objects, "CronJob", "drift")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    ns = {
        **find(objects, "Namespace", "aidetect-production")["metadata"]["labels"],
        "kubernetes.io/metadata.name": "aidetect-production",
    }
    ours = [o for o in objects if o["kind"] == "NetworkPolicy"]
    theirs = [o for o in mlflow if o["kind"] == "NetworkPolicy"]
    for target, port in (("mlflow", 5000), ("postgres", 5432), ("minio", 9000)):
        target_labels = {"app.kubernetes.io/name": target}
        assert egress_allowed(ours, labels, {"kubernetes.io/metadata.name": "mlflow"}, target_labels, port), target
        assert ingress_allowed(theirs, target_labels, ns, labels, port), target
