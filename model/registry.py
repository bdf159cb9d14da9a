"""MLflow tracking and registry: where runs go, how versions are named, found and loaded.

    configure(settings)                 # tracking + registry URIs, experiment with local artifacts
    ref = resolve("models:/aidetect@production")   # -> ModelRef(name, version, uri)
    bundle, ref = load_detector(settings.resolved_model_uri)
    ref = version_ref("aidetect", "3")            # models:/aidetect/3, the one place that string is built

The registry contract lives here and nowhere else: model URIs, the stage -> alias mapping, every
version tag name (TAG_*), the commit a version came from (git_sha) and how a run records its data
(log_data_input). Every failure a user can cause (no such model, alias unset, registry unreachable) is a
RegistryError with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetect.settings import Settings

log = logging.getLogger(__name__)

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")


CHALLENGER = "challenger"  # alias of the version the loop just trained, before the gate

# Version tags. Written by model.jobs (train, evaluate) and the ci loop; read by ci, the report and export.
TAG_GIT_SHA = "git_sha"
TAG_DETECTOR = "detector"
TAG_VAL_AUROC = "val_auroc"
TAG_VAL_Q60_AUROC = "val_q60_auroc"
TAG_THRESHOLDS = "thresholds"
TAG_EVAL_RUN_ID = "eval_run_id"
TAG_DATA_DIGEST = "data.digest"
TAG_DATA_DIGEST_LEGACY = "data_digest"  # what `aidetect train` wrote before; still read for those versions
TAG_DATA_SNAPSHOT = "data.snapshot"
TAG_DATA_MANIFEST = "data.manifest"
TAG_TRAIN_KEY = "ci.train_key"
TAG_EVAL_DIGEST = "ci.eval.digest"
TAG_EVAL_METRICS = "ci.eval.metrics"
TAG_EVAL_AUROC = "ci.eval.auroc"
TAG_EVAL_AUROC_Q60 = "ci.eval.auroc_q60"
TAG_EVAL_FPR = "ci.eval.fpr"
TAG_GATE = "ci.gate"  # passed | rejected
TAG_GATE_REASON = "ci.gate.reason"
TAG_GATE_AGAINST = "ci.gate.against"
TAG_GATE_EVAL = "ci.gate.eval_digest"
TAG_GATE_KEY = "ci.gate.key"  # evaluation set + incumbent + rules the decision was made with
TAG_GATE_RUN_ID = "ci.gate.run_id"
# Per-stage tags: f"{TAG_REPLACED}.{stage}" (see stage_tag)
TAG_REPLACED = "ci.replaced"  # the version this one replaced in the stage
TAG_RESTORED = "ci.restored"  # the version a rollback took out to put this one back
TAG_ROLLED_BACK = "ci.rolled_back"  # when this version was rolled back out of the stage
TAG_EXPORTED_FROM = "exported_from"  # an ONNX export: the version whose weights it holds
TAG_RUNTIME = "runtime"  # an ONNX export: the runtime it was checked on
TAG_OPSET = "opset"  # an ONNX export: its ONNX opset
TAG_PREFIX_CI = "ci."  # every tag the retrain loop writes (TAG_GATE, TAG_EVAL_*, TAG_REPLACED, ...)
# Tags that judge a version (an evaluation, a CI decision) rather than describe its weights: a new version made
# from the same weights, such as an export, earns its own (prefixes, so stage-suffixed tags count too).
JUDGEMENT_TAG_PREFIXES = (TAG_PREFIX_CI, TAG_EVAL_RUN_ID, TAG_VAL_Q60_AUROC)
SNAPSHOT_ARTIFACTS = "data-snapshot"  # artifact folder of a training run: the snapshot's manifest and sidecar


def model_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def alias_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def version_ref(name: str, version: str | int, run_id: str | None = None) -> ModelRef:
    return ModelRef(name, str(version), model_uri(name, version), run_id)


def stage_alias(settings: Settings, stage: str) -> str:
    """The registry alias a stage holds: production's is configurable (AIDETECT_PRODUCTION_ALIAS)."""
    return settings.production_alias if stage == "production" else stage


def stage_tag(tag: str, stage: str) -> str:
    return f"{tag}.{stage}"


def data_digest(tags: dict) -> str | None:
    return tags.get(TAG_DATA_DIGEST) or tags.get(TAG_DATA_DIGEST_LEGACY)


def git_sha() -> str | None:
    """The commit being built: GITHUB_SHA in Actions, else the checkout's HEAD, else None."""
    if sha := os.environ.get("GITHUB_SHA"):
        return sha
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def log_data_input(manifest: Path) -> str:
    """Record what the active run learned from: a data snapshot as the run's dataset input, or a plain
    manifest by content hash. Returns the digest the model version is tagged with (TAG_DATA_DIGEST)."""
    if manifest.with_name("snapshot.json").is_file():
        from model.etl.snapshots import log_snapshot_input, read_sidecar

        log_snapshot_input(manifest)
        return read_sidecar(manifest)[1]["digest"]
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    mlflow.set_tag("aidetect.manifest.sha256", digest)
    return digest


