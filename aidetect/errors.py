"""How every command reports an error the user can fix: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `aidetect: error: <message>` on stderr; raise the returned Exit (`raise fail(...)`)."""
    typer.echo(f"aidetect: error: {message}", err=True)
    return typer.Exit(code)


def one_line(exc: BaseException) -> str:
    """The message of a user error; a pydantic ValidationError, which prints a block (the model, each field,
    its message, a link), on one line, each field of the settings named as the variable that sets it."""
    errors = getattr(exc, "errors", None)
    if not callable(errors) or not hasattr(exc, "title"):
        return str(exc)
    parts = []
    for e in errors():
        where = ".".join(str(x) for x in e.get("loc", ())) or "value"
        if exc.title == "Settings" and e.get("loc"):
            where = f"AIDETECT_{str(e['loc'][0]).upper()}"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{where}: {e.get('msg', 'invalid')}{got}")
    return f"invalid {exc.title}: " + "; ".join(parts)
