"""The tiny random Qwen2-VL through the real code paths: build, train, save, log, load, score."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
pytest.importorskip("peft")

from model.qwen import modeling as M  # noqa: E402
from model.qwen.config import ConfigError, QwenConfig, load_config  # noqa: E402
from model.qwen.synthetic import write_synthetic_manifest  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
TINY_YAML = REPO / "configs" / "qwen2vl_tiny.yaml"
QLORA_YAML = REPO / "configs" / "qwen2vl_qlora.yaml"


def synthetic_manifest(root: Path) -> Path:
    return write_synthetic_manifest(root)


def tiny_cfg(manifest: Path | None = None, **kw) -> QwenConfig:
    base = {"log_every": 0, "max_steps": 4, "batch_size": 4, "train_sources": ["synthetic"]}
    if manifest is not None:
        base["manifest"] = str(manifest)
    return load_config(TINY_YAML, {**base, **kw})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model runs fastest on one thread (see torch_threads in the tiny recipe)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    return M.load_tokenizer(tiny_cfg())


def test_recipes_load_and_validate():
    tiny = load_config(TINY_YAML)
    assert tiny.base_model == "tiny" and tiny.image_size % 28 == 0
    qlora = load_config(QLORA_YAML)
    assert qlora.load_in_4bit and qlora.base_model == "Qwen/Qwen2-VL-7B-Instruct"
    assert qlora.gradient_checkpointing and qlora.lora_r > 0
    with pytest.raises(ConfigError, match="multiple of 28"):
        load_config(TINY_YAML, {"image_size": 50})
    with pytest.raises(ConfigError, match="unknown config field"):
        QwenConfig.from_dict({"lora_rank": 4})


def test_answers_are_single_tokens_and_prompt_has_image_tokens(tok):
    cfg = tiny_cfg()
    ids = M.answer_ids(tok, cfg)
    assert len(set(ids)) == 2
    text = M.prompt_text(cfg.question, cfg)
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert enc.count(tok.convert_tokens_to_ids(M.IMAGE_PAD)) == cfg.image_tokens
    # special ids the Qwen2-VL config expects
    assert tok.convert_tokens_to_ids(M.IMAGE_PAD) == 151655
    assert tok.convert_tokens_to_ids(M.VISION_START) == 151652
    with pytest.raises(ValueError, match="one-token word"):
        M.answer_ids(tok, cfg.override(answers=("authentic photograph", "ai")))


def test_qlora_is_refused_on_cpu_with_a_clear_message():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: QLoRA would load")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        M.build_model(tiny_cfg(load_in_4bit=True))


def test_build_model_wraps_only_the_configured_modules_with_lora():
    model = M.build_model(tiny_cfg())
    trainable, total = M.trainable_parameters(model)
    assert 0 < trainable < total / 10
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n and "q_proj" in n for n in names)
    assert any("lora_A" in n and "visual" in n for n in names)  # the tiny recipe adapts the vision tower
    assert not any("embed_tokens" in n for n in names)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tok):
    cfg = tiny_cfg(lr=5e-3, warmup_steps=1)
    model = M.build_model(cfg)
    ids = M.answer_ids(tok, cfg)
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)) for _ in range(4)]
    batch = M.encode_batch(imgs, [cfg.question] * 4, tok, cfg)
    y = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    for _ in range(8):
        loss = M.instruction_loss(model, batch, y, ids)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_left_padding_does_not_change_scores(tok):
    """Prompts of different lengths in one batch score as they do alone (padding is masked)."""
    cfg = tiny_cfg()
    model = M.build_model(cfg, trainable=False)
    ids = M.answer_ids(tok, cfg)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (56, 56, 3), dtype=np.uint8))
    alone = M.answer_logits(model, M.encode_batch([img], [cfg.question], tok, cfg), ids)
    long_q = "Look very carefully at every detail of this picture. " * 3 + cfg.question
    both = M.answer_logits(model, M.encode_batch([img, img], [cfg.question, long_q], tok, cfg), ids)
    assert both.shape == (2, 2)
    torch.testing.assert_close(both[0], alone[0], atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny detector trained a few steps on synthetic images, saved as a bundle."""
    from model.qwen.train import train

    root = tmp_path_factory.mktemp("qwen")
    manifest = synthetic_manifest(root / "data")
    cfg = tiny_cfg(manifest, max_steps=6, lr=5e-3)
    result = train(cfg, root / "bundle")
    return result


@pytest.mark.slow
def test_training_writes_a_complete_bundle(trained):
    b = trained.bundle
    for name in ("qwen_config.json", "calibrator.json", "prompt_bank.json", "metrics.json"):
        assert (b / name).is_file(), name
    assert (b / "adapter" / "adapter_config.json").is_file()
    assert (b / "base").is_dir()  # bundle_base in the tiny recipe
    saved = json.loads((b / "qwen_config.json").read_text())
    assert saved["image_size"] == trained.cfg.image_size and saved["question"] == trained.cfg.question
    assert trained.metrics["val_n"] == 16 and len(trained.losses) == 6


def test_adapter_save_and_load_gives_the_same_scores(trained):
    from model.qwen.detector import QwenDetector

    det = QwenDetector.from_bundle(trained.bundle, "cpu")
    rng = np.random.default_rng(3)
    imgs = [Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)) for _ in range(3)]
    # reference: the in-memory trained tensors, applied to a freshly built model
    ref = M.build_model(trained.cfg, trainable=False)
    missing = ref.load_state_dict(trained.state, strict=False)
    assert not missing.unexpected_keys
    batch = det._batch(imgs, [trained.cfg.question] * 3)
    with torch.no_grad():
        expected = M.answer_margin(M.answer_logits(ref, batch, det.ids)).numpy()
    np.testing.assert_allclose(det.margins(imgs), expected, atol=1e-4)


