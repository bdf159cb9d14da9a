"""`aidetect ci retrain`: snapshot, train, register, and give the version @challenger.

Idempotent: a version trained from the same commit, data and recipe (its train key) is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from aidetect.settings import Settings
from ci.config import CIConfig
from ci.snapshot import DataInput, take_snapshot
from model import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    name: str
    version: str
    uri: str
    reused: bool
    data: DataInput
    val_auroc: float | None

    def outputs(self) -> dict:
        return {"version": self.version, "model_uri": self.uri, "reused": self.reused,
                "data_digest": self.data.digest, "snapshot": self.data.snapshot or ""}


def _train_config(cfg: CIConfig):
    from model.train import RECIPE, load_config

    return load_config(cfg.recipe or RECIPE, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       per_group=cfg.per_group, seed=cfg.seed)


def train_key(sha: str | None, data_digest: str, params: dict) -> str:
    blob = json.dumps({"git": sha or "", "data": data_digest, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def retrain(settings: Settings, cfg: CIConfig, progress=None) -> RetrainResult:
    """Snapshot, train, register, tag (train key, snapshot, metrics) and give the version `challenger`.
    train_and_register already logs the data input and tags the git SHA and data digest."""
    import mlflow

    from model.jobs import flat_metrics, train_and_register
    from model.train import flat_params

    registry.configure(settings)
    name = settings.model_name
    data = take_snapshot(settings, cfg)
    tcfg = _train_config(cfg)
    key = train_key(registry.git_sha(), data.digest, flat_params(tcfg))
    existing = registry.find_version_by_tag(name, registry.TAG_TRAIN_KEY, key)
    if existing is not None:
        version, reused = str(existing.version), True
        log.info("v%s was trained from this commit, data and recipe: reusing it", version)
        val_auroc = float((existing.tags or {}).get(registry.TAG_VAL_AUROC, "nan"))
    else:
        trained_on = Settings(**{**settings.model_dump(), "manifest": data.manifest})
        ref, report = train_and_register(trained_on, tcfg, progress)
        version, reused = ref.version, False
        val_auroc = report["metrics"]["overall"]["auroc"]
        if data.snapshot is not None:
            # The snapshot's files travel with the run, its images are in the object store: the
            # evaluate step, on another pod with nothing shared, fetches both (ci.snapshot.fetch_snapshot).
            with mlflow.start_run(run_id=ref.run_id):
                for file in ("manifest.csv", "snapshot.json"):
                    mlflow.log_artifact(str(data.manifest.parent / file), registry.SNAPSHOT_ARTIFACTS)
        tags = {registry.TAG_TRAIN_KEY: key, registry.TAG_DATA_MANIFEST: str(data.manifest),
                registry.TAG_DATA_SNAPSHOT: "" if data.snapshot is None else str(data.snapshot)}
        tags.update({k: f"{v:.4f}" for k, v in flat_metrics(report["metrics"]).items() if k.endswith("auroc")})
        registry.set_version_tags(ref, tags)
    registry.set_alias(name, registry.CHALLENGER, version)
    return RetrainResult(name, version, registry.model_uri(name, version), reused, data, val_auroc)
