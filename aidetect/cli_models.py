"""`aidetect models`: work on registered detector versions.

aidetect models export 3                  # ONNX export of version 3, registered as a new version
aidetect models export 3 --move-aliases   # ... and the aliases of 3 (production, ...) move to it
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from aidetect.errors import fail

app = typer.Typer(help="Registered detector versions: add the ONNX export to old ones.", no_args_is_help=True)


@app.command("export")
def export(
    version: str = typer.Argument(..., help="version number of the registered model to export"),
    move_aliases: bool = typer.Option(
        False, "--move-aliases", help="move the aliases the old version holds (production, ...) to the new one"
    ),
    home: Path = typer.Option(None, "--home", help="data directory for the embedded MLflow store [env AIDETECT_HOME]"),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [env AIDETECT_TRACKING_URI]"),
    manifest: Path = typer.Option(None, "--manifest", "-m", help="manifest whose val images check parity"),
) -> None:
    """Export a version registered before ONNX exports to ONNX, and register it as a NEW model version.

    MLflow model versions are immutable, so the export is not added to VERSION: the same weights,
    calibration and thresholds plus detector.onnx are logged as a new model and registered as the
    next version, tagged exported_from=VERSION. Before registering, the export is checked against
    eager torch on validation images (max |probability difference| <= 1e-4, identical verdicts).
    Aliases stay where they are unless --move-aliases is given. Prints the new version as JSON.
    """
    from aidetect.settings import get_settings
    from model.export import export_version

    settings = get_settings(home=home, tracking_uri=tracking_uri, manifest=manifest)
    if not version.isdigit():
        raise fail(f"VERSION must be a version number, not {version!r}")
    result = export_version(settings, version, move_aliases)
    typer.echo(json.dumps(result, indent=2))
