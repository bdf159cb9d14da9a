"""Wait until a process tree is idle, so one benchmark phase does not run on the tail of the last.

A server keeps working after its load generator stops: every request already read is still answered
(the naive one-at-a-time server needs seconds for a 32-client backlog). Measuring the next phase on top
of that made a 2-thread raw forward 5x slower in a test run, so each HTTP phase is followed by this.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _session_stats(sid: int):
    """(/proc/PID/stat fields after the command, PID dir) of every live process in session `sid`."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # after the command: state ppid pgrp session ...
        if int(fields[3]) == sid:
            yield fields, d


def session_cpu_seconds(sid: int) -> float:
    """utime + stime of every live process in session `sid` (servers.start puts each server in its own)."""
    # utime and stime are the 14th and 15th fields overall
    return sum(int(f[11]) + int(f[12]) for f, _ in _session_stats(sid)) / CLK_TCK


def session_rss_bytes(sid: int) -> int:
    """Resident memory of every live process in session `sid` added up: what a replica's container holds."""
    return sum(int(f[21]) for f, _ in _session_stats(sid)) * PAGE


def own_rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def _pss(d: Path) -> int:
    try:
        line = next(x for x in (d / "smaps_rollup").read_text().splitlines() if x.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


def session_pss_bytes(sid: int) -> int:
    """Proportional set size of session `sid`: shared pages (torch's libraries in every worker) counted once,
    as a container's memory cgroup counts them; RSS counts them in every process."""
    return sum(_pss(d) for _, d in _session_stats(sid))


def own_pss_bytes() -> int:
    return _pss(Path("/proc/self"))


def wait_quiet(sid: int, busy_below: float = 0.05, window: float = 0.25, timeout: float = 60.0) -> float:
    """Block until the session uses under `busy_below` of a core over `window` seconds; the seconds waited."""
    t0 = time.monotonic()
    last = session_cpu_seconds(sid)
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        now = session_cpu_seconds(sid)
        if (now - last) / window < busy_below:
            break
        last = now
    return time.monotonic() - t0
