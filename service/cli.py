"""Service commands: API keys, moderator accounts, drift monitoring, record retention, predictions.

    aidetect keys create ci-bot [--rate-limit 120]    # prints the key once; only its hash is stored
    aidetect keys list | aidetect keys revoke ID
    aidetect moderators add alice                      # prints a generated password (or --password-stdin)
    aidetect monitor drift [--hours 24]                # PSI/KS vs the training snapshot -> metric
    aidetect records prune                             # drop unlabelled review images past retention
    aidetect records migrate                           # schema to head (the deployment's PreSync job)
    aidetect predict cat.jpg dog.png [--url URL]       # through the HTTP API (AIDETECT_API_KEY)

All of them use the records database of AIDETECT_STORE_URL (default SQLite under AIDETECT_HOME).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path

import typer

from aidetect.errors import fail as _fail
from aidetect.settings import get_settings

keys_app = typer.Typer(help="API keys for the detector: create, list, revoke.", no_args_is_help=True)
moderators_app = typer.Typer(help="Moderator accounts for the review page.", no_args_is_help=True)
monitor_app = typer.Typer(help="Monitoring: drift of recent traffic against the training data.", no_args_is_help=True)
records_app = typer.Typer(
    help="Detection records: schema migrations, retention of kept review images.", no_args_is_help=True
)

HOME = typer.Option(None, "--home", help="data directory [env AIDETECT_HOME]")
STORE = typer.Option(None, "--store-url", help="records database URL [env AIDETECT_STORE_URL]")


def _records(home: Path | None, store_url: str | None):
    from service.records import Records

    settings = get_settings(home=home, store_url=store_url)
    return settings, Records.open(settings)


def _with_records(home: Path | None, store_url: str | None, action):
    """Open the records database and return action(settings, db)."""
    settings, db = _records(home, store_url)
    return action(settings, db)


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="who or what uses the key, e.g. ci-bot"),
    rate_limit: int = typer.Option(None, "--rate-limit", help="requests a minute [AIDETECT_RATE_LIMIT_PER_MINUTE]"),
    home: Path = HOME,
    store_url: str = STORE,
) -> None:
    """Create an API key and print it once; the database keeps only its SHA-256."""
    from service.auth import hash_key, new_key

    key_id, secret = new_key()
    _with_records(home, store_url, lambda _, db: db.add_key(key_id, name, hash_key(secret), rate_limit))
    typer.echo(json.dumps({"id": key_id, "name": name, "key": secret, "rate_per_minute": rate_limit}))
    typer.echo("store the key now: it is not shown again", err=True)


@keys_app.command("list")
def keys_list(home: Path = HOME, store_url: str = STORE) -> None:
    """List keys (id, name, limit, revoked); never the keys themselves."""
    _, db = _records(home, store_url)
    for k in db.keys():
        typer.echo(json.dumps({"id": k.id, "name": k.name, "rate_per_minute": k.rate_per_minute, "revoked": k.revoked}))


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="the key's id (`aidetect keys list`)"),
    home: Path = HOME,
    store_url: str = STORE,
) -> None:
    """Revoke a key; running servers refuse it within seconds."""
    _with_records(home, store_url, lambda _, db: db.revoke_key(key_id))
    typer.echo(json.dumps({"id": key_id, "revoked": True}))


@moderators_app.command("add")
def moderators_add(
    name: str = typer.Argument(..., help="sign-in name; labels are recorded as moderator:NAME"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
    home: Path = HOME,
    store_url: str = STORE,
) -> None:
    """Add a moderator (or reset their password); prints a generated password unless --password-stdin."""
    from service.auth import hash_password

    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    if len(password) < 8:
        raise _fail("the password needs at least 8 characters")
    _with_records(home, store_url, lambda _, db: db.set_moderator(name, hash_password(password)))
    out = {"name": name}
    if not password_stdin:
        out["password"] = password
    typer.echo(json.dumps(out))


@moderators_app.command("list")
def moderators_list(home: Path = HOME, store_url: str = STORE) -> None:
    """List moderator accounts."""
    _, db = _records(home, store_url)
    for name in db.moderators():
        typer.echo(name)


@moderators_app.command("remove")
def moderators_remove(name: str, home: Path = HOME, store_url: str = STORE) -> None:
    """Remove a moderator account (their labels stay, with their name)."""
    _with_records(home, store_url, lambda _, db: db.remove_moderator(name))
    typer.echo(json.dumps({"name": name, "removed": True}))


@monitor_app.command("drift")
def monitor_drift(
    hours: float = typer.Option(24, help="compare detections of the last N hours"),
    snapshot: Path = typer.Option(None, "--snapshot", help="training manifest/snapshot CSV [AIDETECT_MANIFEST]"),
    split: str = typer.Option("val", help="which split of the snapshot is the reference"),
    per_group: int = typer.Option(50, help="reference images per source/label"),
    model_uri: str = typer.Option(None, "--model-uri", help="model scoring the reference [production]"),
    out: Path = typer.Option(None, "--out", help="JSON result [AIDETECT_HOME/monitoring/drift.json]"),
    textfile: Path = typer.Option(None, "--textfile", help="also write Prometheus text (node-exporter textfile)"),
    from_store: bool = typer.Option(
        False, "--reference-from-store", help="reference: the data store's labelled images of --split, not a manifest"
    ),
    home: Path = HOME,
    store_url: str = STORE,
) -> None:
    """PSI and KS of recent scores and input statistics vs the training snapshot, exported as a metric.

    The result is stored in the records database, whose newest report every server's /metrics exports as
    aidetect_drift_psi{feature} (the cluster runs this as a CronJob), and written to
    AIDETECT_HOME/monitoring/drift.json; --textfile writes the same in Prometheus text format.
    """
    import tempfile

    import numpy as np

    from model import registry
    from model.manifest import read_manifest, subsample
    from service.drift import compare, prometheus_text, reference_features, store_reference_images, traffic_features

    settings, db = _records(home, store_url)
    if model_uri:
        settings = settings.model_copy(update={"model_uri": model_uri})
    registry.configure(settings)
    bundle, ref = registry.load_detector(settings.resolved_model_uri)
    source = "store" if from_store else "manifest"
    cache = settings.home / "monitoring" / f"reference-{ref.name}-{ref.version}-{source}-{split}-{per_group}.npz"
    if cache.exists():
        reference = dict(np.load(cache))
    elif from_store:
        with tempfile.TemporaryDirectory() as tmp:
            paths = store_reference_images(db, split, per_group, Path(tmp))
            if not paths:
                raise _fail(f"the data store has no labelled {split} images to compare with")
            reference = reference_features(bundle, paths)
    else:
        samples = subsample(read_manifest(snapshot or settings.manifest, split=split), per_group)
        reference = reference_features(bundle, [s.path for s in samples])
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **reference)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    current = traffic_features(db, since)
    report = {**compare(reference, current), "model": ref.uri, "hours": hours}
    db.add_drift_report(report)  # what every replica's /metrics reads
    path = out or settings.home / "monitoring" / "drift.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)  # the server may read it at any moment
    if textfile:
        textfile.write_text(prometheus_text(report))
    typer.echo(json.dumps(report, indent=2))


@records_app.command("migrate")
def records_migrate(home: Path = HOME, store_url: str = STORE) -> None:
    """Bring the records database to the newest schema: the data pipeline's tables, then the service's.

    Servers on PostgreSQL never migrate (replicas would race): run this once before they roll out, as the
    deployment's ArgoCD PreSync job does. Safe to repeat; prints what was behind."""
    from service.records import Records

    behind = Records.migrate_store(get_settings(home=home, store_url=store_url))
    typer.echo(json.dumps({"migrated": behind}))


