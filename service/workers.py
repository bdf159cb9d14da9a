"""How many inference workers, and torch threads each, fit the CPUs this process may use.

On a small CPU one worker per core with one torch thread each beats one worker with a thread per
core: EfficientNet's depthwise convolutions at batch 1-4 split badly across threads (2 cores:
30 + 30 images/s as two single-thread processes, 48 as one two-thread process). Settings 0 means
"work it out"; an operator's explicit numbers always win.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_AUTO_WORKERS = 4  # past this, each worker's copy of the model costs more memory than it buys speed
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpus(text: str) -> float | None:
    """CPUs granted by a cgroup v2 `cpu.max` line ("200000 100000" = 2), None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus() -> int:
    """Cores this process may run on: the affinity mask, capped by a container's CPU limit
    (a Kubernetes pod sees every core of its node in the mask, but only its limit is its to use)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        limit = cgroup_cpus(CGROUP_CPU_MAX.read_text())
    except OSError:
        limit = None
    if limit is not None:
        cpus = min(cpus, max(1, int(limit)))
    return max(1, cpus)


def inference_layout(workers: int, threads: int, cpus: int) -> tuple[int, int]:
    """(workers, torch threads per worker); 0 in either means auto for `cpus` cores."""
    if workers < 0 or threads < 0:
        raise ValueError("workers and threads must be 0 (auto) or positive")
    w = workers or min(cpus, MAX_AUTO_WORKERS)
    t = threads or max(1, cpus // w)
    return w, t
