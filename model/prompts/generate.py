"""Refresh the prompt bank with varied wordings from an OpenAI chat model.

    OPENAI_API_KEY=... aidetect prompts generate --n 24          # writes model/prompts/bank.json
    aidetect prompts generate --base-url http://127.0.0.1:9999/v1 # any chat-completions server

The model is asked for JSON; whatever it returns is validated and deduplicated by bank.make_bank,
so a bad answer can shrink the bank but never break training. Without a key the deterministic
built-in bank is written instead, so the file (and training) stay reproducible offline.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from .bank import ANSWER_SUFFIX, PromptBank, PromptBankError, builtin_bank, make_bank

DEFAULT_MODEL = "gpt-4o"

SYSTEM = (
    "You write prompts for training a vision-language model that detects AI-generated images. "
    "Reply with one JSON object and nothing else."
)


def request_text(n_instructions: int, n_explanations: int) -> str:
    return (
        f"Write {n_instructions} different ways to ask whether an image is a real photograph or "
        f'AI-generated, each a single question that ends with exactly: "{ANSWER_SUFFIX}". Vary the wording, '
        "the cues mentioned (texture, lighting, anatomy, text rendering, compression) and the register. "
        f"Also write {n_explanations} different instructions that ask the model to explain its verdict; "
        "each must contain the placeholder {verdict} exactly once and no other braces. "
        'Return {"instruction_prompts": [...], "explanation_prompts": [...]}.'
    )


def parse_reply(content: str) -> tuple[list[str], list[str]]:
    """The two prompt lists from the model's JSON reply (code fences tolerated)."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{") :]
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise PromptBankError(f"the model did not return JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise PromptBankError("the model returned JSON that is not an object")
    ins, exp = d.get("instruction_prompts"), d.get("explanation_prompts")
    if not isinstance(ins, list) or not isinstance(exp, list):
        raise PromptBankError("the model's JSON lacks instruction_prompts / explanation_prompts lists")
    return [str(x) for x in ins], [str(x) for x in exp]


def generate_bank(
    n_instructions: int = 24,
    n_explanations: int = 8,
    model: str = DEFAULT_MODEL,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    seed: int = 0,
    version: str | None = None,
) -> PromptBank:
    """Ask the chat model for prompts; falls back to the built-in bank when there is no key."""
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        return builtin_bank()
    from openai import OpenAI, OpenAIError

    client = OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=1)
    try:
        reply = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": request_text(n_instructions, n_explanations)},
            ],
            response_format={"type": "json_object"},
            temperature=1.0,
            seed=seed,
        )
    except OpenAIError as e:
        raise PromptBankError(f"OpenAI request failed: {type(e).__name__}: {e}") from None
    if not reply.choices or not reply.choices[0].message.content:
        raise PromptBankError("the model returned no content")
    ins, exp = parse_reply(reply.choices[0].message.content)
    version = version or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%MZ")
    return make_bank(version, f"openai:{reply.model or model}", ins, exp)
