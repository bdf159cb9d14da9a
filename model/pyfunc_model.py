"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc model, instead
of unpickling a Python object (see model.packaging.log_bundle)."""

import mlflow

from model.packaging import DetectorModel

mlflow.models.set_model(DetectorModel())