@records_app.command("prune")
def records_prune(
    days: float = typer.Option(None, help="retention in days [AIDETECT_REVIEW_RETENTION_DAYS]"),
    home: Path = HOME,
    store_url: str = STORE,
) -> None:
    """Delete kept images of unlabelled detections older than the retention period (run it daily)."""
    out = _with_records(home, store_url, lambda s, db: db.prune(days if days is not None else s.review_retention_days))
    typer.echo(json.dumps(out))


def predict(
    images: list[Path] = typer.Argument(..., help="image files"),
    url: str = typer.Option(None, "--url", help="detector URL [env AIDETECT_URL, http://127.0.0.1:8000]"),
    api_key: str = typer.Option(None, "--api-key", help="API key [env AIDETECT_API_KEY]"),
) -> None:
    """Score images with a running detector; prints one JSON line per image."""
    import logging

    import httpx

    from service.client import ClientError, DetectorClient

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per image, not one per request too
    url = url or os.environ.get("AIDETECT_URL") or "http://127.0.0.1:8000"
    failed = False
    with DetectorClient(url, api_key or os.environ.get("AIDETECT_API_KEY")) as client:
        for path in images:
            try:
                r = client.detect(path)
                fields = {k: r[k] for k in ("id", "score", "verdict", "provenance")}
                typer.echo(json.dumps({"file": str(path), **fields}))
            except ClientError as e:
                failed = True
                typer.echo(f"aidetect: error: {path}: {e.detail} (HTTP {e.status})", err=True)
            except httpx.HTTPError as e:
                raise _fail(f"cannot reach the detector at {url}: {e}") from None
            except OSError as e:
                raise _fail(f"{path}: {e.strerror or e}") from None
    if failed:
        raise typer.Exit(1)
