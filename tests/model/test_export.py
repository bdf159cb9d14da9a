"""A version registered before ONNX exports: it serves on eager torch (and says so), and
`aidetect models export VERSION` registers its export as a new version that serves on ONNX Runtime
with the same scores."""

import json
import logging

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from aidetect.cli import app
from aidetect.settings import Settings
from model import registry
from model.bundle import DetectorBundle
from model.detectors import DetectorSpec, build_network
from model.export import MAX_ABS_DP
from model.packaging import log_bundle


@pytest.fixture(scope="module")
def old_store(tmp_path_factory, manifest):
    """An MLflow store whose version 1 (holding `production`) has torch weights and no export."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    settings = Settings(home=tmp_path_factory.mktemp("old-home"), manifest=manifest)
    registry.configure(settings)
    bundle = DetectorBundle(
        net=build_network(DetectorSpec()),
        calibration={"method": "platt", "a": 1.0, "b": 0.0},
        thresholds={"low": 0.3, "high": 0.7},
    )
    with mlflow.start_run(experiment_id=registry.ensure_experiment(settings)):
        ref = registry.register(log_bundle(bundle).model_uri, settings.model_name, tags={"val_auroc": "0.5"})
    registry.set_version_tags(ref, {"ci.gate": "passed"})
    registry.set_alias(settings.model_name, settings.production_alias, ref.version)
    yield settings
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def jpegs(manifest, n=4) -> list[bytes]:
    from model.manifest import read_manifest

    return [s.path.read_bytes() for s in read_manifest(manifest, split="val")[:n]]


def serve_scores(settings, images: list[bytes]):
    """The service's own API object, set up and asked to score, as a LitServe worker does."""
    import torch

    from service.api import DetectorAPI

    grad = torch.is_grad_enabled()
    try:
        api = DetectorAPI(settings)
        api.setup("cpu")  # turns autograd off for the whole process, as a worker wants
        out = api.predict([api.decode_request({"data": b}) for b in images])
    finally:
        torch.set_grad_enabled(grad)  # later tests in this process train
    return api, [api.encode_response(o).score for o in out]


@pytest.mark.slow
def test_old_version_serves_on_torch_and_says_how_to_export(old_store, manifest, caplog):
    with caplog.at_level(logging.WARNING, logger="service.api"):
        api, scores = serve_scores(old_store, jpegs(manifest))
    assert api.bundle.scorer.runtime == "torch" and api.ref.version == "1"
    assert "no ONNX export" in caplog.text and "aidetect models export 1" in caplog.text
    assert all(0.0 < s < 1.0 for s in scores)


@pytest.mark.slow
def test_models_export_registers_a_new_version_that_serves_on_onnx(old_store, manifest):
    _, torch_scores = serve_scores(old_store, jpegs(manifest))
    env = {"AIDETECT_HOME": str(old_store.home), "AIDETECT_MANIFEST": str(manifest)}
    result = CliRunner().invoke(app, ["models", "export", "1", "--move-aliases"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["source"] == "models:/aidetect/1" and out["model"] == "models:/aidetect/2"
    assert out["export"]["runtime"] == "onnxruntime" and out["export"]["opset"] >= 17
    assert out["parity"]["max_abs_dp"] <= MAX_ABS_DP and out["parity"]["verdict_agreement"] == 1.0
    assert out["aliases"] == ["production"]

    registry.configure(old_store)
    v2 = MlflowClient().get_model_version("aidetect", "2")
    assert v2.tags["exported_from"] == "1" and v2.tags["val_auroc"] == "0.5"
    assert "ci.gate" not in v2.tags  # a CI decision about version 1 is not version 2's
    assert registry.alias_version("aidetect", "production") == "2"

    api, onnx_scores = serve_scores(old_store, jpegs(manifest))
    assert api.ref.version == "2" and api.bundle.scorer.runtime == "onnxruntime"
    assert onnx_scores == pytest.approx(torch_scores, abs=MAX_ABS_DP)

    again = CliRunner().invoke(app, ["models", "export", "2"], env=env)
    assert again.exit_code == 2 and "already has an ONNX export" in again.stderr


def test_models_export_refuses_what_it_cannot_do(old_store, manifest):
    env = {"AIDETECT_HOME": str(old_store.home), "AIDETECT_MANIFEST": str(manifest)}
    runner = CliRunner()
    for args, words in (
        (["models", "export", "latest"], "must be a version number"),
        (["models", "export", "99"], "cannot be resolved"),
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 2 and words in result.stderr, result.output
        assert result.stderr.count("\n") == 1  # one line, no traceback
