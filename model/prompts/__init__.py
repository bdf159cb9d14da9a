"""Prompt bank for the Qwen2-VL detector: instruction and explanation prompts, cached in bank.json.

    from model.prompts import load_bank
    bank = load_bank()            # the versioned file in the repo, or the built-in bank without one

`aidetect prompts generate` refreshes bank.json through the OpenAI API (see generate.py).
"""

from .bank import BUILTIN_VERSION, DEFAULT_BANK_PATH, PromptBank, PromptBankError, builtin_bank, load_bank

__all__ = [
    "BUILTIN_VERSION",
    "DEFAULT_BANK_PATH",
    "PromptBank",
    "PromptBankError",
    "builtin_bank",
    "load_bank",
]
