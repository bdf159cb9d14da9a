"""The raw model: DetectorBundle's batched forward on already-decoded images, no HTTP, no decoding.

Two layouts, so the server can be compared with the raw model laid out the way it is itself:
- `measure(bundle, x, batch, seconds)`: one process, the bundle's runtime and threads as they are (what
  a script scoring a folder would do; `bundle.use_runtime("torch")` makes it the eager model);
- `PerCore`: the server's layout (service.workers): W processes with T threads each and the runtime the
  server would pick, every one running the batched forward at once; their images/s add up. On 2 cores
  this is the machine's ceiling for the model (two single-thread processes beat one two-thread process).
Both report the CPU the forward took (process CPU time, every thread) per image and the resident memory.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time

import numpy as np


def inputs(bundle, images: list[bytes]):
    import torch

    from model.preprocess import preprocess

    return torch.from_numpy(np.stack([preprocess(b, bundle.pre) for b in images]))


def batch_of(x, batch: int):
    return x.repeat((batch // len(x)) + 1, 1, 1, 1)[:batch]


def measure(bundle, x, batch: int, seconds: float) -> dict:
    """images/s and per-image latency (each image waits for its whole forward) at one batch size."""
    from bench.load import summary
    from bench.quiet import own_pss_bytes, own_rss_bytes

    xb = batch_of(x, batch)
    bundle.score_tensor(xb)  # warm-up
    lat, n, t0, cpu0 = [], 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        bundle.score_tensor(xb)
        lat.extend([time.perf_counter() - t] * batch)
        n += batch
    cpu = time.process_time() - cpu0
    return {
        **summary(lat, n, time.perf_counter() - t0),
        "batch": batch,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_image": round(1000 * cpu / n, 2) if n else None,
        "rss_mib": round(own_rss_bytes() / 2**20, 1),
        "pss_mib": round(own_pss_bytes() / 2**20, 1),
    }


def _child(conn, home: str, uri: str, runtime: str, threads: int, images: list[bytes]) -> None:
    import torch

    from aidetect.settings import Settings
    from model import registry

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    registry.configure(Settings(home=home))
    bundle, _ = registry.load_detector(uri)
    bundle.use_runtime(runtime, threads)  # as service/api.py does in each worker
    x = inputs(bundle, images)
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        batch, seconds, start_at = msg
        time.sleep(max(0.0, start_at - time.time()))  # every process starts together
        conn.send(measure(bundle, x, batch, seconds))


class PerCore:
    """W processes, each with the model, the runtime and T threads, measured together."""

    def __init__(self, home, uri: str, workers: int, threads: int, images: list[bytes], runtime: str = "auto"):
        ctx = mp.get_context("spawn")
        self.workers, self.threads = workers, threads
        self.conns, self.procs = [], []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_child, args=(child, str(home), uri, runtime, threads, images), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            if c.recv() != "ready":
                raise RuntimeError("a raw-model process failed to load the model")

    def measure(self, clients: int, max_batch: int, seconds: float) -> dict:
        """c images in flight spread over the processes, as the server's queue spreads them."""
        active = min(self.workers, clients)
        batch = min(max_batch, math.ceil(clients / active))
        start_at = time.time() + 0.2
        for c in self.conns[:active]:
            c.send((batch, seconds, start_at))
        parts = [c.recv() for c in self.conns[:active]]
        images = sum(p["images"] for p in parts)
        secs = max(p["seconds"] for p in parts)
        cpu = sum(p["cpu_s"] for p in parts)
        return {
            "images": images,
            "errors": 0,
            "seconds": secs,
            "images_per_s": round(sum(p["images_per_s"] for p in parts), 2),
            "p50_ms": round(float(np.median([p["p50_ms"] for p in parts])), 2),
            "p95_ms": max(p["p95_ms"] for p in parts),
            "batch": batch,
            "processes": active,
            "threads_each": self.threads,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_image": round(1000 * cpu / images, 2) if images else None,
            # every worker holds a model, measuring or not: the replica's memory is all of them
            "rss_mib": round(sum(p["rss_mib"] for p in parts) * self.workers / active, 1),
            "pss_mib": round(sum(p["pss_mib"] for p in parts) * self.workers / active, 1),
        }

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
