"""Ingest throughput: images per second through the whole pipeline against the loopback social fake.

    python bench/ingest_throughput.py                          # 400 images, mastodon, SQLite, 4 downloads at once
    python bench/ingest_throughput.py --images 1000 --source x --workers 8
    python bench/ingest_throughput.py --postgres               # a throwaway PostgreSQL instead of SQLite

Counted per stored image: HTTP page and media fetch over loopback, sha256, decode with limits,
perceptual hash, provenance, object write (fsync + rename) and the database transaction per page.
The media are real images from ../shared/data (AIDETECT_MANIFEST), so decode cost is realistic.
A second, idempotent run over the same posts is timed too (what a re-collection costs when
nothing is new). Writes bench/results/ingest_throughput.json (and prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aidetect.settings import get_settings  # noqa: E402
from aidetect.testing.fakeapi import FakeSocial  # noqa: E402
from model.etl.connectors import get_connector  # noqa: E402
from model.etl.connectors.base import Http  # noqa: E402
from model.etl.ingest import ingest_source  # noqa: E402
from model.etl.store import Store  # noqa: E402
from model.manifest import read_manifest  # noqa: E402


def load_media(n: int) -> list[bytes]:
    manifest = Path(os.environ.get("AIDETECT_MANIFEST") or get_settings().manifest)
    samples = read_manifest(manifest)
    step = max(1, len(samples) // n)  # spread over sources and labels
    return [s.path.read_bytes() for s in samples[::step][:n]]


def run(args) -> dict:
    media = load_media(args.images)
    tmp = Path(tempfile.mkdtemp(prefix="aidetect-bench-"))
    pg = None
    if args.postgres:
        from aidetect.testing.postgres import start_postgres

        pg = start_postgres()
        url = pg.create_database("bench")
    else:
        url = f"sqlite:///{tmp / 'etl.db'}"
    try:
        store = Store.open(url, str(tmp / "objects"))
        with FakeSocial(media, page_size=args.page_size) as fake:
            conn = get_connector(args.source, fake.env(), http=Http(args.source))
            t0 = time.perf_counter()
            first = ingest_source(conn, "aiart", store, workers=args.workers)
            first_s = time.perf_counter() - t0
            conn = get_connector(args.source, fake.env(), http=Http(args.source))
            t0 = time.perf_counter()
            second = ingest_source(conn, "aiart", store, workers=args.workers)
            second_s = time.perf_counter() - t0
        if first.error or second.error:
            raise SystemExit(f"ingest failed: {first.error or second.error}")
        items = sum(first.counts.values())
        stored = first.counts["stored"]
        store.close()
    finally:
        if pg is not None:
            pg.stop()
    return {
        "source": args.source,
        "database": "postgresql" if args.postgres else "sqlite",
        "media_items": items,
        "stored": stored,
        "outcomes": dict(first.counts),
        "pages": first.pages,
        "page_size": args.page_size,
        "download_workers": args.workers,
        "seconds": round(first_s, 3),
        "items_per_s": round(items / first_s, 1),
        "images_stored_per_s": round(stored / first_s, 1),
        "mean_image_bytes": int(sum(map(len, media)) / len(media)),
        "rerun_seconds": round(second_s, 3),
        "rerun_added": second.counts.get("stored", 0),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),  # the machine is shared: context for the numbers
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=400, help="distinct images served by the fake")
    p.add_argument("--source", default="mastodon", choices=["x", "instagram", "mastodon", "bluesky", "reddit"])
    p.add_argument("--workers", type=int, default=4, help="parallel media downloads")
    p.add_argument("--page-size", type=int, default=40, help="posts per API page (Mastodon's maximum is 40)")
    p.add_argument("--postgres", action="store_true", help="store metadata in a throwaway PostgreSQL")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest_throughput.json")
    args = p.parse_args()
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