def test_batched_scoring_is_calibrated_and_matches_single_scoring(trained):
    from model.qwen.detector import QwenDetector

    det = QwenDetector.from_bundle(trained.bundle, "cpu")
    rng = np.random.default_rng(4)
    imgs = [Image.fromarray(rng.integers(0, 255, (60 + 7 * i, 64, 3), dtype=np.uint8)) for i in range(5)]
    scores = det.score(imgs)
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores[2], det.score([imgs[2]])[0], atol=1e-5)
    # calibrated: the stored Platt map is applied, not a bare softmax of the two logits
    from scipy.special import expit

    cal = det.calibrator
    assert cal is not None and cal["method"] == "platt"
    np.testing.assert_allclose(scores, expit(cal["a"] * det.margins(imgs) + cal["b"]), atol=1e-6)
    rows = det.predict(imgs[:2], explain=[False, True])
    assert "explanation" not in rows[0] and isinstance(rows[1]["explanation"], str)
    assert {r["verdict"] for r in rows} <= {"real", "ai_generated"}


def test_scores_are_stable_under_jpeg_reencoding_and_resizing(trained):
    """What serving claims: a re-encoded (q90) or 2x-resized upload scores within 0.05 of the original."""
    from model.preprocess import decode_image, encode_jpeg
    from model.qwen.detector import QwenDetector

    det = QwenDetector.from_bundle(trained.bundle, "cpu")
    y, x = np.mgrid[0:128, 0:128]
    smooth = np.stack([x * 2, y * 2, (x + y)], axis=-1).astype(np.uint8)  # camera-like smooth content
    original = Image.fromarray(smooth)
    variants = [decode_image(encode_jpeg(original, 90)), original.resize((256, 256), Image.Resampling.BICUBIC)]
    base, *others = det.score([original, *variants])
    assert np.all(np.abs(np.array(others) - base) < 0.05), (base, others)
    # and the tolerance means something: the model does tell its two training classes apart
    dark = Image.fromarray(np.random.default_rng(0).integers(0, 90, (64, 64, 3), dtype=np.uint8))
    real_like, ai_like = det.score([dark, Image.new("RGB", (64, 64), (205, 210, 200))])
    assert ai_like - real_like > 0.5


@pytest.mark.slow
def test_logged_to_mlflow_and_loaded_back_through_the_registry(trained, tmp_path, monkeypatch):
    from aidetect.settings import get_settings
    from model.qwen.detector import QwenDetector
    from model.qwen.tracking import load_detector, log_and_register

    monkeypatch.setenv("AIDETECT_HOME", str(tmp_path / "home"))
    settings = get_settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    ref = log_and_register(trained, settings, name="qwen-test")
    assert ref.uri == "models:/qwen-test/1"

    import mlflow

    run = mlflow.get_run(ref.run_id)
    assert run.data.params["image_size"] == str(trained.cfg.image_size)
    assert run.data.metrics["val_auroc"] == pytest.approx(trained.metrics["val_auroc"])

    det, loaded_ref = load_detector("models:/qwen-test/1")
    assert loaded_ref.version == "1"
    local = QwenDetector.from_bundle(trained.bundle, "cpu")
    rng = np.random.default_rng(5)
    imgs = [Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)) for _ in range(2)]
    np.testing.assert_allclose(det.score(imgs), local.score(imgs), atol=1e-6)
    assert det.preprocessing()["image_size"] == trained.cfg.image_size

    # the pyfunc face scores raw bytes like any MLflow consumer would
    import pandas as pd

    buf = io.BytesIO()
    imgs[0].save(buf, format="PNG")
    out = mlflow.pyfunc.load_model(ref.uri).predict(pd.DataFrame({"image": [buf.getvalue()]}))
    assert list(out.columns) == ["score", "verdict"] and 0 <= out["score"][0] <= 1


@pytest.mark.slow
def test_cli_trains_scores_and_explains_with_one_line_errors(trained, tmp_path):
    from typer.testing import CliRunner

    from aidetect.cli import app

    runner = CliRunner()
    manifest = synthetic_manifest(tmp_path / "data")
    out = tmp_path / "cli-bundle"
    res = runner.invoke(
        app,
        [
            "qwen",
            "train",
            "-c",
            str(TINY_YAML),
            "--manifest",
            str(manifest),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--out",
            str(out),
            "--no-register",
        ],
    )
    # the tiny recipe trains coco-imagenet-sd only: the synthetic manifest has none of it
    assert res.exit_code == 2 and "no 'train' samples from sources ['coco-imagenet-sd']" in res.output

    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    res = runner.invoke(app, ["qwen", "score", "--bundle", str(trained.bundle), str(img)])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["image"] == str(img) and 0 <= row["score"] <= 1 and "explanation" not in row
    res = runner.invoke(app, ["qwen", "explain", "--bundle", str(trained.bundle), str(img)])
    assert res.exit_code == 0 and "explanation" in json.loads(res.stdout.strip().splitlines()[-1])

    res = runner.invoke(app, ["qwen", "score", "--bundle", str(trained.bundle), str(tmp_path / "missing.jpg")])
    assert res.exit_code == 2 and res.output.strip().endswith(f"no such image: {tmp_path / 'missing.jpg'}")
    res = runner.invoke(app, ["qwen", "score", "--bundle", str(tmp_path), str(img)])
    assert res.exit_code == 2 and "is not a Qwen detector bundle" in res.output and "Traceback" not in res.output
