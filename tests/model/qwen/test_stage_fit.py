"""`aidetect qwen fit-thresholds` end to end on tiny models: the tiny fast model (conftest) in front, a tiny
Qwen detector behind it; the fitted thresholds are kept with the Qwen version and the Qwen server decides
with them."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest

pytest.importorskip("peft")

from aidetect.testing import servers  # noqa: E402
from model.calibration import verdict  # noqa: E402

REPO_CFG = "configs/qwen2vl_tiny.yaml"


@pytest.fixture(scope="module")
def two_stages(tiny_model, tmp_path_factory):
    """(settings, fast URI, Qwen URI, Qwen bundle folder): a tiny Qwen registered beside the tiny fast model."""
    import torch

    from model.qwen.config import load_config
    from model.qwen.synthetic import write_synthetic_manifest
    from model.qwen.tracking import log_and_register
    from model.qwen.train import train

    settings, fast_ref, _ = tiny_model
    tmp = tmp_path_factory.mktemp("qwen-fit")
    syn = write_synthetic_manifest(tmp / "data", n_per_class=4)
    overrides = {"manifest": str(syn), "train_sources": ["synthetic"], "max_steps": 3, "batch_size": 4}
    cfg = load_config(REPO_CFG, {**overrides, "log_every": 0})
    threads = torch.get_num_threads()
    result = train(cfg, tmp / "bundle")
    torch.set_num_threads(threads)
    ref = log_and_register(result, settings, name="qwen-fit")
    return settings, fast_ref.uri, ref.uri, result.bundle


def cli_env(settings) -> dict:
    return {"AIDETECT_HOME": str(settings.home), "AIDETECT_MANIFEST": str(settings.manifest)}


def run_cli(settings, *args):
    from typer.testing import CliRunner

    from aidetect.cli import app

    return CliRunner().invoke(app, ["qwen", "fit-thresholds", *args], env=cli_env(settings))


@pytest.mark.slow
def test_fitted_thresholds_are_stored_with_the_version_and_the_server_decides_with_them(two_stages, tmp_path):
    from model.qwen.stage_fit import TAG
    from model.qwen.tracking import load_detector
    from model.registry import configure

    settings, fast_uri, qwen_uri, _ = two_stages
    out = tmp_path / "fit.json"
    args = ["--fast-model", fast_uri, "--qwen-model", qwen_uri, "--max-samples", "24", "--min-per-label", "2"]
    r = run_cli(settings, *args, "--report", str(out))
    assert r.exit_code == 0, r.output
    fit = json.loads(out.read_text())
    th = fit["thresholds"]
    assert th["fpr"] == 0.01 and th["fnr"] == 0.01  # the fast stage's own targets
    assert fit["fast_model"] == fast_uri and f"tag {TAG}" in fit["stored_in"]
    assert fit["fit"]["n"] > 0 and len(fit["fit"]["fpr"]) == 3 and "Qwen stage thresholds" in r.output
    if fit["fitted_on"] == "fast-uncertain":
        assert fit["fit"]["n"] <= fit["n_fast_uncertain"] and fit["fallback"] is None
    else:  # the tiny fast model was sure of too many: the fallback is printed, never silent
        assert fit["fallback"] and "warning:" in r.output

    # the version now carries them, and loading it the service's way applies them
    configure(settings)
    det, _ = load_detector(qwen_uri, "cpu")
    assert det.thresholds == th and det.calibrator == fit["calibrator"]
    assert det.preprocessing()["thresholds_fast_model"] == fast_uri

    # the real server: its answers name the thresholds and follow them
    port = servers.free_port()
    cmd = servers.aidetect_cmd("qwen", "serve", "--model-uri", qwen_uri, "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    env = {**cli_env(settings), "OMP_NUM_THREADS": "1"}
    proc = servers.start_ready(cmd, f"{url}/health", env=env, log=tmp_path / "qwen.log", timeout=180)
    try:
        from PIL import Image

        from model.preprocess import decode_image, encode_jpeg

        rng = np.random.default_rng(0)
        for seed in range(4):
            img = Image.fromarray(rng.integers(0, 255 if seed % 2 else 90, (64, 64, 3), dtype=np.uint8))
            data = encode_jpeg(img, 90)
            reply = httpx.post(f"{url}/v1/qwen", json={"image_b64": base64.b64encode(data).decode()}, timeout=60).json()
            assert reply["model"]["thresholds"] == {"high": th["high"], "low": th["low"], "fitted_on": fit["fitted_on"]}
            local = det.predict([decode_image(data)])[0]  # what the server decoded, scored in-process
            assert reply["score"] == pytest.approx(local["score"], abs=1e-4) and reply["verdict"] == local["verdict"]
            assert reply["verdict"] == verdict(reply["score"], th)
    finally:
        servers.stop(proc)


@pytest.mark.slow
def test_a_bundle_folder_keeps_its_fit_beside_the_adapter(two_stages, tmp_path):
    import shutil

    from model.qwen.detector import QwenDetector
    from model.qwen.stage_fit import FILE

    settings, fast_uri, _, bundle = two_stages
    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    # min-per-label 1000: the band can never be big enough, so this is the fallback path, told on stderr
    r = run_cli(
        settings,
        "--fast-model",
        fast_uri,
        "--qwen-model",
        str(folder),
        "--max-samples",
        "16",
        "--min-per-label",
        "1000",
    )
    assert r.exit_code == 0, r.output
    assert "FALLBACK" in r.output and "warning: the fast stage called" in r.output
    stored = json.loads((folder / FILE).read_text())
    assert stored["fitted_on"] == "all-val" and stored["fallback"]
    det = QwenDetector.from_bundle(folder, "cpu")
    assert det.thresholds == stored["thresholds"] and det.stage_fit["fitted_on"] == "all-val"


@pytest.mark.slow
def test_unknown_models_fail_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from aidetect.cli import app

    env = {"AIDETECT_HOME": str(tmp_path / "home"), "AIDETECT_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    r = CliRunner().invoke(
        app,
        ["qwen", "fit-thresholds", "--fast-model", str(tmp_path / "none"), "--qwen-model", "models:/nope/1"],
        env=env,
    )
    assert r.exit_code != 0 and "aidetect: error:" in r.output and "Traceback" not in r.output


def test_staleness_names_both_fast_models_and_the_refit_command():
    from model.qwen.stage_fit import fit_tag, staleness

    fit = {"fast_model": "models:/aidetect/3", "thresholds": {}}
    assert fit_tag("models:/aidetect/3") == "stage_thresholds/aidetect/3" and fit_tag("/some/bundle") is None
    assert staleness(fit, "models:/aidetect/3", "models:/q/1") is None
    assert staleness(fit, None, "models:/q/1") is None  # nothing in front to compare with
    why = staleness(fit, "models:/aidetect/4", "models:/q/1")
    assert "models:/aidetect/3" in why and "models:/aidetect/4" in why
    assert "aidetect qwen fit-thresholds --fast-model models:/aidetect/4 --qwen-model models:/q/1" in why
    assert "no thresholds fitted behind models:/aidetect/4" in staleness(None, "models:/aidetect/4", "models:/q/1")


@pytest.mark.slow
def test_each_fast_model_keeps_its_own_fit_and_a_missing_one_is_stale(two_stages, monkeypatch, capsys):
    """The retrain loop's view (ci/qwen_stage.py): a new challenger gets a fit of its own without touching
    production's, serving picks the fit for the fast model in front, and the production check refuses a
    fast model with none."""
    import mlflow

    from ci import qwen_stage
    from model import registry
    from model.qwen.tracking import load_detector

    settings, fast_uri, qwen_uri, _ = two_stages
    for k, v in cli_env(settings).items():
        monkeypatch.setenv(k, v)
    registry.configure(settings)
    quick = ["--qwen-model", qwen_uri, "--max-samples", "16", "--min-per-label", "2"]
    assert qwen_stage.main(["fit", "--fast-model", fast_uri, *quick]) == 0
    # A challenger: a second version of the fast model, which the Qwen stage was never fitted behind.
    name = fast_uri.removeprefix("models:/").split("/")[0]
    challenger = registry.model_uri(name, mlflow.register_model(fast_uri, name).version)
    capsys.readouterr()

    assert qwen_stage.main(["check", "--fast-model", challenger, "--qwen-model", qwen_uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qwen_stage: error:") and "\n" not in err and f"--fast-model {challenger}" in err
    det, _ = load_detector(qwen_uri, "cpu", fast_model=challenger)
    assert det.stale and challenger in det.preprocessing()["thresholds_stale"]
    assert det.preprocessing()["thresholds_fast_model"] == fast_uri  # it decides with the latest fit meanwhile

    assert qwen_stage.main(["fit", "--fast-model", challenger.rsplit("/", 1)[1], *quick]) == 0  # a bare number
    assert qwen_stage.main(["check", "--fast-model", challenger, "--qwen-model", qwen_uri]) == 0
    assert f"{qwen_uri} has thresholds fitted behind {challenger}" in capsys.readouterr().out
    for fast in (challenger, fast_uri):  # production's fit is still its own, beside the challenger's
        det, _ = load_detector(qwen_uri, "cpu", fast_model=fast)
        assert det.stale is None and det.preprocessing()["thresholds_fast_model"] == fast
