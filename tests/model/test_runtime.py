"""The fast stage's runtimes: the ONNX export gives eager torch's probabilities and verdicts on real
validation images, at any batch size, and survives a save/load."""

import json

import numpy as np
import pytest

from model.bundle import DetectorBundle, score_arrays
from model.dataset import load_arrays
from model.detectors import DetectorSpec, build_network
from model.export import MAX_ABS_DP, compare_runtimes
from model.manifest import read_manifest, subsample
from model.preprocess import PreprocessConfig
from model.runtime import OPSET


@pytest.fixture(scope="module")
def val_images(manifest) -> np.ndarray:
    """Real validation images from every source of the shared data, decoded as the service decodes them."""
    samples = subsample(read_manifest(manifest, split="val"), 2)
    return load_arrays(samples, PreprocessConfig())


def exported(images: np.ndarray) -> DetectorBundle:
    """EfficientNet-lite0 with its ImageNet weights and a fresh head, calibrated so its probabilities spread
    over (0, 1) on these images, and thresholds between neighbouring scores so all three verdicts occur."""
    b = DetectorBundle(net=build_network(DetectorSpec()), pre=PreprocessConfig())
    raw = score_arrays(b, images)
    b.calibration = {"method": "platt", "a": float(1 / raw.std()), "b": float(-raw.mean() / raw.std())}
    p = np.sort(b.calibrate(raw))
    lo, hi = len(p) // 3, 2 * len(p) // 3
    b.thresholds = {"low": float(p[lo - 1] + p[lo]) / 2, "high": float(p[hi - 1] + p[hi]) / 2}
    b.export()
    return b


@pytest.fixture(scope="module")
def bundle(val_images) -> DetectorBundle:
    """Fitted on 12 images, not all: scoring every validation image on torch first was most of the inner
    loop's wait here, and the tests below need an export, not a good calibration."""
    return exported(val_images[:12])


@pytest.mark.slow
def test_export_matches_torch_on_validation_images(val_images):
    bundle = exported(val_images)
    result = compare_runtimes(bundle, val_images)
    assert result["n"] == len(val_images) >= 50
    assert result["max_abs_dp"] <= MAX_ABS_DP
    assert result["verdict_agreement"] == 1.0
    verdicts = set(bundle.verdicts(bundle.calibrate(score_arrays(bundle, val_images))))
    assert verdicts == {"real", "uncertain", "ai_generated"}  # the check covered every verdict


def test_export_records_runtime_and_opset_and_reloads(bundle, val_images, tmp_path):
    bundle.use_runtime("onnx")
    before = score_arrays(bundle, val_images[:8])
    saved = bundle.save(tmp_path / "b")
    meta = json.loads((saved / "detector.json").read_text())
    assert meta["export"]["runtime"] == "onnxruntime" and meta["export"]["opset"] == OPSET
    assert meta["export"]["precision"] == "fp32" and (saved / meta["export"]["file"]).is_file()
    again = DetectorBundle.load(saved)
    assert again.scorer.runtime == "onnxruntime"
    assert np.array_equal(score_arrays(again, val_images[:8]), before)


def test_batch_size_does_not_change_a_score(bundle, val_images):
    """The export's batch axis is dynamic: one image alone scores as it does inside a batch."""
    bundle.use_runtime("onnx")
    x = val_images[:5]
    together = score_arrays(bundle, x, batch_size=5)
    alone = np.concatenate([score_arrays(bundle, x[i : i + 1]) for i in range(5)])
    assert np.allclose(together, alone, atol=1e-5)


def test_a_bundle_without_export_scores_on_torch(tmp_path, val_images):
    b = DetectorBundle(net=build_network(DetectorSpec(pretrained=False)))
    again = DetectorBundle.load(b.save(tmp_path / "old"))
    assert again.onnx is None and not (tmp_path / "old" / "detector.onnx").exists()
    assert again.scorer.runtime == "torch"
    assert np.allclose(score_arrays(again, val_images[:4]), score_arrays(b, val_images[:4]), atol=1e-6)
    with pytest.raises(ValueError, match="aidetect models export"):
        again.use_runtime("onnx")
    with pytest.raises(ValueError, match="unknown runtime"):
        again.use_runtime("tensorrt")


@pytest.mark.slow
def test_trained_version_is_registered_with_its_export(tiny_model, manifest):
    """What `aidetect train` registers carries the ONNX export, serves on it, and agrees with torch."""
    from model import registry

    settings, ref, _ = tiny_model
    registry.configure(settings)
    bundle, _ = registry.load_detector(ref.uri)
    assert bundle.export_info["runtime"] == "onnxruntime" and bundle.export_info["opset"] == OPSET
    assert bundle.scorer.runtime == "onnxruntime"
    images = load_arrays(subsample(read_manifest(manifest, split="val"), 1), bundle.pre)
    result = compare_runtimes(bundle, images)
    assert result["max_abs_dp"] <= MAX_ABS_DP and result["verdict_agreement"] == 1.0
