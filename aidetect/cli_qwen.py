"""`aidetect qwen ...`: train, score, explain and serve the Qwen2-VL detector.

    aidetect qwen train --config configs/qwen2vl_tiny.yaml --max-steps 300
    aidetect qwen score --model-uri models:/aidetect-qwen/1 photo.jpg
    aidetect qwen explain --bundle runs/qwen/bundle photo.jpg
    aidetect qwen serve --model-uri models:/aidetect-qwen/1 --port 8001
    aidetect qwen fit-thresholds --fast-model models:/aidetect@production --qwen-model models:/aidetect-qwen/1

Heavy imports (torch, transformers) happen inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from aidetect.errors import fail as _fail

app = typer.Typer(
    help="The Qwen2-VL-7B detector (LoRA/QLoRA): second stage of the cascade, with explanations.",
    no_args_is_help=True,
)


@app.command()
def train(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML recipe, e.g. configs/qwen2vl_qlora.yaml")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="optimizer steps (overrides the recipe)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="global batch size")] = None,
    manifest: str | None = typer.Option(None, help="manifest CSV or snapshot folder (default: AIDETECT_MANIFEST)"),
    base_model: str | None = typer.Option(None, help="hub id or local path of a Qwen2-VL checkpoint, or 'tiny'"),
    out: Annotated[Path | None, typer.Option(help="bundle folder to keep (default: a temporary one)")] = None,
    register: Annotated[bool, typer.Option(help="log the run and register the model version in MLflow")] = True,
) -> None:
    """Instruction-tune the adapters, calibrate on the val split, log and register in MLflow.

    For several GPUs run the same trainer under torchrun:
    torchrun --nproc-per-node N -m model.qwen.train --config ... --out DIR
    """
    import logging

    from aidetect.settings import get_settings
    from model.qwen.config import load_config
    from model.qwen.tracking import log_and_register
    from model.qwen.train import train as run_training

    logging.getLogger().setLevel(logging.INFO)
    cfg = load_config(
        config,
        {
            "max_steps": max_steps,
            "batch_size": batch_size,
            "manifest": manifest,
            "base_model": base_model,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = run_training(cfg, out or Path(tmp) / "bundle")
        typer.echo(json.dumps(result.metrics, indent=1))
        if register:
            ref = log_and_register(result, get_settings())
            typer.echo(f"registered {ref.uri}")


def _load(model_uri: str | None, bundle: Path | None):
    from model.qwen.detector import QwenDetector

    if (model_uri is None) == (bundle is None):
        raise _fail("give exactly one of --model-uri or --bundle")
    if bundle is not None:
        return QwenDetector.from_bundle(bundle)
    from aidetect.settings import get_settings
    from model.registry import configure

    configure(get_settings())
    return QwenDetector.from_uri(model_uri)


def _images(paths: list[Path]):
    from model.preprocess import decode_image

    for p in paths:
        if not p.is_file():
            raise _fail(f"no such image: {p}")
    return [decode_image(p.read_bytes()) for p in paths]


# `score` and `explain` take the same inputs: one spelling of each, so their --help cannot drift apart.
Images = Annotated[list[Path], typer.Argument(help="image files")]
ModelUri = Annotated[str | None, typer.Option(help="models:/<name>/<version> or models:/<name>@<alias>")]
BundleDir = Annotated[Path | None, typer.Option(help="a bundle folder written by `qwen train --out`")]


@app.command()
def score(
    images: Images,
    model_uri: ModelUri = None,
    bundle: BundleDir = None,
) -> None:
    """Calibrated P(AI) and verdict per image (one forward pass, no generation); JSON lines."""
    _predict_lines(images, model_uri, bundle, explain=False)


@app.command()
def explain(
    images: Images,
    model_uri: ModelUri = None,
    bundle: BundleDir = None,
) -> None:
    """Score and explain each image (generation); JSON lines."""
    _predict_lines(images, model_uri, bundle, explain=True)


def _predict_lines(images: list[Path], model_uri: str | None, bundle: Path | None, explain: bool) -> None:
    det = _load(model_uri, bundle)
    rows = det.predict(_images(images), explain=[True] * len(images) if explain else None)
    for path, row in zip(images, rows, strict=True):
        typer.echo(json.dumps({"image": str(path), **row}))


@app.command()
def serve(
    model_uri: Annotated[str, typer.Option(help="models:/<name>/<version> (or a bundle folder) to serve")],
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (the fast detector has 8000)")] = 8001,
    max_batch_size: Annotated[int, typer.Option(help="dynamic batching: most images per forward pass")] = 8,
    batch_timeout: Annotated[float, typer.Option(help="dynamic batching: seconds to wait to fill a batch")] = 0.02,
    timeout: Annotated[float, typer.Option(help="seconds before a request is answered 504")] = 60.0,
) -> None:
    """The Qwen detector as its own LitServe server: POST /predict {"image": base64, "explain": bool}."""
    from service.qwen_api import run_server

    run_server(
        model_uri,
        host=host,
        port=port,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
        timeout=timeout,
    )


@app.command("fit-thresholds")
def fit_thresholds(
    fast_model: Annotated[str, typer.Option(help="the fast stage in front: models:/... URI or a bundle folder")],
    qwen_model: Annotated[str, typer.Option(help="the Qwen version to fit: models:/<name>/<version> or a bundle")],
    manifest: str | None = typer.Option(None, help="manifest CSV or snapshot folder (default: AIDETECT_MANIFEST)"),
    split: Annotated[str, typer.Option(help="the validation split")] = "val",
    max_samples: Annotated[int | None, typer.Option(help="balanced subset of the split, for quick runs")] = None,
    min_per_label: Annotated[
        int, typer.Option(help="real and AI uncertain images each needed; fewer: fit on all of val")
    ] = 50,
    report: Annotated[Path | None, typer.Option(help="also write the full result as JSON here")] = None,
) -> None:
    """Fit the Qwen stage's calibration and thresholds on the val images the fast stage calls uncertain
    (its 1% FPR / FNR rule), report 95% intervals, and keep them with the Qwen version for `qwen serve`."""
    import logging

    from aidetect.settings import get_settings
    from model.manifest import ManifestError, read_manifest, subsample
    from model.qwen.config import QwenConfig
    from model.qwen.data import manifest_path
    from model.qwen.stage_fit import fit_and_store
    from model.qwen.thresholds import summary
    from model.registry import configure

    logging.getLogger().setLevel(logging.WARNING)
    configure(get_settings())
    path = manifest_path(QwenConfig(manifest=manifest))
    samples = read_manifest(path, split=split)
    if not samples:
        raise ManifestError(f"{path}: no {split!r} images")
    if max_samples is not None and max_samples < len(samples):
        groups = max(1, len({(s.source, s.label) for s in samples}))
        samples = subsample(samples, max(1, max_samples // groups))
    result = fit_and_store(fast_model, qwen_model, samples, min_per_label=min_per_label)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=1))
    typer.echo(summary(result))
    typer.echo(f"stored in {result['stored_in']}")
    if result["fallback"]:
        typer.echo(f"warning: {result['fallback']}", err=True)
