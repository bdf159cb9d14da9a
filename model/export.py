"""Give a version registered before ONNX exports existed its export, as a new model version.

    aidetect models export 3          # -> models:/aidetect/<new>, the same weights with detector.onnx
    compare_runtimes(bundle, images)  # torch vs ONNX on the same images: max |Δp|, verdict agreement

A registered version is immutable in MLflow (its source is a logged model whose artifacts other tools may
have cached), so the export is logged as a new model and registered as a new version of the same name,
tagged `exported_from`. Calibration and thresholds are carried over only after the parity check shows
the exported graph gives the same probabilities (within 1e-4) and the same verdicts on validation images.
"""

from __future__ import annotations

import logging

import numpy as np

from aidetect.settings import Settings
from model import registry
from model.bundle import DetectorBundle, score_arrays
from model.registry import RegistryError

log = logging.getLogger(__name__)

MAX_ABS_DP = 1e-4  # the most an fp32 export may move a calibrated probability
PARITY_IMAGES = 64  # validation images the export is checked on
def compare_runtimes(bundle: DetectorBundle, images: np.ndarray, runtime: str = "onnx") -> dict:
    """Eager torch against `runtime` on (N, H, W, 3) uint8 images: the largest probability difference
    and how many verdicts agree. Leaves the bundle on `runtime`."""
    keep = bundle.threads
    bundle.use_runtime("torch", keep)
    p_torch = bundle.calibrate(score_arrays(bundle, images))
    bundle.use_runtime(runtime, keep)
    p_opt = bundle.calibrate(score_arrays(bundle, images))
    same = [a == b for a, b in zip(bundle.verdicts(p_torch), bundle.verdicts(p_opt), strict=True)]
    return {
        "n": len(images),
        "max_abs_dp": float(np.max(np.abs(p_torch - p_opt))) if len(images) else 0.0,
        "verdict_agreement": float(np.mean(same)) if same else 1.0,
    }


def parity_images(settings: Settings, bundle: DetectorBundle, n: int = PARITY_IMAGES) -> np.ndarray:
    """Up to n validation images of the manifest, spread over its sources."""
    from model.dataset import load_arrays
    from model.manifest import read_manifest, subsample

    samples = read_manifest(settings.manifest, split="val")
    if not samples:
        raise ValueError(f"{settings.manifest}: no validation images to check the export on")
    per_group = max(1, n // max(1, len({(s.source, s.label) for s in samples})))
    return load_arrays(subsample(samples, per_group)[:n], bundle.pre)


def export_version(settings: Settings, version: str, move_aliases: bool = False) -> dict:
    """Export `version` to ONNX, check parity on validation images, register the result as a new version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from model.packaging import log_bundle

    registry.configure(settings)
    name = settings.model_name
    bundle, ref = registry.load_detector(registry.model_uri(name, version))
    if bundle.onnx is not None:
        raise RegistryError(f"{ref.uri} already has an ONNX export ({bundle.export_info['runtime']}); nothing to do")
    images = parity_images(settings, bundle)
    bundle.export()
    parity = compare_runtimes(bundle, images)
    if parity["max_abs_dp"] > MAX_ABS_DP or parity["verdict_agreement"] < 1.0:
        raise RegistryError(
            f"the export of {ref.uri} differs from torch on validation images (max |Δp| {parity['max_abs_dp']:.2g}, "
            f"{parity['verdict_agreement']:.1%} verdicts agree); not registered"
        )
    client = MlflowClient()
    source = client.get_model_version(name, ref.version)
    tags = {k: v for k, v in source.tags.items() if not k.startswith(registry.JUDGEMENT_TAG_PREFIXES)}
    tags[registry.TAG_EXPORTED_FROM] = ref.version
    tags[registry.TAG_RUNTIME] = bundle.export_info["runtime"]
    tags[registry.TAG_OPSET] = str(bundle.export_info["opset"])
    bundle.info = {**bundle.info, "exported_from": ref.uri}
    with mlflow.start_run(experiment_id=registry.ensure_experiment(settings), run_name=f"export-v{ref.version}"):
        mlflow.log_metrics({"parity_max_abs_dp": parity["max_abs_dp"], "parity_n": parity["n"]})
        mlflow.log_dict(bundle.metadata(), "detector.json")
        new = registry.register(log_bundle(bundle).model_uri, name, tags=tags)
    moved = []
    if move_aliases:
        for alias in source.aliases:
            registry.set_alias(name, alias, new.version)
            moved.append(alias)
    log.info("exported %s as %s (aliases moved: %s)", ref.uri, new.uri, moved or "none")
    return {"source": ref.uri, "model": new.uri, "export": bundle.export_info, "parity": parity, "aliases": moved}
