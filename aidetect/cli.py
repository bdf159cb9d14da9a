"""The `aidetect` command line: one entry point for every job.

    aidetect up                 # train if no production model, then serve on 127.0.0.1:8000
    aidetect train --epochs 4   # train the default CPU detector, log and register it in MLflow
    aidetect evaluate           # metrics per source, calibration, thresholds, plots
    aidetect serve              # the LitServe detector
    aidetect --help             # everything else

Commands import their heavy modules lazily so `--help` stays fast.
"""

from __future__ import annotations

import logging
import sys

import typer
from typer.core import TyperGroup

from aidetect.errors import fail, one_line
from aidetect.extras import check as extra_problem

# What a user can fix, raised anywhere under any command: it ends as `aidetect: error: <message>` on stderr
# and exit 2, with no traceback (`aidetect -v` logs it). Anything else is a bug and keeps its traceback.
# Named, not imported: an exception can only come from a module already loaded, so checking those costs
# no import (model.registry alone takes 2 s), and a group whose extra is missing cannot break the check.
# tests/test_cli.py checks that every name imports as an exception.
USER_ERRORS = (
    # model/ raises plain ValueError for bad input throughout (no images in a split, unknown runtime, ...);
    # ManifestError, ImageError, ConfigError, PromptBankError, LoaderError, PinError, SiteError and
    # InventoryError derive from it.
    "builtins.ValueError",
    "builtins.OSError",  # a missing or unreadable file or folder, a full disk
    "model.registry.RegistryError",
    "model.etl.store.StoreError",
    "model.etl.connectors.base.ConnectorError",
    "ci.errors.StepError",
    "ci.gitrepo.GitError",
    "service.records.NotFound",
    "infra.preflight.InfraError",
)


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` is one of USER_ERRORS or derives from one."""
    for name in USER_ERRORS:
        module, _, attr = name.rpartition(".")
        cls = getattr(sys.modules.get(module), attr, None)
        if cls is not None and isinstance(exc, cls):
            return True
    return False


class _Root(TyperGroup):
    """The root group: every command runs inside its invoke, so this is the one place user errors are shown."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_user_error(exc):
                raise
            logging.getLogger("aidetect").debug("user error", exc_info=True)
            raise fail(one_line(exc)) from None


app = typer.Typer(
    name="aidetect",
    cls=_Root,
    help="Tell whether an image was made by AI: train, evaluate, register and serve detectors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # httpx logs every request at INFO: pages of it from `ingest`, none of it news to a user
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # A group whose extra is not installed stops here with the pip command, not later with a traceback;
    # its --help still works.
    problem = None if "--help" in sys.argv else extra_problem(ctx.invoked_subcommand)
    if problem:
        raise fail(problem)


from aidetect import cli_data, cli_models, cli_prompts, cli_qwen, commands  # noqa: E402

commands.register(app)

# --- every command group registers here, the composition root: model/ holds no CLI (tests/test_layers.py) ---
from ci.cli import app as ci_app  # noqa: E402
from infra.cli import app as infra_app  # noqa: E402
from service.cli import keys_app, moderators_app, monitor_app, predict, records_app  # noqa: E402

app.add_typer(infra_app, name="infra")
app.add_typer(cli_qwen.app, name="qwen")
app.add_typer(cli_models.app, name="models")
app.add_typer(cli_prompts.app, name="prompts")
app.add_typer(cli_data.ingest_app, name="ingest")
app.add_typer(cli_data.data_app, name="data")
app.add_typer(ci_app, name="ci")
app.add_typer(keys_app, name="keys")
app.add_typer(moderators_app, name="moderators")
app.add_typer(monitor_app, name="monitor")
app.add_typer(records_app, name="records")
app.command("predict")(predict)


def main() -> None:  # pragma: no cover - console-script shim
    app()