class RegistryError(RuntimeError):
    """The registry cannot give what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    uri: str  # exact, version-pinned URI: models:/<name>/<version>
    run_id: str | None = None


REACH_TIMEOUT_S = 5.0


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store; for the embedded SQLite default, create the home dir. A tracking
    or registry server that does not answer at all is a RegistryError here (check_reachable)."""
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and settings.tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    for server in dict.fromkeys((uri, settings.registry_uri or uri)):
        check_reachable(server)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.registry_uri or uri)
    return uri


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Raise RegistryError when the MLflow server at an http(s) `uri` cannot be reached within `timeout` seconds.

    MLflow's own client retries a refused connection 7 times with exponential backoff: a command pointed at a
    server that is down printed urllib3 warnings for minutes before its error. Any HTTP answer counts as
    reachable (a proxy's 401 or 404 is for MLflow's own calls to report), and the probe sends nothing but
    `GET /health`, so it verifies no certificate: a private CA that MLflow is told about is not a failure."""
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout, verify=False)
    except httpx.HTTPError as e:
        raise RegistryError(
            f"MLflow at {uri} is unreachable ({_short(e) or type(e).__name__}): start it, or set "
            "AIDETECT_TRACKING_URI (--tracking-uri) to one that runs"
        ) from None


def ensure_experiment(settings: Settings) -> str:
    """Experiment id; local stores keep artifacts under $AIDETECT_HOME/mlartifacts, servers decide their own."""
    client = MlflowClient()
    try:
        exp = client.get_experiment_by_name(settings.experiment)
        if exp is not None:
            return exp.experiment_id
        local = not settings.resolved_tracking_uri.startswith(("http://", "https://"))
        location = settings.artifact_root.resolve().as_uri() if local else None
        return client.create_experiment(settings.experiment, artifact_location=location)
    except MlflowException as e:
        raise RegistryError(f"MLflow at {settings.resolved_tracking_uri} failed: {_short(e)}") from None


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:300]


def _client() -> MlflowClient:
    return MlflowClient()


def register(model_uri: str, name: str, tags: dict | None = None) -> ModelRef:
    """Register a logged model as a new version of `name`."""
    try:
        mv = mlflow.register_model(model_uri, name, tags=tags or {})
    except MlflowException as e:
        raise RegistryError(f"could not register {model_uri} as {name}: {_short(e)}") from None
    return version_ref(name, mv.version, mv.run_id)


def resolve(uri: str) -> ModelRef:
    """Exact name and version behind a models:/ URI (alias, number or 'latest')."""
    client = _client()
    try:
        if m := _ALIAS.match(uri):
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
        elif m := _VERSION.match(uri):
            if m["version"] == "latest":
                versions = client.search_model_versions(f"name='{m['name']}'")
                if not versions:
                    raise RegistryError(f"no versions of model {m['name']!r} are registered; run `aidetect train`")
                mv = max(versions, key=lambda v: int(v.version))
            else:
                mv = client.get_model_version(m["name"], m["version"])
        else:
            raise RegistryError(f"model URI {uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
    except MlflowException as e:
        raise RegistryError(f"{uri} cannot be resolved: {_short(e)}") from None
    except OSError as e:  # connection refused and friends, from a remote registry
        raise RegistryError(f"registry unreachable while resolving {uri}: {e}") from None
    return version_ref(mv.name, mv.version, mv.run_id)


def alias_version(name: str, alias: str) -> str | None:
    """Version holding `alias`, or None when no version does (or the model does not exist)."""
    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    try:
        _client().set_registered_model_alias(name, alias, version)
    except MlflowException as e:
        raise RegistryError(f"could not set {name}@{alias} -> {version}: {_short(e)}") from None


def get_version(name: str, version: str):
    """The registry's ModelVersion (tags, run_id, creation time); RegistryError when it cannot be read."""
    try:
        return _client().get_model_version(name, version)
    except MlflowException as e:
        raise RegistryError(f"{model_uri(name, version)} cannot be read: {_short(e)[:200]}") from None


def version_tags(name: str, version: str) -> dict:
    return dict(get_version(name, version).tags or {})


def find_version_by_tag(name: str, key: str, value: str):
    """Newest version of `name` whose tag `key` equals `value`, or None (also when the model does not exist)."""
    try:
        versions = _client().search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    hits = [v for v in versions if (v.tags or {}).get(key) == value]
    return max(hits, key=lambda v: int(v.version), default=None)


def delete_version_tag(ref: ModelRef, key: str) -> None:
    _client().delete_model_version_tag(ref.name, ref.version, key)


def set_version_tags(ref: ModelRef, tags: dict) -> None:
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(ref.name, ref.version, k, str(v))


def load_detector(uri: str):
    """(DetectorBundle, ModelRef) for a models:/ URI, through mlflow.pyfunc like any MLflow consumer."""
    from model.packaging import bundle_of

    ref = resolve(uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(ref.uri)
    except MlflowException as e:
        raise RegistryError(f"could not load {ref.uri}: {_short(e)}") from None
    except OSError as e:
        raise RegistryError(f"artifacts of {ref.uri} unreachable: {e}") from None
    log.info("loaded %s (run %s)", ref.uri, ref.run_id)
    return bundle_of(pyfunc), ref
