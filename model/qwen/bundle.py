"""A model version on disk: adapter + everything serving needs to rebuild the same inputs.

    bundle/
      qwen_config.json   QwenConfig: base id, image size, prompt, answer tokens, threshold
      calibrator.json    model.calibration dict for the answer-token margin (null = sigmoid)
      prompt_bank.json   the bank trained with (its explanation prompts are used when serving)
      metrics.json       validation metrics of this version
      adapter/           peft LoRA weights
      tokenizer/         tokenizer files
      base/              only with bundle_base: the base weights (tiny or private bases)
      stage_thresholds.json  optional: the Qwen stage's calibrator and thresholds fitted on the fast
                         stage's uncertain band (stage_fit.py); a registry version keeps them in a tag

Serving reads this folder (directly, or as the artifact of an MLflow model version) and never
falls back to current defaults, so training and serving cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from model.prompts.bank import PromptBank, bank_from_dict, save_bank

from .config import QwenConfig

CONFIG, CALIBRATOR, BANK, METRICS = "qwen_config.json", "calibrator.json", "prompt_bank.json", "metrics.json"


def save_bundle(out_dir, model, tok, cfg: QwenConfig, calibrator: dict | None, bank: PromptBank, metrics: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") else model
    core.save_pretrained(out / "adapter")
    tok.save_pretrained(out / "tokenizer")
    if cfg.bundle_base:
        base = core.get_base_model()
        base.save_pretrained(out / "base", state_dict=base_state_dict(base.state_dict()))
    (out / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=1))
    (out / CALIBRATOR).write_text(json.dumps(calibrator, indent=1))
    (out / METRICS).write_text(json.dumps(metrics, indent=1))
    save_bank(bank, out / BANK)
    return out


def base_state_dict(wrapped: dict) -> dict:
    """The frozen base's own tensors from a peft-injected model: adapter tensors dropped, names restored.

    peft renames a wrapped layer's weight to `<layer>.base_layer.weight` and keeps the original of a
    `modules_to_save` module under `<module>.original_module.`; the base checkpoint needs neither.
    """
    clean = {}
    for k, v in wrapped.items():
        if "lora_" in k or ".modules_to_save." in k:
            continue
        clean[k.replace(".base_layer.", ".").replace(".original_module.", ".")] = v
    return clean


def read_bundle(path) -> tuple[QwenConfig, dict | None, PromptBank]:
    p = Path(path)
    if not (p / CONFIG).is_file() or not (p / "adapter").is_dir():
        raise FileNotFoundError(f"{p} is not a Qwen detector bundle (no {CONFIG} or adapter/)")
    cfg = QwenConfig.from_dict(json.loads((p / CONFIG).read_text()))
    cal = json.loads((p / CALIBRATOR).read_text())
    bank = bank_from_dict(json.loads((p / BANK).read_text()), str(p / BANK))
    return cfg, cal, bank


def load_bundle_model(path, device: str = "cpu"):
    """(model, tokenizer, cfg, calibrator, bank) ready for inference from a bundle folder."""
    from .modeling import build_model, load_tokenizer

    p = Path(path)
    cfg, cal, bank = read_bundle(p)
    if cfg.load_in_4bit and not _cuda():
        # a QLoRA adapter applies to the full-precision base as well; only the memory differs
        cfg = cfg.override(load_in_4bit=False, dtype="float32")
    elif device == "cpu" and cfg.dtype != "float32":
        cfg = cfg.override(dtype="float32")  # bf16 matmuls on CPU are slow and less exact
    if cfg.torch_threads > 0 and device == "cpu":
        import torch

        torch.set_num_threads(cfg.torch_threads)
    base = p / "base" if (p / "base").is_dir() else None
    model = build_model(cfg, base_path=base, adapter_path=p / "adapter", trainable=False)
    if not cfg.load_in_4bit:
        model = model.to(device)
    tok = load_tokenizer(cfg, p / "tokenizer")
    return model, tok, cfg, cal, bank


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
