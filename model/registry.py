"""MLflow tracking and registry: where runs go, how versions are named, found and loaded.

    configure(settings)                 # tracking + registry URIs, experiment with local artifacts
    ref = resolve("models:/aidetect@production")   # -> ModelRef(name, version, uri)
    bundle, ref = load_detector(settings.resolved_model_uri)

Every failure a user can cause (no such model, alias unset, registry unreachable) is a
RegistryError with a message saying what to do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetect.settings import Settings

log = logging.getLogger(__name__)

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+|latest)$")


class RegistryError(RuntimeError):
    """The registry cannot give what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    uri: str  # exact, version-pinned URI: models:/<name>/<version>
    run_id: str | None = None


def configure(settings: Settings) -> str:
    """Point MLflow at the configured store; for the embedded SQLite default, create the home dir."""
    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and settings.tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(settings.registry_uri or uri)
    return uri


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
    return ModelRef(name, str(mv.version), f"models:/{name}/{mv.version}", mv.run_id)


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
    return ModelRef(mv.name, str(mv.version), f"models:/{mv.name}/{mv.version}", mv.run_id)


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
