"""Rules every rendered workload must follow, and the shape of the detector in each environment."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from gitops_render import DETECTOR_OVERLAYS, ENVIRONMENTS, GITOPS, REPO

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Rollout"}
# What the service exports (service/ metrics); alerts, analysis and dashboard may use only these.
SERVICE_METRICS = {
    "aidetect_requests_total", "aidetect_request_latency_seconds", "aidetect_verdicts_total",
    "aidetect_score", "aidetect_review_queue_size", "aidetect_drift_psi", "aidetect_model_info",
    "aidetect_outbox_pending", "aidetect_outbox_parked_objects",
}
MODEL_URI = re.compile(r"^models:/aidetect/([1-9][0-9]*)$")


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Rollout" and "workloadRef" in obj["spec"]:
        return None  # its pods are the referenced Deployment's template, checked there
    return obj["spec"]["template"]["spec"]


def containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    return [] if spec is None else spec.get("initContainers", []) + spec["containers"]


def workloads(all_objects):
    return [(d, o) for d, o in all_objects if o["kind"] in WORKLOAD_KINDS]


def label(directory, obj, container=None) -> str:
    where = f"{directory.relative_to(REPO)} {obj['kind']}/{obj['metadata']['name']}"
    return f"{where} container {container['name']}" if container else where


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# --- every workload -------------------------------------------------------------------------


def test_every_container_runs_as_non_root_with_a_locked_down_filesystem(all_objects):
    problems = []
    for directory, obj in workloads(all_objects):
        pod = pod_spec(obj) or {}
        pod_ctx = pod.get("securityContext", {})
        for c in containers(obj):
            ctx = c.get("securityContext", {})
            if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
                problems.append(f"{label(directory, obj, c)}: runAsNonRoot not set")
            if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
                problems.append(f"{label(directory, obj, c)}: runs as uid 0")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{label(directory, obj, c)}: root filesystem writable")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{label(directory, obj, c)}: privilege escalation allowed")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{label(directory, obj, c)}: capabilities not dropped")
        if pod and pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{label(directory, obj)}: no RuntimeDefault seccomp profile")
    assert not problems, "\n".join(problems)


def test_every_container_has_requests_and_limits(all_objects):
    problems = []
    for directory, obj in workloads(all_objects):
        for c in containers(obj):
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if key not in res.get(section, {}):
                        problems.append(f"{label(directory, obj, c)}: no {section}.{key}")
    assert not problems, "\n".join(problems)


def test_every_shell_script_in_a_container_parses(all_objects):
    scripts = 0
    for directory, obj in workloads(all_objects):
        for c in containers(obj):
            if c.get("command", [])[-1:] == ["-c"]:
                proc = subprocess.run(["sh", "-n", "-c", c["args"][0]], capture_output=True, text=True)
                assert proc.returncode == 0, f"{label(directory, obj, c)}: {proc.stderr}"
                scripts += 1
    assert scripts >= 3


def test_every_image_is_pinned_to_a_version(all_objects):
    problems = []
    images = set()
    for directory, obj in workloads(all_objects):
        for c in containers(obj):
            image = c["image"]
            images.add(image)
            name, _, digest = image.partition("@")
            tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
            if tag in ("", "latest") or not re.search(r"\d", tag):
                problems.append(f"{label(directory, obj, c)}: image {image} has no version tag")
            if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                problems.append(f"{label(directory, obj, c)}: malformed digest in {image}")
    assert not problems, "\n".join(problems)
    assert any(i.startswith("ghcr.io/aidetect/aidetect:") for i in images)


def test_no_latest_anywhere():
    files = [*GITOPS.rglob("*.yaml"), REPO / "Dockerfile", REPO / ".github" / "workflows" / "image.yml"]
    pattern = re.compile(r":latest\b|newTag:\s*[\"']?latest|targetRevision:\s*[\"']?(latest|HEAD|\*)")
    hits = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in files
            for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_helm_charts_are_pinned_to_exact_versions(all_objects):
    charts = [(d, o) for d, o in all_objects if o["kind"] == "Application" and "chart" in o["spec"]["source"]]
    assert len(charts) >= 6
    for directory, app in charts:
        version = app["spec"]["source"]["targetRevision"]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", version), f"{label(directory, app)}: chart version {version}"


def test_root_app_is_applied_by_hand_and_matches_the_ansible_role():
    root_dir = GITOPS / "clusters" / "production"
    root = yaml.safe_load((root_dir / "root-app.yaml").read_text())
    assert root["spec"]["source"]["path"] == str(root_dir.relative_to(REPO))
    # Listed in its own kustomization it would be managed twice (by its applier and by ArgoCD).
    assert "root-app.yaml" not in yaml.safe_load((root_dir / "kustomization.yaml").read_text())["resources"]
    defaults = REPO / "ansible" / "roles" / "argocd" / "defaults" / "main.yml"
    if defaults.is_file():
        role = yaml.safe_load(defaults.read_text())
        assert role["argocd_root_app_path"] == root["spec"]["source"]["path"]
        assert role["argocd_root_app_name"] == root["metadata"]["name"]
        assert role["argocd_namespace"] == root["metadata"]["namespace"]


def test_projects_allow_every_source_their_applications_use(all_objects):
    projects = {o["metadata"]["name"]: o["spec"] for _, o in all_objects if o["kind"] == "AppProject"}
    apps = [o["spec"] for _, o in all_objects if o["kind"] == "Application"]
    apps += [o["spec"]["template"]["spec"] for _, o in all_objects if o["kind"] == "ApplicationSet"]
    for app in apps:
        if app["project"] == "default":
            continue  # the root app, applied before any project exists
        project = projects[app["project"]]
        assert app["source"]["repoURL"] in project["sourceRepos"], app["source"]["repoURL"]
        namespace = app["destination"]["namespace"]
        assert any(re.fullmatch(d["namespace"].replace("*", ".*"), namespace) or "{{" in namespace
                   for d in project["destinations"]), namespace


def test_no_plain_secrets_in_git(all_objects):
    kinds = {o["kind"] for _, o in all_objects}
    assert "Secret" not in kinds
    assert "ExternalSecret" in kinds
    stores = {o["metadata"]["name"] for _, o in all_objects if o["kind"] == "ClusterSecretStore"}
    for directory, obj in all_objects:
        if obj["kind"] == "ExternalSecret":
            ref = obj["spec"]["secretStoreRef"]
            assert ref["kind"] == "ClusterSecretStore" and ref["name"] in stores, label(directory, obj)


def test_applications_point_at_folders_that_build(all_objects):
    root = next(o for _, o in all_objects if o["kind"] == "Application" and o["metadata"]["name"] == "root")
    repo_url = root["spec"]["source"]["repoURL"]
    paths = []
    for _, obj in all_objects:
        if obj["kind"] == "Application" and "path" in obj["spec"]["source"]:
            assert obj["spec"]["source"]["repoURL"] == repo_url
            paths.append(obj["spec"]["source"]["path"])
        if obj["kind"] == "ApplicationSet":
            for generator in obj["spec"]["generators"]:
                assert generator["git"]["repoURL"] == repo_url
                for d in generator["git"]["directories"]:
                    globbed = sorted(p for p in REPO.glob(d["path"]) if p.is_dir())
                    assert {p.name for p in globbed} == set(ENVIRONMENTS)
                    paths += [str(p.relative_to(REPO)) for p in globbed]
    assert "gitops/clusters/production" in paths
    for path in paths:
        assert (REPO / path / "kustomization.yaml").is_file(), path


# --- the detector in each environment -------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_overlay_pins_an_exact_model_version_read_by_every_tier(overlays, env):
    objects = overlays[env]
    model_cm = one(objects, "ConfigMap", "detector-model-")
    assert MODEL_URI.match(model_cm["data"]["AIDETECT_MODEL_URI"]), model_cm["data"]
    # The fast model's pin; the GPU tier serves the Qwen stage, pinned apart (test_qwen_tier.py).
    for deployment in [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] != "detector-gpu"]:
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        refs = [e["configMapRef"]["name"] for e in env_from if "configMapRef" in e]
        assert model_cm["metadata"]["name"] in refs, deployment["metadata"]["name"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_detector_probes_scaling_and_disruption_budget(overlays, env):
    objects = overlays[env]
    assert {o["metadata"]["namespace"] for o in objects if o["kind"] != "Namespace"} == {f"aidetect-{env}"}
    for deployment in by_kind(objects, "Deployment"):
        c = deployment["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/health"
        # LitServe's Qwen server has no /livez: its port answering is its liveness.
        assert c["livenessProbe"].get("httpGet", {}).get("path") == "/livez" or "tcpSocket" in c["livenessProbe"]
        assert "replicas" not in deployment["spec"], "KEDA owns replicas; a fixed count would fight it"
        name = deployment["metadata"]["name"]
        scaler = one(objects, "HTTPScaledObject", name)
        assert scaler["spec"]["scaleTargetRef"]["service"] == name
        assert any(p["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
                   for p in by_kind(objects, "PodDisruptionBudget")), f"no PDB for {name}"
    cpu = one(objects, "HTTPScaledObject", "detector-cpu")["spec"]
    assert "concurrency" in cpu["scalingMetric"]
    assert 0 <= cpu["replicas"]["min"] <= cpu["replicas"]["max"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_endpoint_is_tls_and_routes_through_the_interceptor(overlays, env):
    objects = overlays[env]
    ingress = one(objects, "Ingress", "detector")
    host = ingress["spec"]["rules"][0]["host"]
    assert host.endswith(".example.org") and "invalid" not in host
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    gateway = one(objects, "Service", backend)
    assert gateway["spec"]["externalName"].startswith("keda-add-ons-http-interceptor-proxy.keda.")
    # The public host routes to the CPU tier; the GPU tier (the Qwen stage) is internal (test_qwen_tier.py).
    assert one(objects, "HTTPScaledObject", "detector-cpu")["spec"]["hosts"] == [host]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_namespace_denies_by_default_and_enforces_restricted(overlays, env):
    objects = overlays[env]
    namespace = one(objects, "Namespace", f"aidetect-{env}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deny = one(objects, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_gpu_tier_scales_to_zero_on_a_gpu_node(overlays):
    objects = overlays["production"]
    gpu = one(objects, "Deployment", "detector-gpu")["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    scaler = one(objects, "HTTPScaledObject", "detector-gpu")["spec"]
    assert scaler["replicas"]["min"] == 0


def test_canary_rolls_out_through_an_analysis_of_errors_and_latency(overlays):
    objects = overlays["canary"]
    rollout = one(objects, "Rollout", "detector-cpu")
    assert rollout["spec"]["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "detector-cpu", "scaleDown": "onsuccess"}
    templates = {t["templateName"] for t in rollout["spec"]["strategy"]["canary"]["analysis"]["templates"]}
    analysis = one(objects, "AnalysisTemplate", "detector-canary")
    assert templates == {analysis["metadata"]["name"]}
    queries = {m["name"]: m["provider"]["prometheus"]["query"] for m in analysis["spec"]["metrics"]
               if "prometheus" in m["provider"]}
    assert "aidetect_requests_total" in queries["error-rate"]
    assert "aidetect_request_latency_seconds_bucket" in queries["latency-p95"]
    assert all("{{args.canary-hash}}" in q for q in queries.values())
    target = one(objects, "HTTPScaledObject", "detector-cpu")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Rollout", "detector-cpu")
    # Only canary goes through Rollouts; production changes by its Git pin alone.
    assert not by_kind(overlays["production"], "Rollout") and not by_kind(overlays["staging"], "Rollout")


def test_every_aidetect_variable_is_a_setting(all_objects):
    """A misspelt AIDETECT_* variable is silently ignored by pydantic-settings; catch it here."""
    from aidetect.settings import Settings

    known = {f"AIDETECT_{name.upper()}" for name in Settings.model_fields}
    known.add("AIDETECT_AUTHOR_SALT")  # read directly by model/etl/store.py, not a Settings field
    known.add("AIDETECT_SESSION_SECRET")  # read directly by service/state.py, not a Settings field
    known.add("AIDETECT_API_KEY")  # the client's key, read by `aidetect predict` (service/cli.py)
    used = set()
    for _, obj in all_objects:
        text = yaml.safe_dump(obj)
        used |= set(re.findall(r"\b(AIDETECT_[A-Z_]+)\b", text))
    assert used, "no AIDETECT_* variable found"
    assert used <= known, sorted(used - known)


def test_production_application_reverts_drift(all_objects):
    appset = next(o for _, o in all_objects if o["kind"] == "ApplicationSet")
    policy = appset["spec"]["template"]["spec"]["syncPolicy"]["automated"]
    assert policy == {"prune": True, "selfHeal": True}


# --- operations -----------------------------------------------------------------------------


def _metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\baidetect_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_alerts_cover_errors_latency_drift_and_review_queue(all_objects):
    rules = [r for _, o in all_objects if o["kind"] == "PrometheusRule"
             for g in o["spec"]["groups"] for r in g["rules"]]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert "aidetect_requests_total" in exprs["AidetectHighErrorRate"]
    assert "histogram_quantile(0.95" in exprs["AidetectHighLatencyP95"]
    assert "aidetect_drift_psi" in exprs["AidetectScoreDrift"]
    assert "aidetect_review_queue_size" in exprs["AidetectReviewQueueGrowing"]
    assert all(r.get("for") and r["labels"]["severity"] for r in rules)


def test_rules_analysis_and_dashboard_use_only_metrics_the_service_exports(all_objects):
    texts = [yaml.safe_dump(o) for _, o in all_objects if o["kind"] in ("PrometheusRule", "AnalysisTemplate")]
    dashboard = json.loads((GITOPS / "infrastructure/monitoring/dashboards/detector.json").read_text())
    texts.append(json.dumps(dashboard))
    used = set().union(*(_metric_names(t) for t in texts))
    assert used <= SERVICE_METRICS, used - SERVICE_METRICS
    assert used == SERVICE_METRICS, f"not on the dashboard or in any rule: {SERVICE_METRICS - used}"


def test_the_metrics_the_rules_name_are_the_ones_the_service_renders(tmp_path):
    from service.metrics import StateCollector, render

    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"features": {"score": {"psi": 0.1}}}))
    every_gauge = StateCollector(queue_size=lambda: 1, drift_file=drift, outbox_size=lambda: 1, parked=lambda: 1)
    rendered = {line.split()[2] for line in render(every_gauge)[0].decode().splitlines() if line.startswith("# TYPE")}
    rendered |= {f"{name}_total" for name in rendered}  # counters are scraped with the suffix
    assert SERVICE_METRICS <= rendered, SERVICE_METRICS - rendered


def test_backup_and_ingest_cronjobs(all_objects):
    cronjobs = {o["metadata"]["name"]: o for _, o in all_objects if o["kind"] == "CronJob"}
    backup = cronjobs["postgres-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    dump = " ".join(backup["initContainers"][0]["args"])
    assert "pg_dump" in dump and "mlflow" in dump and "aidetect" in dump
    assert "store/backups" in " ".join(backup["containers"][0]["args"])
    ingest = cronjobs["ingest-mastodon-aiart"]
    assert ingest["spec"]["concurrencyPolicy"] == "Forbid"
    args = ingest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["ingest", "--source", "mastodon", "--tag", "aiart"]


def test_overlay_directories_are_tiny():
    # Promotion is a one-line commit: an overlay holds its kustomization, the model pin, one patch.
    for env in ENVIRONMENTS:
        files = sorted(p.name for p in (DETECTOR_OVERLAYS / env).iterdir())
        assert files == ["environment.yaml", "kustomization.yaml", "model-version.yaml"], files


def _promql_expressions(all_objects) -> list[tuple[str, str]]:
    """(where, expression) for every PromQL in rules, analysis and dashboard, template variables filled."""
    exprs = []
    for _, obj in all_objects:
        if obj["kind"] == "PrometheusRule":
            exprs += [(r["alert"], r["expr"]) for g in obj["spec"]["groups"] for r in g["rules"]]
        if obj["kind"] == "AnalysisTemplate":
            exprs += [(m["name"], m["provider"]["prometheus"]["query"].replace("{{args.canary-hash}}", "abc123"))
                      for m in obj["spec"]["metrics"] if "prometheus" in m["provider"]]
    dashboard = json.loads((GITOPS / "infrastructure/monitoring/dashboards/detector.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$namespace", "aidetect-production").replace("$__rate_interval", "1m")
            exprs.append((panel["title"], expr))
    return exprs


def test_every_promql_expression_parses(all_objects):
    import promql_parser

    exprs = _promql_expressions(all_objects)
    assert len(exprs) >= 15
    errors = []
    for where, expr in exprs:
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
    assert not errors, "\n".join(errors)
