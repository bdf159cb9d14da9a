"""The data a step works on: the snapshot retrain trains from, and the frozen set evaluate gates on.

    data = take_snapshot(settings, cfg)        # a new snapshot from the ETL store, or the plain manifest
    fetch_snapshot(settings, cfg, name, "7")   # the snapshot v7 trained on, onto this pod (MLflow + object store)
    eval_set = resolve_eval_set(settings, cfg) # configured, else latest snapshot's test split, else val
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from aidetect.settings import Settings
from ci.config import CIConfig
from ci.errors import StepError
from model import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataInput:
    manifest: Path
    digest: str
    snapshot: int | None  # snapshot version, None when the plain manifest was used


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def latest_snapshot(snapshots_dir: Path) -> Path | None:
    """Folder of the newest complete snapshot (vNNNN with manifest.csv and snapshot.json), or None."""
    if not snapshots_dir.is_dir():
        return None
    done = [d for d in snapshots_dir.glob("v[0-9]*")
            if (d / "manifest.csv").is_file() and (d / "snapshot.json").is_file()]
    return max(done, key=lambda d: int(d.name[1:]), default=None)


def snapshots_dir(settings: Settings, cfg: CIConfig) -> Path:
    return Path(cfg.snapshots_dir or Path(settings.home).expanduser() / "snapshots")


def _open_store(settings: Settings):
    from model.etl.store import Store

    return Store.open(settings.store_url, settings.object_store, settings=settings)


def take_snapshot(settings: Settings, cfg: CIConfig) -> DataInput:
    """A new data snapshot (so moderator labels reach the next model), or the plain manifest when off."""
    wanted = cfg.snapshot.lower()
    if wanted not in ("auto", "always", "never"):
        raise StepError(f"AIDETECT_CI_SNAPSHOT={cfg.snapshot!r}: use auto, always or never")
    if wanted == "never" or (wanted == "auto" and not settings.store_url):
        return DataInput(Path(settings.manifest), file_digest(settings.manifest), None)
    from model.etl.snapshots import materialize, write_snapshot
    from model.etl.store import StoreError

    try:
        store = _open_store(settings)
        try:
            info = write_snapshot(store, snapshots_dir(settings, cfg))
            materialize(info.csv, store)
        finally:
            store.close()
    except StoreError as e:
        raise StepError(f"data snapshot failed: {e}") from None
    log.info("snapshot v%04d (%s, %s)", info.version, info.digest[:12], "new" if info.created else "unchanged")
    return DataInput(info.csv, info.digest, info.version)


def fetch_snapshot(settings: Settings, cfg: CIConfig, name: str, version: str) -> Path | None:
    """The data snapshot `version` was trained on, in this pod's snapshots folder: its manifest and sidecar
    from the version's MLflow run, its images from the object store. How `evaluate` reads what `retrain`
    wrote on another node without a shared volume. None when the version used no snapshot."""
    mv = registry.get_version(name, version)
    number = (mv.tags or {}).get(registry.TAG_DATA_SNAPSHOT)
    if cfg.eval_manifest or not number:
        return None
    target = snapshots_dir(settings, cfg) / f"v{int(number):04d}"
    if not ((target / "manifest.csv").is_file() and (target / "snapshot.json").is_file()):
        import tempfile

        import mlflow

        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(mlflow.artifacts.download_artifacts(
                    run_id=mv.run_id, artifact_path=registry.SNAPSHOT_ARTIFACTS, dst_path=tmp))
                target.mkdir(parents=True, exist_ok=True)
                for file in ("manifest.csv", "snapshot.json"):
                    shutil.copyfile(local / file, target / file)
        except Exception as e:
            raise StepError(f"{registry.model_uri(name, version)} was trained on snapshot v{int(number):04d}, but "
                            f"its files are not in run {mv.run_id} ({str(e).splitlines()[0][:200]}); retrain it"
                            ) from None
    from model.etl.snapshots import materialize
    from model.etl.store import StoreError

    try:
        store = _open_store(settings)
        try:
            materialize(target / "manifest.csv", store)
        finally:
            store.close()
    except StoreError as e:
        raise StepError(f"the images of snapshot v{int(number):04d} cannot be fetched: {e}") from None
    return target


@dataclass(frozen=True)
class EvalSet:
    manifest: Path
    split: str
    why: str
    digest: str
    samples: list = field(repr=False, default_factory=list)

    def describe(self) -> dict:
        return {"manifest": str(self.manifest), "split": self.split, "why": self.why, "digest": self.digest,
                "n": len(self.samples)}


def _splits(manifest: Path) -> set[str]:
    with Path(manifest).open(newline="", encoding="utf-8") as f:
        return {(row.get("split") or "").strip() for row in csv.DictReader(f)}


def resolve_eval_set(settings: Settings, cfg: CIConfig) -> EvalSet:
    """The frozen set the gate compares on: configured, else the latest snapshot's test split, else val."""
    from model.manifest import read_manifest, subsample

    if cfg.eval_manifest:
        manifest, why = Path(cfg.eval_manifest), "AIDETECT_CI_EVAL_MANIFEST names it"
    elif (snap := latest_snapshot(snapshots_dir(settings, cfg))) is not None:
        manifest, why = snap / "manifest.csv", f"it is the latest data snapshot ({snap.name})"
    else:
        manifest, why = Path(settings.manifest), "no data snapshot exists, so the shared manifest is used"
    if not manifest.is_file():
        raise StepError(f"evaluation manifest not found: {manifest}")
    split = cfg.eval_split or ("test" if "test" in _splits(manifest) else "val")
    if not cfg.eval_split:
        why += "; split " + ("test: the frozen test split" if split == "test" else "val: it has no test split")
    samples = read_manifest(manifest, split=split)
    if cfg.eval_per_group:
        samples = subsample(samples, cfg.eval_per_group)
    if not samples:
        raise StepError(f"{manifest}: no images in split {split!r} to evaluate on")
    h = hashlib.sha256(f"{split}\n".encode())
    # File names, not folders: a snapshot's object keys are content hashes, so the digest follows content.
    for s in sorted(samples, key=lambda s: (s.path.name, s.source, s.label)):
        h.update(f"{s.path.name}\t{s.label}\t{s.source}\n".encode())
    return EvalSet(manifest, split, why, h.hexdigest(), samples)
