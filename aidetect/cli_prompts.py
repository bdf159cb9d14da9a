"""`aidetect prompts ...`: build and inspect the prompt bank the Qwen detector trains with.

OPENAI_API_KEY=... aidetect prompts generate       # gpt-4o writes varied prompts -> bank.json
aidetect prompts generate --builtin                # the deterministic bank, no network
aidetect prompts show
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from model.prompts.bank import DEFAULT_BANK_PATH, builtin_bank, load_bank, save_bank

app = typer.Typer(
    help="Prompt bank for the Qwen detector: generate with OpenAI (cached in the repo), show.",
    no_args_is_help=True,
)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="where to write the bank (commit it: training reads it)")] = (
        DEFAULT_BANK_PATH
    ),
    model: Annotated[str, typer.Option(help="OpenAI chat model")] = "gpt-4o",
    n: Annotated[int, typer.Option(min=1, max=200, help="instruction prompts to ask for")] = 24,
    n_explanations: Annotated[int, typer.Option(min=1, max=50, help="explanation prompts to ask for")] = 8,
    base_url: Annotated[str | None, typer.Option(envvar="OPENAI_BASE_URL", help="chat-completions endpoint")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed passed to the API")] = 0,
    builtin: Annotated[bool, typer.Option("--builtin", help="write the deterministic built-in bank instead")] = False,
) -> None:
    """Ask the model for varied prompts (key from OPENAI_API_KEY) and cache them as versioned JSON.

    Without OPENAI_API_KEY the built-in bank is written, so training stays reproducible offline.
    """
    import os

    from model.prompts.generate import generate_bank

    if builtin or not os.environ.get("OPENAI_API_KEY"):
        if not builtin:
            typer.echo("OPENAI_API_KEY is not set: writing the built-in bank", err=True)
        bank = builtin_bank()
    else:
        bank = generate_bank(n, n_explanations, model=model, base_url=base_url, seed=seed)
    path = save_bank(bank, out)
    typer.echo(
        f"wrote {path}: version {bank.version}, source {bank.source}, "
        f"{len(bank.instruction_prompts)} instruction and {len(bank.explanation_prompts)} explanation prompts"
    )


@app.command()
def show(
    path: Annotated[Path | None, typer.Option(help="bank file (default: the repo's bank.json)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole bank as JSON")] = False,
) -> None:
    """Print the bank in use: version, source, prompts."""
    bank = load_bank(path)
    if as_json:
        typer.echo(json.dumps(bank.to_dict(), indent=2))
        return
    typer.echo(f"version {bank.version}  source {bank.source}  sha256 {bank.sha256[:12]}")
    typer.echo("instruction prompts:")
    for p in bank.instruction_prompts:
        typer.echo(f"  - {p}")
    typer.echo("explanation prompts:")
    for p in bank.explanation_prompts:
        typer.echo(f"  - {p}")
