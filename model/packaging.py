"""The detector as an MLflow pyfunc model: one artifact directory holding a DetectorBundle (torch
weights, their ONNX export when the version has one, and detector.json).

info = log_bundle(bundle)                       # inside an active MLflow run
m = mlflow.pyfunc.load_model("models:/aidetect/3")
m.predict(pd.DataFrame({"image": [jpeg_bytes]}))   # -> score, verdict, logit
bundle_of(m)                                       # the DetectorBundle, for batched serving
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from model.bundle import DetectorBundle
from model.preprocess import decode_image

ARTIFACT_KEY = "detector"
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("binary", "image")]),
    outputs=Schema([ColSpec("double", "score"), ColSpec("string", "verdict"), ColSpec("double", "logit")]),
)


class DetectorModel(mlflow.pyfunc.PythonModel):
    """Pyfunc face of a DetectorBundle, so any MLflow tool can score images with it."""

    def load_context(self, context) -> None:
        self.bundle = DetectorBundle.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        images = [decode_image(bytes(b), self.bundle.pre) for b in model_input["image"]]
        x = self.bundle.images_to_tensor(images)
        raw = self.bundle.logits(x)
        scores = self.bundle.calibrate(raw)
        return pd.DataFrame({"score": scores, "verdict": self.bundle.verdicts(scores), "logit": raw})


def _requirements() -> list[str]:
    import efficientnet_lite_pytorch
    import onnxruntime
    import torch

    # Written out rather than inferred: inference imports the whole package tree and is slow.
    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"mlflow=={mlflow.__version__}",
        f"efficientnet-lite-pytorch=={efficientnet_lite_pytorch.__version__}",
        f"onnxruntime=={onnxruntime.__version__}",  # runs detector.onnx, the exported form that serves
        "pillow",
        "numpy",
        "pandas",
        "scipy",
    ]


def log_bundle(bundle: DetectorBundle, name: str = "model"):
    """Log the bundle as a pyfunc model in the active run; returns MLflow's ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        path = bundle.save(Path(tmp) / ARTIFACT_KEY)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            signature=SIGNATURE,
            artifacts={ARTIFACT_KEY: str(path)},
            pip_requirements=_requirements(),
            metadata={"aidetect": bundle.metadata()},
        )


def bundle_of(pyfunc_model) -> DetectorBundle:
    return pyfunc_model.unwrap_python_model().bundle


def example_input(images: list[bytes]) -> pd.DataFrame:
    return pd.DataFrame({"image": np.asarray(images, dtype=object)})
