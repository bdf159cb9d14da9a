"""Jobs that tie the model code to MLflow: train-and-register, and evaluate-and-maybe-promote.

Each job takes the settings object and returns plain data; the CLI only formats it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from pathlib import Path

import mlflow

from aidetect.settings import Settings
from model import registry
from model.registry import ModelRef

log = logging.getLogger(__name__)


def flat_metrics(report: dict, prefix: str = "val") -> dict[str, float]:
    """{'overall': {'auroc': ..}, 'faces': {..}} -> {'val_auroc': .., 'val_faces_auroc': ..}"""
    out = {}
    for source, m in report.items():
        tag = prefix if source == "overall" else f"{prefix}_{source}"
        for k, v in m.items():
            if v == v:  # NaN metrics (one-label sources) are left out rather than logged
                out[f"{tag}_{k}"] = float(v)
    return out


def git_sha() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def log_training_data(manifest: Path) -> str:
    """Record what the run learned from: a data snapshot as the run's dataset input, or a plain
    manifest by content hash. Returns the digest the model version is tagged with."""
    import hashlib

    if manifest.with_name("snapshot.json").is_file():
        from model.etl.snapshots import log_snapshot_input, read_sidecar

        log_snapshot_input(manifest)
        return read_sidecar(manifest)[1]["digest"]
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    mlflow.set_tag("aidetect.manifest.sha256", digest)
    return digest


def train_and_register(settings: Settings, cfg, progress=None) -> tuple[ModelRef, dict]:
    """Train the CPU detector, log everything to MLflow, register a new model version."""
    from model.manifest import read_manifest
    from model.packaging import log_bundle
    from model.train import fit, flat_params

    read_manifest(settings.manifest, check_files=False)  # fail on a bad manifest before creating any store
    registry.configure(settings)
    exp_id = registry.ensure_experiment(settings)
    with mlflow.start_run(experiment_id=exp_id, run_name="train-cnn") as run:
        mlflow.log_params(flat_params(cfg))
        mlflow.log_param("manifest", str(settings.manifest))
        data_digest = log_training_data(settings.manifest)
        if sha := git_sha():
            mlflow.set_tag("git_sha", sha)
        bundle, report = fit(cfg, settings.manifest, progress, cache=settings.home / "cache")
        bundle.info["run_id"] = run.info.run_id
        for i, loss in enumerate(report["losses"]):
            if i % 5 == 0 or i == len(report["losses"]) - 1:
                mlflow.log_metric("train_loss", loss, step=i)
        mlflow.log_metrics(flat_metrics(report["metrics"]))
        mlflow.log_metrics({"train_seconds": report["train_seconds"], "load_seconds": report["load_seconds"]})
        mlflow.log_dict(bundle.metadata(), "detector.json")
        info = log_bundle(bundle)
        overall = report["metrics"]["overall"]
        ref = registry.register(
            info.model_uri,
            settings.model_name,
            tags={
                "val_auroc": f"{overall['auroc']:.4f}",
                "git_sha": sha or "",
                "detector": cfg.spec.arch,
                "data_digest": data_digest,
            },
        )
    log.info("registered %s from run %s", ref.uri, run.info.run_id)
    report["run_id"] = run.info.run_id
    return ref, report


NONPHOTO_EVAL_PER_KIND = 40  # rendered non-photos per kind scored by evaluate (200 in all: a 5% FPR is 10 images)


def rendered_eval_set(settings: Settings, per_group: int | None = None):
    """model.nonphoto's `eval` setting (fonts, templates and tools training never saw), rendered once into
    AIDETECT_HOME/cache; quick runs (per_group) render no more per kind than per_group."""
    from model.nonphoto import cached_set

    n = min(NONPHOTO_EVAL_PER_KIND, per_group or NONPHOTO_EVAL_PER_KIND)
    return cached_set(settings.home / "cache", "eval", n, 0, settings.manifest)


def evaluate_and_promote(
    settings: Settings,
    uri: str | None = None,
    out_dir: Path | None = None,
    progress=None,
    per_group: int | None = None,
) -> tuple[ModelRef, dict]:
    """Evaluate a registered version on the val split (as is and re-encoded at JPEG q60),
    log metrics and plots to MLflow, and give it the production alias if nobody holds it."""
    from model.evaluate import evaluate_bundle, log_to_mlflow
    from model.manifest import read_manifest, subsample

    registry.configure(settings)
    uri = uri or f"models:/{settings.model_name}/latest"
    bundle, ref = registry.load_detector(uri)
    exp_id = registry.ensure_experiment(settings)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir or tmp)
        samples = read_manifest(settings.manifest, split="val")
        if per_group:
            samples = subsample(samples, per_group)
        nonphoto = rendered_eval_set(settings, per_group)
        result = evaluate_bundle(bundle, settings.manifest, out, samples=samples, progress=progress, nonphoto=nonphoto)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"evaluate-v{ref.version}") as run:
            mlflow.set_tags({"model_name": ref.name, "model_version": ref.version})
            mlflow.log_metrics(flat_metrics(result["metrics"], "val"))
            mlflow.log_metrics(flat_metrics(result["metrics_q60"], "val_q60"))
            mlflow.log_dict(result, "evaluation.json")
            log_to_mlflow(result, out)
    overall, q60 = result["metrics"]["overall"], result["metrics_q60"]["overall"]
    registry.set_version_tags(
        ref,
        {
            "eval_run_id": run.info.run_id,
            "val_auroc": f"{overall['auroc']:.4f}",
            "val_q60_auroc": f"{q60['auroc']:.4f}",
            "thresholds": json.dumps(bundle.thresholds),
        },
    )
    holder = registry.alias_version(ref.name, settings.production_alias)
    if holder is None:
        registry.set_alias(ref.name, settings.production_alias, ref.version)
        result["promoted"] = True
        log.info("%s had no %s version: gave the alias to %s", ref.name, settings.production_alias, ref.uri)
    else:
        result["promoted"] = False
    result["production_version"] = holder or ref.version
    result["eval_run_id"] = run.info.run_id
    return ref, result
