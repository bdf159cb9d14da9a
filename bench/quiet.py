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


def session_cpu_seconds(sid: int) -> float:
    """utime + stime of every live process in session `sid` (servers.start puts each server in its own)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        # after the command: state ppid pgrp session ... utime(14th field overall) stime(15th)
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


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
