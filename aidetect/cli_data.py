"""`aidetect ingest` and `aidetect data`: collect, import, snapshot, count.

    aidetect ingest --source mastodon --tag aiart --limit 500
    aidetect ingest --source x --tag aiart --every 15m    # re-collect forever (a CronJob omits --every)
    aidetect data import --format cifake /data/cifake
    aidetect data import --format cocofake /data/cocofake --coco /data/coco2014
    aidetect data import --format manifest ../shared/data/manifest.csv
    aidetect data snapshot                                           # -> ~/.aidetect/snapshots/v0001/
    aidetect data stats
    aidetect data nonphoto --out DIR --split eval --n 30            # rendered real charts, screenshots, memes...

Where things go: AIDETECT_STORE_URL (default SQLite in AIDETECT_HOME) and AIDETECT_OBJECT_STORE
(default AIDETECT_HOME/objects, or s3://bucket/prefix). Each command prints JSON on stdout.
"""

from __future__ import annotations

import json
import logging
import sys

import typer

from aidetect.errors import fail

ingest_app = typer.Typer(
    help="Collect images from social media into the store (resumable, idempotent).", add_completion=False
)
data_app = typer.Typer(
    help="Data sets and snapshots: import labelled sets, freeze training manifests, stats.",
    no_args_is_help=True,
    add_completion=False,
)

log = logging.getLogger(__name__)

STORE_URL = typer.Option(None, "--store-url", help="metadata database URL (default: AIDETECT_STORE_URL)")
OBJECTS = typer.Option(None, "--object-store", help="a directory or s3://bucket/prefix (AIDETECT_OBJECT_STORE)")


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Ingest failures exit 1 (retry later); bad arguments pass 2.
    return fail(message, code)


def _emit(obj) -> None:
    typer.echo(json.dumps(obj, indent=None, sort_keys=True, default=str))


def _limits():
    """The byte and pixel limits every image path shares (AIDETECT_MAX_BYTES, AIDETECT_MAX_PIXELS)."""
    from aidetect.settings import get_settings
    from model.preprocess import PreprocessConfig

    settings = get_settings()
    return PreprocessConfig(max_bytes=settings.max_bytes, max_pixels=settings.max_pixels)


def _open_store(store_url: str | None, object_store: str | None):
    from model.etl.store import Store

    return Store.open(store_url, object_store)


@ingest_app.callback(invoke_without_command=True)
def ingest(
    source: str = typer.Option(..., "--source", "-s", help="x, instagram, mastodon, bluesky or reddit"),
    tag: str = typer.Option(
        ...,
        "--tag",
        "-t",
        help="hashtag (subreddit for reddit; 'public' timeline for mastodon; 'author:<handle>' for bluesky)",
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="stop after about N media items a run"),
    every: str | None = typer.Option(None, "--every", help="re-collect on this interval, e.g. 15m, 1h"),
    runs: int | None = typer.Option(None, "--runs", min=1, help="with --every: stop after N runs", hidden=True),
    workers: int = typer.Option(4, "--workers", min=1, max=32, help="parallel media downloads"),
    store_url: str | None = STORE_URL,
    object_store: str | None = OBJECTS,
) -> None:
    """Fetch new posts with images for one query: dedupe, quarantine bad media, store the rest."""
    from model.etl.connectors import get_connector
    from model.etl.ingest import Policy, ingest_source, parse_duration, run_every

    interval = parse_duration(every) if every else None
    limits = _limits()
    conn = get_connector(source.lower(), max_media_bytes=limits.max_bytes)
    store = _open_store(store_url, object_store)

    def once():
        report = ingest_source(conn, tag, store, limit=limit, workers=workers, policy=Policy(decode=limits))
        _emit(report.as_dict())
        sys.stdout.flush()
        return report

    if interval is None:
        report = once()
        if report.error:
            raise _fail(report.error)
        return
    try:
        run_every(interval, once, runs=runs)
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass


@data_app.command("import")
def import_(
    path: str = typer.Argument(..., help="data set folder (cifake, cocofake) or manifest CSV"),
    fmt: str = typer.Option(..., "--format", "-f", help="cifake, cocofake or manifest"),
    coco: str | None = typer.Option(None, "--coco", help="cocofake: folder with COCO 2014 train2014/ val2014/"),
    license: str | None = typer.Option(None, "--license", help="licence recorded with every image"),
    store_url: str | None = STORE_URL,
    object_store: str | None = OBJECTS,
) -> None:
    """Import a labelled data set (idempotent); its labels are recorded with origin 'dataset'."""
    from dataclasses import replace

    from model.etl.loaders import DATASET_POLICY, import_items, load_items

    store = _open_store(store_url, object_store)
    items = load_items(fmt.lower(), path, coco=coco, license=license)
    policy = replace(DATASET_POLICY, decode=_limits())
    report = import_items(store, items, policy=policy, name=fmt.lower())
    _emit(report.as_dict())


@data_app.command("snapshot")
def snapshot(
    out: str | None = typer.Option(None, "--out", help="snapshot folder (default: AIDETECT_HOME/snapshots)"),
    near_distance: int = typer.Option(
        8, "--near-distance", min=0, max=32, help="perceptual-hash bits within which images share a split"
    ),
    materialize_objects: bool = typer.Option(False, "--materialize", help="copy S3 objects beside the CSV"),
    store_url: str | None = STORE_URL,
    object_store: str | None = OBJECTS,
) -> None:
    """Freeze a versioned manifest (path,label,source,split,origin) with sticky, leak-free splits."""
    from model.etl.snapshots import materialize, write_snapshot

    store = _open_store(store_url, object_store)
    info = write_snapshot(store, out, near_distance=near_distance)
    fetched = materialize(info.csv, store) if materialize_objects else 0
    _emit(
        {
            "version": info.version,
            "digest": info.digest,
            "manifest": str(info.csv),
            "sidecar": str(info.sidecar),
            "created": info.created,
            "counts": info.counts,
            "materialized": fetched,
        }
    )


@data_app.command("nonphoto")
def nonphoto(
    out: str = typer.Option(..., "--out", help="folder for <kind>/*.jpg and manifest.csv"),
    split: str = typer.Option("eval", "--split", help="generator setting: train or eval (other fonts, tools)"),
    n: int = typer.Option(30, "--n", min=1, help="images per kind (chart, screenshot, quote, meme, document)"),
    seed: int = typer.Option(0, "--seed"),
    manifest: str | None = typer.Option(None, "--manifest", help="photos to caption memes with (AIDETECT_MANIFEST)"),
) -> None:
    """Render real-label non-photos, stored like the shared data, with a manifest that merges with it."""
    from pathlib import Path

    from aidetect.settings import get_settings
    from model.nonphoto import KINDS, SETTINGS, meme_photos, write_set

    if split not in SETTINGS:
        raise _fail(f"--split {split!r} is not one of {', '.join(sorted(SETTINGS))}", 2)
    photos = meme_photos(get_settings(**({"manifest": manifest} if manifest else {})).manifest, split)
    m = write_set(Path(out), split, n, seed, photos)
    _emit({"manifest": str(m), "setting": split, "per_kind": n, "kinds": list(KINDS), "images": n * len(KINDS)})


@data_app.command("stats")
def stats(store_url: str | None = STORE_URL, object_store: str | None = OBJECTS) -> None:
    """Counts by source, label, label origin, split and ingest outcome; top quarantine reasons."""
    _emit(_open_store(store_url, object_store).stats())
