"""The whole training path learns: the tiny random Qwen2-VL, trained a few hundred steps on the CPU
on the coco-imagenet-sd train split, scores its val split clearly above chance."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("peft")

from aidetect.settings import get_settings  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
CHANCE_BAND = 0.65  # 255 val images: chance AUROC has sd ~0.036, so 0.65 is > 4 sd above 0.5


@pytest.mark.slow
def test_tiny_qwen_learns_coco_imagenet_sd(tmp_path):
    manifest = get_settings().manifest
    if not manifest.is_file():
        pytest.skip(f"shared data set not found at {manifest}")
    from model.qwen.config import load_config
    from model.qwen.train import train

    cfg = load_config(REPO / "configs" / "qwen2vl_tiny.yaml", {"manifest": str(manifest), "log_every": 0})
    assert cfg.train_sources == ("coco-imagenet-sd",) and cfg.max_steps >= 200
    result = train(cfg, tmp_path / "bundle")
    m = result.metrics
    print(
        f"\ntiny Qwen2-VL, {cfg.max_steps} steps x {cfg.batch_size} images at {cfg.image_size}px on "
        f"{m['train_n']} train images: val AUROC {m['val_auroc']:.4f}, accuracy {m['val_accuracy']:.4f} "
        f"(n={m['val_n']}), loss {m['first_loss']:.3f} -> {m['final_loss']:.3f}, {m['train_seconds']:.0f} s"
    )
    assert m["val_n"] == 255
    assert m["final_loss"] < m["first_loss"] - 0.5
    assert m["val_auroc"] > CHANCE_BAND
