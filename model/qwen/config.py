"""QwenConfig: every knob of the Qwen2-VL detector, as code; YAML recipes in configs/ override it.

    cfg = load_config("configs/qwen2vl_qlora.yaml", {"max_steps": 10})
    cfg.to_dict()        # logged to MLflow with the run, saved with the model version

The fields under "preprocessing and verdict" travel with every model version (see bundle.py), so
serving rebuilds the exact image size, prompt and answer tokens the adapter was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

DEFAULT_QUESTION = "Is this image AI-generated? Answer real or ai."
DEFAULT_SYSTEM = "You are a helpful assistant."


class ConfigError(ValueError):
    """A recipe that cannot be used; the message names the field."""


@dataclass(frozen=True)
class QwenConfig:
    # --- base model ---
    base_model: str = "Qwen/Qwen2-VL-7B-Instruct"  # hub id or local path; "tiny" = random 2-layer model
    tokenizer: str | None = None  # hub id or path; None = base_model's, or the packaged Qwen files for "tiny"
    # Hub commit (or tag) of base_model, and of its tokenizer when that comes from the same repository: a run
    # and its rerun load the same weights, and a repository changed under its name is not picked up unseen.
    # None = the hub's main; a local folder ignores it.
    revision: str | None = None
    tiny_seed: int = 0  # seed of the random weights when base_model is "tiny"
    dtype: str = "bfloat16"  # compute dtype of the frozen base: float32 | bfloat16 | float16
    attn_implementation: str = "sdpa"  # "sdpa" | "eager" | "flash_attention_2"
    torch_threads: int = 0  # CPU intra-op threads; 0 = torch default. Tiny models run faster on 1

    # --- LoRA / QLoRA (all applied in modeling.build_model) ---
    lora_r: int = 16  # adapter rank
    lora_alpha: int = 32  # scaling numerator; effective scale = alpha / r
    lora_dropout: float = 0.05  # dropout on the adapter input
    lora_target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )  # module-name suffixes that get adapters (language model by default)
    lora_modules_to_save: tuple[str, ...] = ()  # modules trained in full and saved with the adapter
    load_in_4bit: bool = False  # QLoRA: frozen base in 4-bit NF4 via bitsandbytes (CUDA only)
    bnb_double_quant: bool = True  # QLoRA: also quantise the quantisation constants
    gradient_checkpointing: bool = True  # trade compute for memory on the frozen base

    # --- preprocessing and verdict (saved with the model version) ---
    image_size: int = 448  # px: square side the image is fitted to; must be a multiple of 28
    patch_size: int = 14  # vision patch (Qwen2-VL fixed)
    temporal_patch_size: int = 2  # a still image is repeated over this many frames (Qwen2-VL fixed)
    merge_size: int = 2  # 2x2 patches merge into one language token (Qwen2-VL fixed)
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)  # CLIP statistics
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    system_prompt: str = DEFAULT_SYSTEM  # chat system turn
    question: str = DEFAULT_QUESTION  # the scoring prompt: one forward pass, answer-token logits
    answers: tuple[str, str] = ("real", "ai")  # answer words for target 0 and 1; each must be one token
    threshold: float = 0.5  # calibrated probability at or above which the verdict is "ai"
    explain_max_new_tokens: int = 96  # explanation length cap, tokens

    # --- training ---
    manifest: str | None = None  # None = AIDETECT_MANIFEST / the shared data set
    train_sources: tuple[str, ...] | None = None  # None = every source
    train_split: str = "train"
    val_split: str = "val"
    max_train_samples: int | None = None  # cap for quick runs; None = all
    max_val_samples: int | None = None
    prompt_bank: str | None = None  # path of a prompt bank JSON; None = the one in the repo
    vary_prompts: bool = True  # draw the training question from the bank; scoring always uses `question`
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 8  # global batch (split across ranks under torchrun)
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    lr: float = 2e-4  # AdamW learning rate of the adapters
    weight_decay: float = 0.0
    warmup_steps: int = 20  # linear warm-up steps
    lr_schedule: str = "cosine"  # after warm-up: "cosine" (down to 10% of lr at max_steps) or "constant"
    hflip: bool = True  # random horizontal flip during training
    seed: int = 0
    eval_every: int = 0  # steps between validation passes; 0 = only at the end
    log_every: int = 10  # steps between loss log lines
    num_workers: int = 0  # DataLoader workers

    # --- tracking ---
    experiment: str = "aidetect-qwen"  # MLflow experiment
    registered_name: str = "aidetect-qwen"  # MLflow registered model name
    bundle_base: bool = False  # copy the base weights into the model version (for tiny / private bases)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> QwenConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return validate(cls(**kw))

    def override(self, **changes) -> QwenConfig:
        return QwenConfig.from_dict({**self.to_dict(), **changes})

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @property
    def image_tokens(self) -> int:
        """Language tokens one image becomes."""
        return (self.image_size // self.factor) ** 2


def validate(cfg: QwenConfig) -> QwenConfig:
    if cfg.image_size <= 0 or cfg.image_size % cfg.factor:
        raise ConfigError(f"image_size {cfg.image_size} must be a positive multiple of {cfg.factor}")
    if len(cfg.answers) != 2 or cfg.answers[0] == cfg.answers[1]:
        raise ConfigError(f"answers must be two different words, got {list(cfg.answers)}")
    if cfg.dtype not in ("float32", "bfloat16", "float16"):
        raise ConfigError(f"dtype {cfg.dtype!r} must be float32, bfloat16 or float16")
    if not 0.0 < cfg.threshold < 1.0:
        raise ConfigError(f"threshold {cfg.threshold} must lie strictly between 0 and 1")
    if cfg.lr_schedule not in ("cosine", "constant"):
        raise ConfigError(f"lr_schedule {cfg.lr_schedule!r} must be cosine or constant")
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.max_steps < 1:
        raise ConfigError("batch_size, grad_accum and max_steps must be at least 1")
    return cfg


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> QwenConfig:
    """Defaults, then the YAML recipe, then explicit overrides (None values are ignored)."""
    d: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config not found: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of QwenConfig fields")
        d.update(loaded)
    d.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return QwenConfig.from_dict({**QwenConfig().to_dict(), **d})


__all__ = ["QwenConfig", "ConfigError", "load_config", "validate"]
