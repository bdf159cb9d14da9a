"""Jobs that tie the model code to MLflow: train-and-register, and evaluate-and-maybe-promote.

Each job takes the settings object and returns plain data; the CLI only formats it.
"""

from __future__ import annotations

import json
import logging
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
        data_digest = registry.log_data_input(settings.manifest)
        _log_recipe_and_families(cfg)
        if sha := registry.git_sha():
            mlflow.set_tag(registry.TAG_GIT_SHA, sha)
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
                registry.TAG_VAL_AUROC: f"{overall['auroc']:.4f}",
                registry.TAG_GIT_SHA: sha or "",
                registry.TAG_DETECTOR: cfg.spec.arch,
                registry.TAG_DATA_DIGEST: data_digest,
            },
        )
    log.info("registered %s from run %s", ref.uri, run.info.run_id)
    report["run_id"] = run.info.run_id
    return ref, report


def _log_recipe_and_families(cfg) -> None:
    """The recipe file and the generator-family table beside the resolved params, so a run says which recipe
    (bench/recipes.py's table) and which family grouping (the leave-out folds) it was made under."""
    from model.sources import SOURCES_TABLE

    mlflow.log_artifact(str(SOURCES_TABLE), "data")
    if cfg.recipe and Path(cfg.recipe).is_file():
        mlflow.set_tag("aidetect.recipe", Path(cfg.recipe).stem)
        mlflow.log_artifact(cfg.recipe, "recipe")


NONPHOTO_EVAL_PER_KIND = 40  # rendered non-photos per kind scored by evaluate (200 in all: a 5% FPR is 10 images)


def rendered_eval_set(settings: Settings, per_group: int | None = None):
    """model.nonphoto's `eval` setting (fonts, templates and tools training never saw), rendered once into
    AIDETECT_HOME/cache; quick runs (per_group) render no more per kind than per_group."""
    from model.nonphoto import cached_set

    n = min(NONPHOTO_EVAL_PER_KIND, per_group or NONPHOTO_EVAL_PER_KIND)
    return cached_set(settings.home / "cache", "eval", n, 0, settings.manifest)


def evaluate_and_log(settings: Settings, bundle, ref: ModelRef, manifest: Path, samples, split: str = "val",
                     out_dir: Path | None = None, progress=None, nonphoto=None, run_name: str | None = None,
                     tags: dict | None = None) -> tuple[dict, str]:
    """Evaluate a loaded version on `samples` (as is and at JPEG q60) and log it as one MLflow run: metrics
    prefixed by the split, the full result, group tables and plots. The one path `aidetect evaluate` and
    `aidetect ci evaluate` share. Returns (model.evaluate result, run id)."""
    from model.evaluate import evaluate_bundle, log_to_mlflow

    exp_id = registry.ensure_experiment(settings)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir or tmp)
        result = evaluate_bundle(bundle, manifest, out, split=split, samples=samples, progress=progress,
                                 nonphoto=nonphoto)
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name or f"evaluate-v{ref.version}") as run:
            mlflow.set_tags({"model_name": ref.name, "model_version": ref.version, **(tags or {})})
            mlflow.log_params({"eval_manifest": str(manifest), "eval_split": split, "eval_n": len(samples)})
            mlflow.log_metrics(flat_metrics(result["metrics"], split))
            mlflow.log_metrics(flat_metrics(result["metrics_q60"], f"{split}_q60"))
            mlflow.log_metric(f"{split}_fpr_at_threshold", result["fp_rate_at_high"])
            mlflow.log_dict(result, "evaluation.json")
            log_to_mlflow(result, out)  # groups with intervals, tables, plots
    return result, run.info.run_id


def evaluate_and_promote(
    settings: Settings,
    uri: str | None = None,
    out_dir: Path | None = None,
    progress=None,
    per_group: int | None = None,
) -> tuple[ModelRef, dict]:
    """Evaluate a registered version on the val split (as is and re-encoded at JPEG q60),
    log metrics and plots to MLflow, and give it the production alias if nobody holds it."""
    from model.manifest import read_manifest, subsample

    registry.configure(settings)
    uri = uri or registry.model_uri(settings.model_name, "latest")
    bundle, ref = registry.load_detector(uri)
    samples = read_manifest(settings.manifest, split="val")
    if per_group:
        samples = subsample(samples, per_group)
    nonphoto = rendered_eval_set(settings, per_group)
    result, run_id = evaluate_and_log(settings, bundle, ref, settings.manifest, samples, "val", out_dir, progress,
                                      nonphoto)
    overall, q60 = result["metrics"]["overall"], result["metrics_q60"]["overall"]
    registry.set_version_tags(
        ref,
        {
            registry.TAG_EVAL_RUN_ID: run_id,
            registry.TAG_VAL_AUROC: f"{overall['auroc']:.4f}",
            registry.TAG_VAL_Q60_AUROC: f"{q60['auroc']:.4f}",
            registry.TAG_THRESHOLDS: json.dumps(bundle.thresholds),
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
    result["eval_run_id"] = run_id
    return ref, result
