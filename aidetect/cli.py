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

from aidetect.errors import fail
from aidetect.extras import check as extra_problem

app = typer.Typer(
    name="aidetect",
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
