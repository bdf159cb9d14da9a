"""What GitHub Actions reads back from a step: outputs ($GITHUB_OUTPUT) and the job summary ($GITHUB_STEP_SUMMARY).

    write_outputs({"version": "3", "promote": "true"})   # appends key=value lines when running in Actions
    append_summary(markdown)

Outside Actions (the variables unset) both do nothing, so every step runs the same way locally.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _append(var: str, text: str) -> Path | None:
    target = os.environ.get(var)
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(text)
    return Path(target)


def format_outputs(outputs: dict) -> str:
    """key=value lines; values with newlines use the heredoc form Actions documents."""
    lines = []
    for key, value in outputs.items():
        value = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in value:
            delim = f"ghadelim_{secrets.token_hex(8)}"
            lines.append(f"{key}<<{delim}\n{value}\n{delim}")
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def write_outputs(outputs: dict) -> Path | None:
    return _append("GITHUB_OUTPUT", format_outputs(outputs))


def append_summary(markdown: str) -> Path | None:
    return _append("GITHUB_STEP_SUMMARY", markdown.rstrip() + "\n\n")

