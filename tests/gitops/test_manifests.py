"""Every kustomization builds, and every object it renders is valid: core kinds against the schemas of
the Kubernetes minor the k3s pin runs (strict), custom resources against their CRD's JSON schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
from gitops_render import GITOPS, REPO, crd_schema, crd_schema_dir, kubernetes_minor, kustomize_dirs, render

# The cluster's own version (ansible/roles/k3s_server/defaults/main.yml), so a k3s bump re-checks the manifests.
KUBERNETES_VERSION = kubernetes_minor()
# API groups served by Kubernetes itself; anything else is a custom resource.
CORE_GROUPS = {"", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
               "autoscaling", "storage.k8s.io", "scheduling.k8s.io", "node.k8s.io"}


def _group_version(obj: dict) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version


def _name(directory: Path, obj: dict) -> str:
    return f"{directory.relative_to(REPO)}: {obj['kind']}/{obj['metadata'].get('name')}"


@pytest.mark.parametrize("directory", kustomize_dirs(), ids=lambda d: str(d.relative_to(GITOPS)))
def test_every_kustomization_builds(directory):
    objects = render(directory)
    assert objects, f"{directory} renders nothing"
    assert all({"apiVersion", "kind", "metadata"} <= obj.keys() for obj in objects)


def test_every_detector_environment_has_an_overlay():
    built = {d.name for d in kustomize_dirs() if d.parent.name == "overlays"}
    assert built == {"staging", "canary", "production"}


def test_shared_crd_schemas_are_present():
    root = crd_schema_dir()
    assert (root / "argoproj.io" / "rollout_v1alpha1.json").is_file(), (
        f"CRD schemas not found at {root}; set AIDETECT_CRD_SCHEMAS to the k8s-crd-schemas folder")


@pytest.mark.slow
def test_core_objects_validate_against_the_pinned_kubernetes_strict(all_objects):
    errors = []
    checked = 0
    for directory, obj in all_objects:
        if _group_version(obj)[0] not in CORE_GROUPS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{_name(directory, obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{_name(directory, obj)}: {exc.message}")
    assert not errors, "\n".join(errors)
    assert checked > 50  # the whole platform, not a stray file


def test_custom_resources_validate_against_theircrd_schema(all_objects):
    errors = []
    kinds = set()
    for directory, obj in all_objects:
        group, version = _group_version(obj)
        if group in CORE_GROUPS:
            continue
        schema = crd_schema(group, obj["kind"], version)
        validator = jsonschema.Draft7Validator(schema)
        for error in validator.iter_errors(obj):
            path = ".".join(str(p) for p in error.absolute_path)
            errors.append(f"{_name(directory, obj)}: {path}: {error.message}")
        kinds.add(obj["kind"])
    assert not errors, "\n".join(errors)
    # The kinds the platform is built on must all have been through a schema.
    assert {"Application", "ApplicationSet", "AppProject", "Rollout", "AnalysisTemplate", "HTTPScaledObject",
            "ExternalSecret", "ClusterSecretStore", "PodMonitor", "PrometheusRule", "ClusterIssuer"} <= kinds


def test_schema_check_rejects_an_unknown_field():
    # The check above is only worth something if a typo fails it.
    schema = crd_schema("http.keda.sh", "HTTPScaledObject", "v1alpha1")
    bad = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"service": "s", "port": 8000}, "replica": {"min": 0}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
