"""`aidetect ci`: the retrain -> evaluate -> promote loop, one idempotent command per step.

    aidetect ci should-retrain                    # exit 0: retrain (and why), 1: not now (and why)
    aidetect ci retrain                           # snapshot, train, register as @challenger
    aidetect ci evaluate                          # exit 0: passed the gate, 1: rejected; report in the summary
    aidetect ci promote --to staging              # then --to canary, then --to production
    aidetect ci rollback --stage production       # alias and pin back to what was there before
    aidetect ci status                            # aliases next to pins

Configured the way GitHub Actions passes things: MLFLOW_TRACKING_URI (or AIDETECT_TRACKING_URI), GITHUB_SHA,
GITHUB_EVENT_NAME, AIDETECT_* and AIDETECT_CI_* variables (ci/config.py); outputs go to $GITHUB_OUTPUT and
reports to $GITHUB_STEP_SUMMARY when those are set. Locally the same commands run unchanged.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="Retrain, gate, promote and roll back models: registry aliases plus the model pin in gitops/.",
    no_args_is_help=True,
    add_completion=False,
)

TRACKING = typer.Option(None, "--tracking-uri", help="MLflow URI [env AIDETECT_TRACKING_URI or MLFLOW_TRACKING_URI]")
REPO = typer.Option(None, "--gitops-repo", help="git checkout with gitops/ [env AIDETECT_CI_GITOPS_REPO]")


def _settings(tracking_uri: str | None):
    from aidetect.settings import get_settings

    # Actions jobs usually export MLflow's own variable; ours wins when both are set.
    uri = tracking_uri or os.environ.get("AIDETECT_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI")
    return get_settings(tracking_uri=uri)


def _config(**overrides):
    from ci.config import get_ci_config

    return get_ci_config(**overrides)


def _progress():
    from model.progress import make_progress

    return make_progress(disable=not sys.stderr.isatty())


def _emit(obj: dict) -> None:
    from ci.actions import write_outputs

    write_outputs({k: v for k, v in obj.items() if not isinstance(v, dict | list)})
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command("should-retrain")
def should_retrain(
    event: str = typer.Option(None, "--event", help="what started the run [env GITHUB_EVENT_NAME, else schedule]"),
    signals: Path = typer.Option(None, "--signals", help="JSON with moderator_labels and/or drift (monitoring)"),
    drift: float = typer.Option(None, "--drift", help="drift score measured elsewhere"),
    moderator_labels: int = typer.Option(None, "--moderator-labels", help="moderator labels since the last snapshot"),
    store: bool = typer.Option(
        None, "--store/--no-store", help="count moderator labels in the ETL database [default: if AIDETECT_STORE_URL]"
    ),
    tracking_uri: str = TRACKING,
) -> None:
    """Decide whether to retrain now. Exit 0: yes; 1: no; either way, print why (and write `retrain`, `reason`)."""
    from ci.triggers import Thresholds, gather_signals
    from ci.triggers import should_retrain as decide

    settings = _settings(tracking_uri)
    event = event or os.environ.get("GITHUB_EVENT_NAME") or "schedule"
    use_store = bool(settings.store_url) if store is None else store
    sig = gather_signals(settings, event, signals, drift, moderator_labels, use_store)
    go, reasons = decide(sig, Thresholds.from_config(_config()))
    from ci.actions import write_outputs

    write_outputs({"retrain": go, "reason": "; ".join(reasons)})
    typer.echo(("retrain: " if go else "no retrain: ") + "; ".join(reasons))
    raise typer.Exit(0 if go else 1)


@app.command()
def retrain(
    recipe: Path = typer.Option(None, "--recipe", help="training recipe [env AIDETECT_CI_RECIPE]"),
    epochs: int = typer.Option(None, help="override the recipe's epochs"),
    per_group: int = typer.Option(None, help="train on at most N images per source/label/split"),
    lr: float = typer.Option(None, help="override the recipe's learning rate"),
    snapshot: str = typer.Option(None, help="auto | always | never [env AIDETECT_CI_SNAPSHOT]"),
    tracking_uri: str = TRACKING,
) -> None:
    """Take a data snapshot, train, register and give the new version the `challenger` alias.

    A version already trained from the same commit, data digest and recipe is reused, not retrained.
    """
    from ci.retrain import retrain as run

    settings = _settings(tracking_uri)
    cfg = _config(recipe=recipe, epochs=epochs, per_group=per_group, lr=lr, snapshot=snapshot)
    with _progress() as progress:
        res = run(settings, cfg, progress)
    _emit({**res.outputs(), "val_auroc": res.val_auroc, "manifest": str(res.data.manifest)})


@app.command()
def evaluate(
    version: str = typer.Option(None, "--version", help="version to gate [the one holding @challenger]"),
    report: Path = typer.Option(None, "--report", help="also write the Markdown report here"),
    tracking_uri: str = TRACKING,
) -> None:
    """Gate the challenger against production on the frozen evaluation set.

    Exit 0: it passed (promote it); 1: rejected, with the reasons. The Markdown report goes to
    $GITHUB_STEP_SUMMARY and MLflow (gate/report.md); the decision is tagged on the version.
    """
    from ci.measure import evaluate as run

    settings = _settings(tracking_uri)
    with _progress() as progress:
        res = run(settings, _config(), version, progress)
    if report:
        report.write_text(res.report, encoding="utf-8")
    _emit({**res.outputs(), "challenger": res.challenger, "production": res.production, "eval_set": res.eval_set})
    raise typer.Exit(0 if res.decision.promote else 1)


@app.command()
def promote(
    to: str = typer.Option(..., "--to", help="staging, canary or production"),
    version: str = typer.Option(None, "--version", help="version to promote [the holder of the stage before]"),
    commit: bool = typer.Option(None, "--commit/--no-commit", help="commit the pin [env AIDETECT_CI_COMMIT]"),
    pin: bool = typer.Option(None, "--pin/--no-pin", help="write the pin in gitops/ [env AIDETECT_CI_PIN]"),
    gitops_repo: Path = REPO,
    tracking_uri: str = TRACKING,
) -> None:
    """Move a gated version one stage on: the alias, then the pin in gitops/ and its commit."""
    from ci.promote import promote as run

    settings = _settings(tracking_uri)
    res = run(settings, _config(commit=commit, pin=pin, gitops_repo=gitops_repo), to, version)
    _emit(res.outputs())


@app.command()
def rollback(
    stage: str = typer.Option(..., "--stage", help="staging, canary or production"),
    version: str = typer.Option(None, "--version", help="the version to take out [the one pinned now]"),
    to_version: str = typer.Option(None, "--to-version", help="put this one back [what --version replaced]"),
    commit: bool = typer.Option(None, "--commit/--no-commit", help="commit the pin [env AIDETECT_CI_COMMIT]"),
    pin: bool = typer.Option(None, "--pin/--no-pin", help="write the pin in gitops/ [env AIDETECT_CI_PIN]"),
    gitops_repo: Path = REPO,
    tracking_uri: str = TRACKING,
) -> None:
    """Move a stage's alias and pin back to the version it held before. Re-running with the same
    --version changes nothing."""
    from ci.promote import rollback as run

    settings = _settings(tracking_uri)
    res = run(settings, _config(commit=commit, pin=pin, gitops_repo=gitops_repo), stage, version, to_version)
    _emit(res.outputs())


@app.command()
def status(gitops_repo: Path = REPO, tracking_uri: str = TRACKING) -> None:
    """Which version holds each alias, and which each overlay pins."""
    from ci.promote import status as run

    out = run(_settings(tracking_uri), _config(gitops_repo=gitops_repo))
    typer.echo(json.dumps(out, indent=2))
