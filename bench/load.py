"""Closed-loop HTTP load for the serving benchmarks: c clients, each posting the next image as soon as
its previous answer arrives, for a fixed time.

wrk (Debian `wrk`, C, one thread) is used when it is installed, so the load generator takes well under
1% of the CPU the server is measured on; without it an httpx asyncio client does the same job at a
cost of about a millisecond of CPU per request, which on a 2-core machine comes out of the server's share.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

LUA = Path(__file__).resolve().parent / "post_images.lua"
IMAGE_TYPE = {"content-type": "application/octet-stream"}


def summary(lat: list[float], images: int, seconds: float, errors: int = 0) -> dict:
    lat = sorted(lat)
    return {
        "images": images,
        "errors": errors,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 2),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
        "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 2) if lat else None,
    }


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "httpx"


def wrk_summary(line: str) -> dict:
    """The JSON line post_images.lua prints, in the shape summary() gives."""
    d = json.loads(line)
    seconds = d["duration_us"] / 1e6
    ok = d["requests"] - d["non_2xx"]
    return {
        "images": ok,
        "errors": d["non_2xx"] + d["socket_errors"],
        "seconds": round(seconds, 3),
        "images_per_s": round(ok / seconds, 2) if seconds else 0.0,
        "p50_ms": round(d["p50_us"] / 1000, 2),
        "p95_ms": round(d["p95_us"] / 1000, 2),
    }


class Load:
    """Posts `images` to `url`; reuse one for every measurement of a run."""

    def __init__(self, images: list[bytes]):
        self.images = images
        self.tool = generator()
        self._dir = tempfile.TemporaryDirectory(prefix="aidetect-load-")
        for i, b in enumerate(images):
            (Path(self._dir.name) / f"{i:03d}.img").write_bytes(b)

    def close(self) -> None:
        self._dir.cleanup()

    def run(self, url: str, clients: int, seconds: float) -> dict:
        if self.tool == "wrk":
            return self._wrk(url, clients, seconds)
        return asyncio.run(self._httpx(url, clients, seconds))

    def _wrk(self, url: str, clients: int, seconds: float) -> dict:
        cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, math.ceil(seconds))}s", "--timeout", "120s", "-s", str(LUA)]
        out = subprocess.run(
            [*cmd, url],
            env={"AIDETECT_BENCH_IMAGES": self._dir.name, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 180,
        ).stdout
        return wrk_summary(out.strip().splitlines()[-1])

    async def _httpx(self, url: str, clients: int, seconds: float) -> dict:
        images = self.images
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients), timeout=120) as client:
            lat: list[float] = []
            errors: list[int] = []
            t0 = time.perf_counter()
            stop_at = t0 + seconds

            async def one_client(k: int) -> None:
                i = k
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    r = await client.post(url, content=images[i % len(images)], headers=IMAGE_TYPE)
                    if r.status_code == 200:
                        lat.append(time.perf_counter() - t)
                    else:
                        errors.append(r.status_code)
                    i += 1

            await asyncio.gather(*[one_client(k) for k in range(clients)])
            return summary(lat, len(lat), time.perf_counter() - t0, len(errors))

    def warm_up(self, url: str) -> None:
        for b in self.images[:4]:
            httpx.post(url, content=b, headers=IMAGE_TYPE, timeout=120).raise_for_status()
