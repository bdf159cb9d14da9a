"""Log a trained Qwen bundle to MLflow, register it, and load it back the way the service does.

    ref = log_and_register(result, settings)          # run with resolved config, metrics, pyfunc model
    det, ref = load_detector("models:/aidetect-qwen/1")  # registry.resolve + mlflow.pyfunc.load_model

The model version is a pyfunc whose only artifact is the bundle folder (bundle.py), so any MLflow
consumer can score with it and the service rebuilds preprocessing from what the version holds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd

from aidetect.settings import Settings
from model import registry

log = logging.getLogger(__name__)

ARTIFACT_KEY = "qwen_bundle"


class QwenPyfunc(mlflow.pyfunc.PythonModel):
    """Pyfunc face of the Qwen detector: DataFrame of image bytes -> score, verdict."""

    def load_context(self, context) -> None:
        from .detector import QwenDetector

        self.bundle_dir = Path(context.artifacts[ARTIFACT_KEY])
        self.detector = QwenDetector.from_bundle(self.bundle_dir)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from model.preprocess import decode_image

        images = [decode_image(bytes(b)) for b in model_input["image"]]
        rows = self.detector.predict(images)
        return pd.DataFrame(rows)


def _requirements() -> list[str]:
    import peft
    import torch
    import transformers

    # Written out: MLflow's inference would import the model in a subprocess, slowly.
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"transformers=={transformers.__version__}",
        f"peft=={peft.__version__}",
        "pillow",
        "numpy",
        "pandas",
        "scikit-learn",
        "scipy",
    ]


def flat_params(cfg_dict: dict) -> dict[str, str]:
    """MLflow params are strings of at most 6000 chars; tuples become comma lists."""
    out = {}
    for k, v in cfg_dict.items():
        s = ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)
        out[k] = s[:6000]
    return out


def data_snapshot(cfg) -> Path | None:
    """snapshot.json beside the training manifest, when the manifest is an ETL snapshot."""
    from .data import manifest_path

    sidecar = manifest_path(cfg).parent / "snapshot.json"
    return sidecar if sidecar.is_file() else None


def log_and_register(result, settings: Settings, name: str | None = None) -> registry.ModelRef:
    """One MLflow run: resolved config (params + JSON), metrics, loss curve, the bundle as a model version."""
    if result.bundle is None:
        raise ValueError("the training result has no bundle to log (train with an output directory)")
    cfg = result.cfg
    registry.configure(settings)
    exp_settings = settings.model_copy(update={"experiment": cfg.experiment})
    exp_id = registry.ensure_experiment(exp_settings)
    name = name or cfg.registered_name
    with mlflow.start_run(experiment_id=exp_id, run_name=f"qwen-{Path(str(cfg.base_model)).name}") as run:
        mlflow.log_params(flat_params(cfg.to_dict()))
        mlflow.log_dict(cfg.to_dict(), "qwen_config.json")
        sidecar = data_snapshot(cfg)
        if sidecar is not None:  # an ETL snapshot names the exact data version trained on
            mlflow.log_artifact(str(sidecar))
        mlflow.log_metrics({k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)})
        for step, loss in enumerate(result.losses):
            if step % max(1, len(result.losses) // 200) == 0:
                mlflow.log_metric("train_loss", loss, step=step)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=QwenPyfunc(),
            artifacts={ARTIFACT_KEY: str(result.bundle)},
            pip_requirements=_requirements(),
            metadata={
                "aidetect": {
                    "detector": "qwen2-vl",
                    "base_model": cfg.base_model,
                    "base_revision": cfg.revision,
                    "image_size": cfg.image_size,
                    "question": cfg.question,
                }
            },
        )
        ref = registry.register(info.model_uri, name, tags={"detector": "qwen2-vl", "run_id": run.info.run_id})
    log.info("registered %s", ref.uri)
    return ref


def fast_model_in_front(settings: Settings | None = None) -> str | None:
    """The exact fast model (models:/<name>/<version>) the Qwen stage sits behind: AIDETECT_MODEL_URI as
    the CPU tier reads it (the GPU tier gets the same ConfigMap key), else the production alias; None when
    the registry has no such model, so nothing can be said about the fit."""
    from aidetect.settings import get_settings

    settings = settings or get_settings()
    try:
        return registry.resolve(settings.resolved_model_uri).uri
    except registry.RegistryError as e:
        log.info("no fast model to check the Qwen thresholds against: %s", e)
        return None


def load_detector(uri: str, device: str | None = None, fast_model: str | None = None):
    """(QwenDetector, ModelRef) through the registry path the service uses, deciding with the thresholds
    fitted behind `fast_model` (default: fast_model_in_front()); a fit made behind another fast model, or
    none, is used as it is, logged as a warning and shown in preprocessing()["thresholds_stale"]."""
    ref = registry.resolve(uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(ref.uri)
    except mlflow.exceptions.MlflowException as e:
        raise registry.RegistryError(f"could not load {ref.uri}: {str(e).splitlines()[0][:300]}") from None
    model = pyfunc.unwrap_python_model()
    if not isinstance(model, QwenPyfunc):
        raise registry.RegistryError(f"{ref.uri} is not a Qwen detector (it is {type(model).__name__})")
    det = model.detector
    if device is not None and device != det.device:
        det = type(det).from_bundle(model.bundle_dir, device)
    from .stage_fit import read_stored, staleness

    # Thresholds fitted after registration live in version tags; they win over any in the bundle.
    fast_model = fast_model or fast_model_in_front()
    fit = read_stored(ref=ref, fast_model=fast_model)
    det = det.use_stage_fit(fit)
    det.stale = staleness(fit, fast_model, ref.uri)
    if det.stale:
        log.warning("Qwen stage thresholds are stale: %s", det.stale)
    return det, ref
