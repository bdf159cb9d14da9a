"""The detector's state as deployed: records, keys, moderators and labels in PostgreSQL, kept images in
MinIO, migrations once in a PreSync job, the network open for exactly that, the backup covering it, the
secrets from ExternalSecrets, and API keys required."""

from __future__ import annotations

import re

import pytest
import yaml
from gitops_render import ENVIRONMENTS, GITOPS

DB_URL = re.compile(
    r"^postgresql://\{\{ \.pg_user \}\}:\{\{ \.pg_password \| urlquery \}\}@postgres\.mlflow\.svc:5432/"
    r"(?P<db>[a-z_]+)$"
)


def find(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def configmap(objects: list[dict], prefix: str) -> dict:
    found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")]
    assert len(found) == 1, prefix
    return found[0]["data"]


def pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def secret_env(objects: list[dict], name: str) -> dict:
    """The variables an ExternalSecret's template puts in its Secret."""
    return find(objects, "ExternalSecret", name)["spec"]["target"]["template"]["data"]


def hook(obj: dict) -> tuple[str | None, int]:
    ann = obj["metadata"].get("annotations", {})
    return ann.get("argocd.argoproj.io/hook"), int(ann.get("argocd.argoproj.io/sync-wave", "0"))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_records_keys_and_labels_live_in_postgres_and_images_in_minio(overlays, env):
    objects = overlays[env]
    deployment = find(objects, "Deployment", "detector-cpu")
    container = pod(deployment)["containers"][0]
    secrets = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    assert secrets == ["detector-env"]
    url = DB_URL.match(secret_env(objects, "detector-env")["AIDETECT_STORE_URL"])
    assert url, "the records database is the cluster's PostgreSQL"
    assert url["db"] == ("aidetect_staging" if env == "staging" else "aidetect")
    config = configmap(objects, "detector-config")
    assert config["AIDETECT_OBJECT_STORE"].startswith("s3://ingest/")
    assert config["AWS_ENDPOINT_URL_S3"] == "http://minio.mlflow.svc:9000"
    assert "AIDETECT_STORE_URL" not in config, "the database URL carries a password: only in the Secret"
    # The home directory is scratch (model cache, outbox, metrics); nothing there outlives the pod.
    assert not [v for v in pod(deployment)["volumes"] if "persistentVolumeClaim" in v]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_session_and_author_secrets_come_from_external_secrets(overlays, env):
    data = secret_env(overlays[env], "detector-env")
    assert data["AIDETECT_SESSION_SECRET"] == "{{ .session_secret }}"
    assert data["AIDETECT_AUTHOR_SALT"] == "{{ .author_salt }}"
    remote = {
        d["secretKey"]: d["remoteRef"] for d in find(overlays[env], "ExternalSecret", "detector-env")["spec"]["data"]
    }
    assert remote["session_secret"] == {"key": "detector", "property": "session-secret"}
    # The ingest job's salt: an author hashes alike wherever they were seen.
    ingest = yaml.safe_load((GITOPS / "apps" / "ingest" / "externalsecret.yaml").read_text())
    assert {d["secretKey"]: d["remoteRef"] for d in ingest["spec"]["data"]}["author_salt"] == remote["author_salt"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_keys_are_required(overlays, env):
    assert configmap(overlays[env], "detector-config")["AIDETECT_AUTH_REQUIRED"] == "true"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_migrations_run_once_in_a_presync_job_before_any_replica(overlays, env):
    objects = overlays[env]
    job = find(objects, "Job", "detector-migrate")
    assert hook(job)[0] == "PreSync"
    c = pod(job)["containers"][0]
    assert c["args"] == ["records", "migrate"]
    assert c["image"] == pod(find(objects, "Deployment", "detector-cpu"))["containers"][0]["image"]
    # Its secret is a hook too, and comes first: on the first sync nothing else exists yet.
    (source,) = [s["secretRef"]["name"] for s in c["envFrom"]]
    secret = find(objects, "ExternalSecret", source)
    assert hook(secret)[0] == "PreSync" and hook(secret)[1] < hook(job)[1]
    assert (
        secret_env(objects, source)["AIDETECT_STORE_URL"] == secret_env(objects, "detector-env")["AIDETECT_STORE_URL"]
    )
    # Nothing the hook uses may be created by the sync it precedes.
    assert "serviceAccountName" not in pod(job)
    assert not [e for e in c.get("envFrom", []) if "configMapRef" in e]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_admits(peer: dict, ns_labels: dict, pod_labels: dict) -> bool:
    if "namespaceSelector" in peer and not _selects(peer["namespaceSelector"], ns_labels):
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], pod_labels)


