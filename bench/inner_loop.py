"""Issue 17's inner loop: how long `pytest -m "not slow"` takes here, wall and CPU, with the load beside it.

    python bench/inner_loop.py                       # bench/results/inner_loop.json
    python bench/inner_loop.py -- tests/model        # pass pytest arguments after --

A timing is a benchmark, not a test: it is filed with the machine's load, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import machine, write  # noqa: E402

RESULT = ROOT / "bench" / "results" / "inner_loop.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    cmd = [sys.executable, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|deselected|skipped|errors?)", summary)}
    write(
        args.out,
        {
            "command": " ".join(["pytest", *cmd[3:]]),
            "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "goal_wall_s": 120,
            "tests": counts,
            "exit_code": proc.returncode,
            "load_avg_before": load_before,
            **machine(),
        },
    )
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
