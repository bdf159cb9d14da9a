"""How every command reports an error the user can fix: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `aidetect: error: <message>` on stderr; raise the returned Exit (`raise fail(...)`)."""
    typer.echo(f"aidetect: error: {message}", err=True)
    return typer.Exit(code)
