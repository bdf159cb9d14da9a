"""The runner scale sets in gitops/ are the ones .github/workflows/retrain.yml runs on: same names as its
`runs-on:` labels, a scratch volume where the jobs' AIDETECT_HOME points and no shared one, the jobs'
settings Secret by reference, the GPU job on the GPU node. Keeps the workflow and the cluster from drifting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from gitops_render import GITOPS, REPO, render

WORKFLOW = REPO / ".github" / "workflows" / "retrain.yml"
CONTROLLERS = GITOPS / "infrastructure" / "controllers"
RUNNERS = GITOPS / "infrastructure" / "runners"
SCALE_SET_CHART = "gha-runner-scale-set"
JOB_CONTAINER = "$job"  # how the runner's Kubernetes hook names the job container in a pod template
# What the in-cluster steps read from the environment (docs/retrain.md, "Where the work runs").
JOB_SETTINGS = {"MLFLOW_TRACKING_URI", "AIDETECT_STORE_URL", "AIDETECT_OBJECT_STORE",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _applications() -> list[dict]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(CONTROLLERS.glob("*.yaml"))]
    return [d for d in docs if d.get("kind") == "Application"]


def _scale_sets() -> dict[str, dict]:
    """{Application name: Application} for every gha-runner-scale-set chart."""
    return {a["metadata"]["name"]: a for a in _applications() if a["spec"]["source"].get("chart") == SCALE_SET_CHART}


def _values(app: dict) -> dict:
    return app["spec"]["source"]["helm"]["valuesObject"]


def _workflow_jobs() -> dict[str, dict]:
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def _in_cluster_jobs() -> dict[str, dict]:
    return {job_id: job for job_id, job in _workflow_jobs().items() if not job["runs-on"].startswith("ubuntu-")}


def _image_aidetect_home() -> str:
    """AIDETECT_HOME as the aidetect image sets it (the runtime stage of the Dockerfile)."""
    runtime = (REPO / "Dockerfile").read_text().split(" AS runtime", 1)[1]
    found = re.findall(r"\bAIDETECT_HOME=(\S+)", runtime)
    assert len(found) == 1, found
    return found[0]


def _job_aidetect_home(job: dict) -> str:
    """The AIDETECT_HOME a retrain.yml job container sees: its own env, the job's, the workflow's, the image's."""
    workflow_env = yaml.safe_load(WORKFLOW.read_text()).get("env", {})
    for env in (job["container"].get("env", {}), job.get("env", {}), workflow_env):
        if "AIDETECT_HOME" in env:
            return env["AIDETECT_HOME"]
    return _image_aidetect_home()


@pytest.fixture(scope="module")
def runners() -> list[dict]:
    return render(RUNNERS)


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in {RUNNERS.relative_to(REPO)}, found {len(found)}"
    return found[0]