def egress_allowed(policies, pod_labels, to_ns, to_pod, port) -> bool:
    for np in policies:
        if not _selects(np["spec"]["podSelector"], pod_labels):
            continue
        for rule in np["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if (not ports or port in ports) and any(_peer_admits(t, to_ns, to_pod) for t in rule.get("to", [])):
                return True
    return False


def ingress_allowed(policies, target_labels, from_ns, from_pod, port) -> bool:
    for np in policies:
        if not _selects(np["spec"]["podSelector"], target_labels):
            continue
        for rule in np["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if (not ports or port in ports) and any(_peer_admits(f, from_ns, from_pod) for f in rule.get("from", [])):
                return True
    return False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_policies_let_the_detector_reach_postgres_and_minio(overlays, rendered, env):
    objects = overlays[env]
    mlflow = rendered[GITOPS / "infrastructure" / "mlflow"]
    mlflow_ns = {"kubernetes.io/metadata.name": "mlflow"}
    namespace = find(objects, "Namespace", f"aidetect-{env}")
    ns_labels = {**namespace["metadata"]["labels"], "kubernetes.io/metadata.name": f"aidetect-{env}"}
    ours = [o for o in objects if o["kind"] == "NetworkPolicy"]
    theirs = [o for o in mlflow if o["kind"] == "NetworkPolicy"]
    detector = pod(find(objects, "Deployment", "detector-cpu"))
    migrate = pod(find(objects, "Job", "detector-migrate"))
    detector_labels = find(objects, "Deployment", "detector-cpu")["spec"]["template"]["metadata"]["labels"]
    migrate_labels = find(objects, "Job", "detector-migrate")["spec"]["template"]["metadata"]["labels"]
    assert detector and migrate
    for who, labels, targets in (
        ("detector", detector_labels, (("postgres", 5432), ("minio", 9000))),
        ("migration job", migrate_labels, (("postgres", 5432),)),
    ):
        for target, port in targets:
            target_labels = {"app.kubernetes.io/name": target}
            assert egress_allowed(ours, labels, mlflow_ns, target_labels, port), f"{who} -> {target}: egress denied"
            assert ingress_allowed(theirs, target_labels, ns_labels, labels, port), f"{who} -> {target}: refused"
    # The migration job reaches nothing else.
    assert not egress_allowed(ours, migrate_labels, mlflow_ns, {"app.kubernetes.io/name": "minio"}, 9000)


def test_namespace_exists_with_its_labels_before_the_presync_hook(all_objects, overlays):
    appset = next(o for _, o in all_objects if o["kind"] == "ApplicationSet" and o["metadata"]["name"] == "detector")
    spec = appset["spec"]["template"]["spec"]
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    managed = spec["syncPolicy"]["managedNamespaceMetadata"]["labels"]
    for env in ENVIRONMENTS:
        namespace = find(overlays[env], "Namespace", f"aidetect-{env}")
        assert managed.items() <= namespace["metadata"]["labels"].items(), "the namespace's two label sources differ"
    assert managed["aidetect.io/detector"] == "true" and managed["pod-security.kubernetes.io/enforce"] == "restricted"


def test_backup_covers_every_records_database(rendered, overlays):
    mlflow = rendered[GITOPS / "infrastructure" / "mlflow"]
    backup = find(mlflow, "CronJob", "postgres-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    dump = " ".join(backup["initContainers"][0]["args"])
    dumped = set(re.search(r"for db in ([a-z_ ]+);", dump).group(1).split())
    initdb = find(mlflow, "ConfigMap", "postgres-initdb")["data"]["10-aidetect.sql"]
    for env in ("production", "canary"):
        db = DB_URL.match(secret_env(overlays[env], "detector-env")["AIDETECT_STORE_URL"])["db"]
        assert db in dumped, f"{env}'s records ({db}) are not in the nightly backup"
        assert f"CREATE DATABASE {db};" in initdb
    staging = DB_URL.match(secret_env(overlays["staging"], "detector-env")["AIDETECT_STORE_URL"])["db"]
    assert f"CREATE DATABASE {staging};" in initdb
