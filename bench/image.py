"""The CPU detector image: build time, size, and time from `podman run` to /health 200 with the model cached.

    python bench/image.py                    # a quick model trained into a temp store
    python bench/image.py --home ~/.aidetect # the production model of a store
    python bench/image.py --no-cache         # time a full build, not podman's cached layers

Builds with podman on the local Debian base exactly as tests/e2e/test_image.py does (aidetect/testing/images.py),
then starts `aidetect serve` in the image `--rounds` times against a registry on the host's disk (the
"cached" model: nothing to download) and times each start until /health answers 200. Writes
bench/results/image.json. The size is podman's (uncompressed, every layer, the local base included), and
the saved image gzipped (level 1), about what a registry stores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "image.json"
TAG = "localhost/aidetect:bench"
GOALS = {"size_gb": 1.5, "health_s": 60}  # issue 14


def time_to_health(home: Path, mount_at: Path, rounds: int, work: Path) -> list[float]:
    from aidetect.testing import images, servers

    times = []
    for i in range(rounds):
        port = servers.free_port()
        name = f"aidetect-bench-{port}"
        log = work / f"serve-{i}.log"
        started = time.monotonic()
        proc = servers.start(images.serve_cmd(TAG, home, mount_at, port, name), log=log)
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/health", timeout=300, proc=proc)
            times.append(round(time.monotonic() - started, 1))
        except Exception:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            images.podman("stop", "--time", "10", name, check=False, timeout=60)
            servers.stop(proc)
    return times


def compressed_bytes(image: str) -> int:
    """The image as `podman save` writes it, gzipped: about what a registry stores and a node pulls."""
    save = subprocess.Popen(
        ["podman", "save", "--format", "docker-archive", image], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    gz = subprocess.run(["gzip", "-1"], stdin=save.stdout, capture_output=True, timeout=900)
    save.stdout.close()
    if save.wait() != 0 or gz.returncode != 0:
        raise RuntimeError(f"podman save {image} | gzip failed")
    return len(gz.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, default=None, help="AIDETECT_HOME with a production model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-cache", action="store_true", help="rebuild every layer (the base is kept)")
    args = ap.parse_args()

    from aidetect.settings import Settings
    from aidetect.testing import images
    from bench.record import machine, write
    from bench.serve_latency import ensure_model

    if reason := images.unavailable():
        sys.exit(f"bench/image.py: error: {reason}")
    with tempfile.TemporaryDirectory(prefix="aidetect-bench-image-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        base_made = images.ensure_base()
        base_s = round(time.monotonic() - started, 1)
        build_s = round(images.build(TAG, variant="cpu", work=work, no_cache=args.no_cache), 1)
        settings = Settings(home=args.home or work / "store")
        ensure_model(settings)
        # A copy, as the pod has its own volume; mounted where the store lies (MLflow paths are absolute).
        home = work / "home"
        shutil.copytree(settings.home, home)
        health = time_to_health(home, settings.home, args.rounds, work)
    size = images.size_bytes(TAG)
    result = {
        "image": {
            "size_bytes": size,
            "size_gb": round(size / 1e9, 3),
            "compressed_gzip1_bytes": compressed_bytes(TAG),
            "base": images.BASE,
            "base_size_bytes": images.size_bytes(images.BASE),
        },
        "build": {"seconds": build_s, "layer_cache": not args.no_cache, "base_made": base_made, "base_s": base_s},
        "health": {"seconds_median": statistics.median(health), "seconds": health, "rounds": args.rounds},
        "goals": GOALS,
        "podman": images.podman("--version").stdout.strip(),
        **machine(),
    }
    write(OUT, result)


if __name__ == "__main__":
    main()