def _runner_container(app: dict) -> dict:
    containers = _values(app)["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "runner")


def _job_template(app: dict, objects: list[dict]) -> dict:
    """The job pod template (from its ConfigMap) the runner of this scale set hands to its container hook."""
    runner = _runner_container(app)
    path = next(e["value"] for e in runner["env"] if e["name"] == "ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")
    mount = next(m for m in runner["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/"))
    volume = next(v for v in _values(app)["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    config_map = _one(objects, "ConfigMap", volume["configMap"]["name"])
    return yaml.safe_load(config_map["data"][Path(path).name])


def _job_container(template: dict) -> dict:
    return next(c for c in template["spec"]["containers"] if c["name"] == JOB_CONTAINER)


def _home_mount(template: dict) -> tuple[dict, str]:
    """(volume, mount path) of the volume mounted at the job container's AIDETECT_HOME."""
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    env = {e["name"]: e["value"] for e in _job_container(template).get("env", [])}
    mounts = [(volumes[m["name"]], m["mountPath"]) for m in _job_container(template)["volumeMounts"]
              if m["mountPath"] == env.get("AIDETECT_HOME")]
    assert len(mounts) == 1, mounts
    return mounts[0]


# --- the workflow and the cluster agree ------------------------------------------------------


def _runner_labels(job: dict) -> set[str]:
    """The scale sets a job may run on: its label, or those an expression chooses between (retrain)."""
    quoted = set(re.findall(r"'(aidetect-[\w-]+)'", job["runs-on"]))
    return quoted or {job["runs-on"]}


def test_scale_sets_are_named_as_retrain_yml_runs_on():
    labels = set().union(*(_runner_labels(job) for job in _in_cluster_jobs().values()))
    assert labels == {"aidetect-cluster", "aidetect-gpu"}, labels
    scale_sets = _scale_sets()
    assert set(scale_sets) == labels
    for name, app in scale_sets.items():
        # The scale set registers under runnerScaleSetName (default: the release name); both must be it.
        assert _values(app)["runnerScaleSetName"] == name
        assert app["spec"]["source"]["helm"]["releaseName"] == name
    assert _runner_labels(_workflow_jobs()["retrain"]) == {"aidetect-gpu", "aidetect-cluster"}  # GPU or CPU nodes


def test_every_in_cluster_job_has_scratch_at_its_aidetect_home_and_nothing_shared(runners):
    scale_sets = _scale_sets()
    for job_id, job in _in_cluster_jobs().items():
        home = _job_aidetect_home(job)
        for label in _runner_labels(job):
            template = _job_template(scale_sets[label], runners)
            volume, mount_path = _home_mount(template)
            assert mount_path == home, f"{job_id}: AIDETECT_HOME {home}, scratch mounted at {mount_path}"
            # Steps hand artefacts over through MLflow and the object store (ci/snapshot.py fetch_snapshot).
            assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), (job_id, volume)
            assert not [v for v in template["spec"]["volumes"] if "persistentVolumeClaim" in v], job_id
    assert not [o for o in runners if o["kind"] == "PersistentVolumeClaim"]
    claims = [o for d in GITOPS.rglob("*.yaml") for o in yaml.safe_load_all(d.read_text())
              if isinstance(o, dict) and o.get("kind") == "PersistentVolumeClaim"]
    assert not [c for c in claims if "ReadWriteMany" in c["spec"].get("accessModes", [])]


def test_scale_sets_live_beside_their_secret_claim_and_templates(runners):
    namespace = _one(runners, "Namespace", "aidetect-runners")["metadata"]["name"]
    assert {o["metadata"].get("namespace") for o in runners if o["kind"] != "Namespace"} == {namespace}
    runners_app = yaml.safe_load((GITOPS / "clusters" / "production" / "runners.yaml").read_text())
    assert runners_app["spec"]["source"]["path"] == str(RUNNERS.relative_to(REPO))
    assert runners_app["spec"]["destination"]["namespace"] == namespace
    github_secrets = {o["spec"]["target"]["name"] for o in runners if o["kind"] == "ExternalSecret"}
    for name, app in _scale_sets().items():
        assert app["spec"]["destination"]["namespace"] == namespace, name
        # By reference only: a map here would make the chart render a Secret with the credentials.
        assert _values(app)["githubConfigSecret"] in github_secrets, name


# --- the shape of the scale sets -------------------------------------------------------------


def test_scale_sets_start_from_zero_in_kubernetes_mode():
    scale_sets = _scale_sets()
    for name, app in scale_sets.items():
        values = _values(app)
        assert values["minRunners"] == 0, name
        assert values["containerMode"]["type"] == "kubernetes", name
    assert _values(scale_sets["aidetect-cluster"])["maxRunners"] == 1


def test_charts_and_runner_image_are_pinned_and_the_controller_matches():
    controller = next(a for a in _applications()
                      if a["spec"]["source"].get("chart") == "gha-runner-scale-set-controller")
    version = controller["spec"]["source"]["targetRevision"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    for name, app in _scale_sets().items():
        # ARC supports a scale set only at its controller's version.
        assert app["spec"]["source"]["targetRevision"] == version, name
        assert app["spec"]["source"]["repoURL"] == controller["spec"]["source"]["repoURL"]
        image = _runner_container(app)["image"]
        assert re.fullmatch(r"ghcr\.io/actions/actions-runner:\d+\.\d+\.\d+", image), (name, image)
        ref = _values(app)["controllerServiceAccount"]
        assert ref == {"namespace": controller["spec"]["destination"]["namespace"],
                       "name": controller["spec"]["source"]["helm"]["valuesObject"]["serviceAccount"]["name"]}


def test_gpu_job_runs_on_the_gpu_node_like_the_detector_gpu_tier(runners):
    tier = yaml.safe_load((GITOPS / "apps/detector/components/gpu-tier/deployment.yaml").read_text())
    tier_pod = tier["spec"]["template"]["spec"]
    app = _scale_sets()["aidetect-gpu"]
    runner_pod = _values(app)["template"]["spec"]
    job_pod = _job_template(app, runners)["spec"]
    for pod in (runner_pod, job_pod):
        assert pod["nodeSelector"] == tier_pod["nodeSelector"]
        assert pod["tolerations"] == tier_pod["tolerations"]
    assert job_pod["runtimeClassName"] == tier_pod["runtimeClassName"]
    resources = _job_container(_job_template(app, runners))["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    # The runner only starts the job pod; asking for the one GPU itself would leave that pod Pending.
    assert "nvidia.com/gpu" not in str(_runner_container(app)["resources"])
    cpu_job = _job_template(_scale_sets()["aidetect-cluster"], runners)["spec"]
    assert "nodeSelector" not in cpu_job and "nvidia.com/gpu" not in str(cpu_job)


def test_runners_listeners_and_jobs_are_non_root_with_requests_and_limits(runners):
    for name, app in _scale_sets().items():
        values = _values(app)
        listener_pod = values["listenerTemplate"]["spec"]
        job = _job_template(app, runners)["spec"]
        pods = [("listener", listener_pod, listener_pod["containers"][0]),
                ("runner", values["template"]["spec"], _runner_container(app)),
                ("job", job, _job_container({"spec": job}))]
        for what, pod, container in pods:
            where = f"{name} {what}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][section].keys(), (where, section)
        assert _job_container({"spec": job})["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_runner_namespace_denies_by_default_and_mlflow_admits_only_job_pods(runners, rendered):
    deny = _one(runners, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    job_labels = _job_template(_scale_sets()["aidetect-cluster"], runners)["metadata"]["labels"]
    job_policy = _one(runners, "NetworkPolicy", "ci-job")
    assert job_policy["spec"]["podSelector"]["matchLabels"].items() <= job_labels.items()
    mlflow = rendered[GITOPS / "infrastructure" / "mlflow"]
    for name in ("mlflow", "postgres", "minio"):
        policy = next(o for o in mlflow if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name)
        peers = [p for rule in policy["spec"]["ingress"] for p in rule["from"]
                 if p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                 == "aidetect-runners"]
        # Job pods only: the runner pods, which also reach the internet, do not get the data.
        assert peers and all(p["podSelector"]["matchLabels"].items() <= job_labels.items() for p in peers), name
