"""The main-job commands: train, evaluate, serve, up, predict.

Kept apart from aidetect/cli.py, which only assembles the command tree.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from aidetect.errors import fail as _fail
from aidetect.settings import get_settings

log = logging.getLogger("aidetect")

MANIFEST_OPT = typer.Option(None, "--manifest", "-m", help="image manifest CSV [env AIDETECT_MANIFEST]")
HOME_OPT = typer.Option(None, "--home", help="data directory for the embedded MLflow store [env AIDETECT_HOME]")
TRACKING_OPT = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [env AIDETECT_TRACKING_URI]")


def _progress():
    from model.progress import make_progress

    return make_progress(disable=not sys.stderr.isatty())


def train(
    manifest: Path = MANIFEST_OPT,
    home: Path = HOME_OPT,
    tracking_uri: str = TRACKING_OPT,
    recipe: Path = typer.Option(None, "--recipe", help="YAML recipe overriding defaults [AIDETECT_RECIPE]"),
    epochs: int = typer.Option(None, help="passes over the train split"),
    batch_size: int = typer.Option(None, help="images per step"),
    lr: float = typer.Option(None, help="peak learning rate"),
    per_group: int = typer.Option(None, help="at most N images per source/label/split (quick runs)"),
    seed: int = typer.Option(None, help="random seed"),
    target_fpr: float = typer.Option(
        None, "--target-fpr", min=0.0, max=0.5, help="share of real images allowed at or above `high` [0.01]"
    ),
    target_fnr: float = typer.Option(
        None, "--target-fnr", min=0.0, max=0.5,
        help="share of AI images allowed below `low` [0.01]; `aidetect evaluate` tabulates the queue at others",
    ),
    json_out: Path = typer.Option(None, "--json", help="also write the training report here"),
) -> None:
    """Train the fast CPU detector on the manifest's train split, calibrate it on val, register it in MLflow.

    Shows a progress bar; logs params, per-step loss, per-source validation metrics and the
    model (with its preprocessing, calibration and thresholds) to MLflow, then registers a
    new version of the model. Does not move any alias: `aidetect evaluate` does that.
    """
    from model.jobs import train_and_register
    from model.train import load_config

    settings = get_settings(manifest=manifest, home=home, tracking_uri=tracking_uri)
    cfg = load_config(
        recipe or settings.recipe, epochs=epochs, batch_size=batch_size, lr=lr, per_group=per_group, seed=seed,
        target_fpr=target_fpr, target_fnr=target_fnr,
    )
    with _progress() as progress:
        ref, report = train_and_register(settings, cfg, progress)
    m = report["metrics"]
    summary = {
        "model": ref.uri,
        "run_id": report["run_id"],
        "train_seconds": round(report["train_seconds"], 1),
        "val_auroc": {k: round(v["auroc"], 4) for k, v in m.items()},
    }
    if json_out:
        json_out.write_text(json.dumps({k: v for k, v in report.items() if k != "losses"}, indent=2))
    typer.echo(json.dumps(summary, indent=2))


def evaluate(
    model_uri: str = typer.Option(None, "--model-uri", help="model to evaluate [models:/aidetect/latest]"),
    manifest: Path = MANIFEST_OPT,
    home: Path = HOME_OPT,
    tracking_uri: str = TRACKING_OPT,
    out: Path = typer.Option(None, "--out", help="also keep the plots and evaluation.json in this folder"),
    per_group: int = typer.Option(None, help="evaluate on at most N images per source/label (quick runs)"),
    leave_out: bool = typer.Option(
        False,
        "--leave-out",
        help="run the leave-one-family-out / leave-one-real-source-out benchmark on frozen "
        "features instead (no registered model needed; JSON to --out/leave_out.json)",
    ),
    threads: int = typer.Option(1, help="--leave-out: torch threads for the frozen features"),
) -> None:
    """Evaluate a registered model on the evaluation half of val, as stored and as platforms alter uploads.

    Reports AUROC, average precision, TPR at 1% FPR and ECE with bootstrap 95% intervals for each
    two-label source of at least 100 images, the single-label sources pooled, and overall; AUROC per
    robustness tier (JPEG 60/75/95, downscale 0.75/0.5, crops of 60-90%, screenshot re-render); and the
    verdict shares on real non-photos, unseen real-photo sources and a separately rendered non-photo set
    (charts, screenshots, memes; rendered once into the home cache); and the review queue and errors at
    other threshold targets, refitted on the calibration half (`train --target-fpr/--target-fnr`).
    Logs them, tables and plots to MLflow, and gives the `production` alias to this version when no
    version holds it yet.
    """
    settings = get_settings(manifest=manifest, home=home, tracking_uri=tracking_uri)
    if leave_out:
        from model.eval_tables import print_leave_out
        from model.leave_out import run_leave_out

        with _progress() as progress:
            report = run_leave_out(settings, out / "leave_out.json" if out else None, threads, per_group, progress)
        print_leave_out(report)
        return
    from model.jobs import evaluate_and_promote

    with _progress() as progress:
        ref, result = evaluate_and_promote(settings, model_uri, out, progress, per_group)
    if out:
        (out / "evaluation.json").write_text(json.dumps(result, indent=2))
    _print_evaluation(ref, result)


def _print_evaluation(ref, result: dict) -> None:
    from model.eval_tables import print_evaluation

    print_evaluation(ref.uri, result)
    th = result["thresholds"]
    typer.echo(
        f"thresholds: low={th['low']:.4f} high={th['high']:.4f}; verdicts {result['verdict_counts']}; "
        f"production = version {result['production_version']}" + (" (promoted now)" if result["promoted"] else "")
    )


def serve(
    model_uri: str = typer.Option(None, "--model-uri", help="model to serve [models:/aidetect@production]"),
    host: str = typer.Option(None, help="bind address [127.0.0.1]"),
    port: int = typer.Option(None, help="port [8000]"),
    home: Path = HOME_OPT,
    tracking_uri: str = TRACKING_OPT,
    max_batch_size: int = typer.Option(None, help="dynamic batching: most images per forward pass"),
    runtime: str = typer.Option(None, help="auto (the ONNX export, else torch), onnx or torch [auto]"),
) -> None:
    """Serve the detector over HTTP with LitServe: POST /v1/detect, GET /health."""
    from service.server import run_server

    if runtime not in (None, "auto", "onnx", "torch"):
        raise _fail(f"--runtime {runtime!r} is not one of auto, onnx, torch")
    settings = get_settings(
        model_uri=model_uri,
        host=host,
        port=port,
        home=home,
        tracking_uri=tracking_uri,
        max_batch_size=max_batch_size,
        runtime=runtime,
    )
    run_server(settings)


def up(
    manifest: Path = MANIFEST_OPT,
    home: Path = HOME_OPT,
    host: str = typer.Option(None, help="bind address [127.0.0.1]"),
    port: int = typer.Option(None, help="port [8000]"),
    epochs: int = typer.Option(None, help="epochs if a model must be trained first"),
    per_group: int = typer.Option(None, help="train on at most N images per source/label/split"),
) -> None:
    """The main job: train, evaluate and register a model if none holds `production`, then serve it."""
    from model import registry
    from model.jobs import evaluate_and_promote, train_and_register
    from model.train import load_config
    from service.listen import ensure_port_free
    from service.server import run_server

    settings = get_settings(manifest=manifest, home=home, host=host, port=port)
    ensure_port_free(settings.host, settings.port)  # before training: minutes of it, then no port, helps nobody
    registry.configure(settings)
    if settings.model_uri is None and registry.alias_version(settings.model_name, settings.production_alias) is None:
        typer.echo(
            f"no {settings.model_name}@{settings.production_alias} yet: training on {settings.manifest}", err=True
        )
        cfg = load_config(settings.recipe, epochs=epochs, per_group=per_group)
        with _progress() as progress:
            ref, _ = train_and_register(settings, cfg, progress)
            ref, result = evaluate_and_promote(settings, ref.uri, progress=progress, per_group=per_group)
        _print_evaluation(ref, result)
    run_server(settings)


def register(app: typer.Typer) -> None:
    for fn in (up, train, evaluate, serve):
        app.command()(fn)
