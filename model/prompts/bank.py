"""The prompt bank: what the detector is asked during training and when it explains.

A bank is a small JSON document (bank.json beside this file is the one training uses):

    {"version": "2026-11-25.1", "source": "builtin" | "openai:<model>", "answer_suffix": "...",
     "instruction_prompts": [...], "explanation_prompts": [...], "sha256": "..."}

Instruction prompts are questions whose answer is one word, "real" or "ai"; each ends with the
answer suffix so the answer tokens stay the same whatever the wording. Explanation prompts hold
`{verdict}` and ask for a short reason. `sha256` covers the prompts, so a model version can name
the exact bank it was trained with.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_BANK_PATH = Path(__file__).with_name("bank.json")
ANSWER_SUFFIX = "Answer real or ai."
BUILTIN_VERSION = "builtin-1"


class PromptBankError(ValueError):
    """A bank file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class PromptBank:
    version: str
    source: str
    instruction_prompts: tuple[str, ...]
    explanation_prompts: tuple[str, ...]
    answer_suffix: str = ANSWER_SUFFIX

    @property
    def sha256(self) -> str:
        body = json.dumps([self.answer_suffix, self.instruction_prompts, self.explanation_prompts])
        return hashlib.sha256(body.encode()).hexdigest()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["instruction_prompts"] = list(self.instruction_prompts)
        d["explanation_prompts"] = list(self.explanation_prompts)
        d["sha256"] = self.sha256
        return d

    def instruction(self, rng: random.Random) -> str:
        return rng.choice(self.instruction_prompts)

    def explanation(self, verdict: str, index: int = 0) -> str:
        return self.explanation_prompts[index % len(self.explanation_prompts)].format(verdict=verdict)


def normalise_instruction(text: str, suffix: str = ANSWER_SUFFIX) -> str | None:
    """One clean instruction ending with the answer suffix, or None if it is not usable."""
    text = " ".join(str(text).split())
    if not text or len(text) > 300 or "{" in text or "}" in text:
        return None
    if not text.endswith(suffix):
        text = f"{text.rstrip()} {suffix}"
    return text


def normalise_explanation(text: str) -> str | None:
    text = " ".join(str(text).split())
    if not text or len(text) > 400 or text.count("{verdict}") != 1:
        return None
    if text.replace("{verdict}", "").count("{") or text.count("}") != 1:
        return None  # any other brace would break str.format
    return text


def _dedupe(items) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        if item is not None and item.lower() not in {s.lower() for s in seen}:
            seen[item] = None
    return tuple(seen)


def make_bank(version: str, source: str, instructions, explanations, suffix: str = ANSWER_SUFFIX) -> PromptBank:
    """Validate and dedupe raw prompt lists into a bank; the default question always comes first."""
    ins = _dedupe([f"Is this image AI-generated? {suffix}"] + [normalise_instruction(t, suffix) for t in instructions])
    exp = _dedupe(normalise_explanation(t) for t in explanations)
    if not exp:
        raise PromptBankError("no usable explanation prompt (each needs exactly one {verdict})")
    return PromptBank(version, source, ins, exp, suffix)


_BUILTIN_QUESTIONS = (
    "Was this picture produced by an image generator rather than a camera?",
    "Look at textures, lighting and fine detail. Is this image real or AI-generated?",
    "Decide whether this photo was captured in the real world or synthesised by a model.",
    "Is this a genuine photograph or a machine-generated image?",
    "Examine the image for generation artefacts. Real photo or AI image?",
    "Could a diffusion model or GAN have made this image?",
    "Classify the image by origin: camera or generative model.",
    "Does this image come from a real scene, or was it generated?",
)
_BUILTIN_EXPLANATIONS = (
    "In two sentences, explain which visual evidence makes this image look {verdict}.",
    "Name the strongest cues (texture, lighting, anatomy, text, edges) behind the verdict {verdict}.",
    "Briefly justify why this image was judged {verdict}, pointing at specific regions.",
)


def builtin_bank() -> PromptBank:
    """The deterministic bank used without an OpenAI key: same prompts on every machine."""
    return make_bank(BUILTIN_VERSION, "builtin", _BUILTIN_QUESTIONS, _BUILTIN_EXPLANATIONS)


def bank_from_dict(d: dict, where: str = "bank") -> PromptBank:
    try:
        bank = make_bank(
            str(d["version"]),
            str(d.get("source", "unknown")),
            list(d["instruction_prompts"]),
            list(d["explanation_prompts"]),
            str(d.get("answer_suffix", ANSWER_SUFFIX)),
        )
    except (KeyError, TypeError) as e:
        raise PromptBankError(f"{where}: missing or malformed field {e}") from None
    if "sha256" in d and d["sha256"] != bank.sha256:
        raise PromptBankError(f"{where}: sha256 does not match its prompts (edited by hand? regenerate it)")
    return bank


def load_bank(path: str | Path | None = None) -> PromptBank:
    """The bank at `path` (default: bank.json in the repo); the built-in bank if the default is absent."""
    p = Path(path) if path is not None else DEFAULT_BANK_PATH
    if not p.is_file():
        if path is None:
            return builtin_bank()
        raise PromptBankError(f"prompt bank not found: {p}")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PromptBankError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise PromptBankError(f"{p}: expected a JSON object")
    return bank_from_dict(d, str(p))


def save_bank(bank: PromptBank, path: str | Path) -> Path:
    p = Path(path)
    p.write_text(json.dumps(bank.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return p
